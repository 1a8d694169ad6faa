"""Folders built all or nothing (hkd.atomic.atomic_folder), also when processes race."""

from __future__ import annotations

import pytest

from hkd.atomic import atomic_folder


def test_a_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "cache" / "abc"

    def broken(tmp):
        (tmp / "half.npy").write_text("x")
        raise RuntimeError("killed while filling")

    with pytest.raises(RuntimeError):
        atomic_folder(target, broken, "done")
    assert not target.exists() and not list((tmp_path / "cache").iterdir())  # no leftovers
    atomic_folder(target, lambda tmp: (tmp / "done").write_text("1"), "done")
    assert (target / "done").is_file()
    calls = []
    atomic_folder(target, lambda tmp: calls.append(tmp), "done")
    assert not calls  # finished folders are not built again


def test_a_rival_that_finished_first_keeps_its_folder(tmp_path):
    """Two ranks build the same folder; the one that finishes second must not delete the first's,
    which the first may already be reading (it did, and broke a torchrun test)."""
    target = tmp_path / "shared"

    def slow_fill(tmp):
        target.mkdir()  # meanwhile the rival renames its finished folder into place
        (target / "done").write_text("rival")
        (target / "in_use.npy").write_text("read by the rival")
        (tmp / "done").write_text("mine")

    assert atomic_folder(target, slow_fill, "done") == target
    assert (target / "done").read_text() == "rival" and (target / "in_use.npy").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["shared"]  # our copy is gone
