"""A record made before a change of defaults is read with the old defaults, for the runs the change
touches: it no longer stands for a row that now runs the new defaults, and still does for a row
that asks for the old ones or does not use them."""

from __future__ import annotations

import os
import subprocess

from benchmarks import matrix
from benchmarks.defaults_history import (
    DefaultsChange,
    behaviour_before_keys,
    made_before,
    overrides_then,
    propagates,
    same_overrides,
)
from hkd.atomic import append_json_line
from hkd.config import load_config


def commit(repo, message: str) -> str:
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", message], check=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_record_predating_a_change_gets_the_old_defaults_where_the_change_applies(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    old, change, new = commit(tmp_path, "old"), commit(tmp_path, "change"), commit(tmp_path, "new")
    assert made_before(old, change, tmp_path) and not made_before(new, change, tmp_path)
    assert not made_before(change, change, tmp_path) and not made_before(f"{new}+changes", change, tmp_path)
    assert made_before(None, change, tmp_path) and made_before("0" * 40, change, tmp_path)  # unknown

    changes = (DefaultsChange(change, ("imil.propagate_lr=0.002",), propagates),)
    propagating = load_config("synthetic_imil_propagate")
    plain = load_config("synthetic_baseline")
    record = {"git_commit": old, "overrides": ["seed=3"]}
    assert overrides_then(record, propagating, changes, tmp_path) == ["imil.propagate_lr=0.002", "seed=3"]
    assert overrides_then(record, plain, changes, tmp_path) == ["seed=3"]  # the change does not touch it
    assert overrides_then({**record, "git_commit": new}, propagating, changes, tmp_path) == ["seed=3"]
    pinned = {**record, "overrides": ["imil.propagate_lr=0.01"]}  # its own override wins
    then = overrides_then(pinned, propagating, changes, tmp_path)
    assert same_overrides(then, ["imil.propagate_lr=0.01"]) and not same_overrides(then, changes[0].before)


def test_same_overrides_compares_settings_not_order():
    assert same_overrides(["a=1", "b=2"], ["b=2", "a=1"]) and same_overrides(["a=1", "a=2"], ["a=2"])
    assert not same_overrides(["a=1"], ["a=1", "b=2"]) and not same_overrides(["a=1"], ["a=2"])


def test_the_old_defaults_of_keys_added_since():
    before = behaviour_before_keys()
    assert before["imil.propagate_features"] == [8, 16, 32, 64, 128, 8]
    assert before["imil.propagate_stop_recall"] is None and before["imil.propagate_batch_size"] == 16


def test_a_record_from_before_the_generator_changed_does_not_stand_for_todays_propagation(tmp_path):
    """The committed records of propagating rows were made with the generator from before issue #32:
    a matrix made today runs them again, unless its row asks for the old generator."""
    records = tmp_path / "imil.jsonl"
    for name, experiment in (("propagate", "synthetic_imil_propagate"), ("plain", "synthetic_baseline")):
        append_json_line(records, {"name": name, "experiment": experiment, "seed": 0, "fold": None,
                                   "overrides": [], "git_commit": None,  # None: before every change
                                   "test": {"accuracy": 0.5}})
    propagate = ("propagate", "synthetic_imil_propagate")
    assert matrix.recorded_run(records, *propagate, [], 0, None) is None
    assert matrix.recorded_run(records, *propagate, matrix.OLD_GENERATOR, 0, None)["name"] == "propagate"
    assert matrix.recorded_run(records, "plain", "synthetic_baseline", [], 0, None)["name"] == "plain"


def test_a_prerequisite_compares_by_its_name_wherever_it_was_kept():
    for path in ("../bench/runs/bench/prerequisites/lung_prior/seed0",
                 "../main/benchmarks/artifacts/lung_prior"):
        assert matrix.comparable([f"data.prior_generator={path}", "data.root=../x", "data.fold=2"]) == [
            "data.prior_generator={lung_prior}", "data.root=../x"]  # the fold: the record's own field
    own = ["data.prior_generator=/elsewhere/mine", f"data.root={matrix.REPO.parent}/shared/x"]
    assert matrix.comparable(own) == ["data.prior_generator=/elsewhere/mine", "data.root=../shared/x"]
