"""The decoded cache: built by parallel decoding threads, identical to a one-thread build, written
atomically, and an unreadable image still names its row."""

import numpy as np
import pytest
from conftest import make_folder_dataset

from hkd.data.cache import build_cache, open_cache
from hkd.data.formats.folder import read_folder
from hkd.errors import InputError


def test_parallel_decoding_gives_the_same_arrays_as_one_thread(tmp_path):
    records = read_folder(make_folder_dataset(tmp_path / "data", n_per_class=15))
    one = open_cache(build_cache(records, 32, 1, tmp_path / "one", workers=1))
    four = open_cache(build_cache(records, 32, 1, tmp_path / "four", workers=4))
    for name in ("images", "relevant", "irrelevant"):
        assert np.array_equal(getattr(one, name), getattr(four, name)), name
    assert one.relevant.any()
    assert not [p for p in (tmp_path / "four" / "decoded").iterdir() if p.name.startswith(".")]  # no temp


def test_an_unreadable_image_names_its_row_and_leaves_no_half_written_cache(tmp_path):
    root = make_folder_dataset(tmp_path / "data", n_per_class=15)
    records = read_folder(root)
    (root / "img" / "b_7.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # broken after it was listed
    with pytest.raises(InputError, match=r"row 24: cannot decode image .*b_7.png"):
        build_cache(records, 32, 1, tmp_path / "cache", workers=4)
    assert list((tmp_path / "cache" / "decoded").iterdir()) == []
