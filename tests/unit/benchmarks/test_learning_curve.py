"""The learning-curve report (issue #31): per size, each method against the baseline, paired by
seed; written beside a matrix's records only when its rows are named METHOD, N images."""

from __future__ import annotations

import math

from benchmarks.learning_curve import curve_rows, curve_table, gain_per_halving, trend_table, write_curve


def record(method: str, size: str, seed: int, accuracy: float, images: int) -> dict:
    return {"name": f"{method}, {size} images", "seed": seed, "fold": None,
            "test": {"balanced_accuracy": accuracy}, "splits": {"train": {"images": images}}}


def records() -> list[dict]:
    rows = []
    for seed in range(4):
        rows += [record("baseline", "250", seed, 0.60 + 0.01 * seed, 250),
                 record("hkd (lung prior)", "250", seed, 0.65 + 0.01 * seed, 250),  # +5 every seed
                 record("baseline", "all", seed, 0.80, 4453),
                 record("hkd (lung prior)", "all", seed, 0.80 + (0.01 if seed % 2 else -0.01), 4453)]
    return rows


def test_each_size_compares_its_methods_with_its_baseline():
    curve = curve_rows(records())
    assert list(curve) == ["250", "all"] and list(curve["250"]) == ["baseline", "hkd (lung prior)"]
    lines = curve_table(curve).splitlines()
    assert "| 250 (250) | hkd (lung prior) | 4 | 66.5 ± 1.3 | +5.0 ± 0.0 | 4/4 | 0.125 |" in lines
    assert "| all (4453) | hkd (lung prior) | 4 | 80.0 ± 1.2 | +0.0 ± 1.2 | 2/4 | 1.000 |" in lines
    assert "| 250 (250) | baseline | 4 | 61.5 ± 1.3 | – | – | – |" in lines


def test_the_trend_is_the_gain_each_halving_of_the_data_adds():
    """hkd is +5 at 250 images and -1 / +1 at 4,453 on alternate seeds: per seed the gain grows by
    6 or 4 points over log2(4453 / 250) halvings; a seed without every size is left out."""
    halvings = math.log2(4453 / 250)
    only_250 = [record("baseline", "250", 9, 0.5, 250), record("hkd (lung prior)", "250", 9, 0.9, 250)]
    runs = [*records(), *only_250]
    row = gain_per_halving(curve_rows(runs))["hkd (lung prior)"]
    assert row["n"] == 4 and row["wins"] == 4 and row["p"] == 0.125
    assert math.isclose(row["mean"], 0.05 / halvings)
    assert math.isclose(row["std"], 0.0115470 / halvings, rel_tol=1e-4)  # the std of 6, 4, 6, 4 points
    shrinking = [dict(r, test={"balanced_accuracy": 1 - r["test"]["balanced_accuracy"]}) for r in records()]
    assert gain_per_halving(curve_rows(shrinking))["hkd (lung prior)"]["wins"] == 0  # falls as data shrinks
    line = trend_table(curve_rows(runs)).splitlines()[2]
    assert line.startswith(f"| hkd (lung prior) | 4 | +{100 * 0.05 / halvings:.1f} ± ")
    assert "| 4/4 | 0.125 |" in line
    assert gain_per_halving(curve_rows([r for r in runs if r["name"].endswith("250 images")])) == {}


def test_only_a_learning_curve_matrix_gets_the_curve(tmp_path):
    records_file = tmp_path / "kermany_learning_curve.jsonl"
    table = tmp_path / "kermany_learning_curve_curve.md"
    assert write_curve(records(), records_file, "16 runs, made then") == table
    assert table.read_text().endswith("\n\n<sub>16 runs, made then</sub>\n")
    assert "| hkd (lung prior) | 4 | +1.2 ± 0.3 | 4/4 | 0.125 |" in table.read_text()  # the trend table
    assert (tmp_path / "kermany_learning_curve_curve.png").stat().st_size > 0
    other = [dict(r, name="baseline") for r in records()]
    assert write_curve(other, tmp_path / "kermany.jsonl") is None
    assert not (tmp_path / "kermany_curve.md").exists()


def test_every_size_of_the_curve_trains_for_about_the_full_sets_updates():
    """The curve's rows (benchmarks/matrices/kermany_learning_curve.yaml): N images train 6n epochs,
    n = 4,400 / N, validated every n epochs (the last epoch among them), the teacher as long, the
    kd-all-epochs weight never reaching 0; all images keep the experiment's own 6 epochs."""
    from benchmarks.matrix import matrix_rows

    rows = matrix_rows("kermany_learning_curve")
    for size in (250, 500, 1000):
        settings = dict(o.split("=", 1) for o in rows[f"baseline, {size} images"].overrides)
        epochs, every = int(settings["trainer.max_epochs"]), int(settings["trainer.check_val_every_n_epoch"])
        assert int(settings["data.train_size"]) == size
        assert 0.8 < epochs * size / (6 * 4400) < 1.2  # about the full set's samples
        assert epochs % every == 0 and epochs // every == 6 and settings["hkd.teacher_epochs"] == str(epochs)
        kd_all = rows[f"hkd (lung prior, kd all epochs), {size} images"].overrides
        assert f"hkd.kd_epochs={epochs + 1}" in kd_all
        hkd = rows[f"hkd (lung prior), {size} images"]
        assert hkd.overrides == rows[f"baseline, {size} images"].overrides
    everything = rows["baseline, all images"].overrides
    assert not any(o.startswith(("trainer.", "data.train_size")) for o in everything)
    assert "hkd.kd_epochs=7" in rows["hkd (lung prior, kd all epochs), all images"].overrides
