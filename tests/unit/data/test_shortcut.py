"""The planted shortcut (data.shortcut.*): which class each marker names, how it is drawn, and
that the marked images and their irrelevant boxes reach the datasets, cached and seeded."""

from __future__ import annotations

import numpy as np
import pytest

from hkd.config import load_config
from hkd.data.shortcut import ShortcutSpec, marker_codes, marker_layer
from hkd.errors import ConfigError
from hkd.run.build import build_datamodule
from tests.conftest import make_folder_dataset


def spec(**changes) -> ShortcutSpec:
    return ShortcutSpec(**{"kind": "text", "bias": 0.95, **changes})


def test_codes_follow_the_bias_in_train_and_are_random_in_test():
    n, k = 4000, 4
    labels = np.arange(n) % k
    splits = np.array(["train"] * 2000 + ["val"] * 1000 + ["test"] * 1000)
    codes = marker_codes(labels, splits, k, spec(), seed=3)
    agree = codes == labels
    assert 0.93 < agree[splits == "train"].mean() < 0.97
    assert 0.93 < agree[splits == "val"].mean() < 0.97  # val=biased by default
    assert 0.18 < agree[splits == "test"].mean() < 0.32  # random: 1/4
    assert set(codes[splits == "test"]) == set(range(k))
    np.testing.assert_array_equal(codes, marker_codes(labels, splits, k, spec(), seed=3))
    assert (codes != marker_codes(labels, splits, k, spec(), seed=4)).any()


def test_shortcut_free_validation_absent_test_and_random_train():
    labels = np.arange(3000) % 3
    splits = np.array(["train"] * 1000 + ["val"] * 1000 + ["test"] * 1000)
    codes = marker_codes(labels, splits, 3, spec(val="random", test="absent"), seed=0)
    assert 0.28 < (codes == labels)[splits == "val"].mean() < 0.39
    assert (codes[splits == "test"] == -1).all()
    ceiling = marker_codes(labels, splits, 3, spec(bias=None), seed=0)
    assert 0.28 < (ceiling == labels)[splits == "train"].mean() < 0.39


@pytest.mark.parametrize("kind", ["text", "corner_tag"])
def test_each_class_gets_its_own_marker_inside_its_box(kind):
    layers = [marker_layer(code, 96, spec(kind=kind)) for code in range(4)]
    for alpha, (x0, y0, x1, y1) in layers:
        assert alpha.max() > 0.95
        inside = np.zeros_like(alpha, bool)
        inside[y0:y1, x0:x1] = True
        assert alpha[~inside].max() == 0.0  # the box covers the whole marker
        assert inside.mean() < 0.1  # and is small: a marker, not a region
    for first in range(4):
        for second in range(first + 1, 4):
            assert not np.array_equal(layers[first][0], layers[second][0])
    if kind == "corner_tag":  # the position names the class
        assert len({box for _, box in layers}) == 4


def test_text_is_rendered_with_a_font_not_a_block():
    alpha, (x0, y0, x1, y1) = marker_layer(0, 128, spec())  # "PORTABLE"
    crop = alpha[y0:y1, x0:x1]
    assert x1 - x0 > 2 * (y1 - y0)  # a word is wider than tall
    assert 0.15 < (crop > 0.5).mean() < 0.7  # strokes with gaps between them


def test_bad_shortcut_keys_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="data.shortcut.kind=tattoo"):
        load_config("quickstart", ["data.shortcut.kind=tattoo"])
    with pytest.raises(ConfigError, match="data.shortcut.bias"):
        load_config("quickstart", ["data.shortcut.kind=text", "data.shortcut.bias=1.5"])
    with pytest.raises(ConfigError, match="texts"):
        ShortcutSpec(kind="text", bias=0.9, size=0.1, texts=("A", "B")).check(n_classes=3)


def planted(tmp_path, *overrides):
    root = tmp_path / "data"
    if not root.is_dir():
        make_folder_dataset(root, n_per_class=10, classes=("a", "b", "c"), size=48, with_split=True)
    cfg = load_config("quickstart", ["data.format=folder", f"data.root={root}", "data.image_size=48",
                                     f"data.cache_dir={tmp_path / 'cache'}", "augment.policy=none",
                                     *overrides])
    datamodule = build_datamodule(cfg)
    datamodule.setup()
    return datamodule


def test_markers_are_burned_in_cached_and_boxed_as_irrelevant(tmp_path):
    clean = planted(tmp_path)
    marked = planted(tmp_path, "data.shortcut.kind=text", "data.shortcut.bias=1.0", "data.shortcut.size=0.2")
    codes = np.load(marked.datasets["train"].cache.folder / "codes.npy")
    train = marked.datasets["train"].indices
    np.testing.assert_array_equal(codes[train], marked.labels[train])  # bias 1: always the true class
    for idx in train:
        before, after = clean.datasets["train"].original(idx), marked.datasets["train"].original(idx)
        changed = (before - after).abs()[0] > 1e-3
        box = np.asarray(marked.datasets["train"].cache.irrelevant[idx]) > 0
        assert changed.any()
        assert not changed.numpy()[~box].any()  # only inside the irrelevant box
        sample = marked.datasets["train"][list(train).index(idx)]
        assert sample["has_irrelevant"]
    again = planted(tmp_path, "data.shortcut.kind=text", "data.shortcut.bias=1.0", "data.shortcut.size=0.2")
    assert again.datasets["train"].cache.folder == marked.datasets["train"].cache.folder
    other_seed = planted(tmp_path, "data.shortcut.kind=text", "data.shortcut.size=0.2", "seed=5")
    assert other_seed.datasets["train"].cache.folder != marked.datasets["train"].cache.folder
    assert marked.decoded_folder == clean.datasets["train"].cache.folder  # the decode cache is unmarked
