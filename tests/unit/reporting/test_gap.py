"""The share of the reference-to-ceiling gap each run closes, and IMIL's edited shares; from the
command line with ``hkd compare --against A --ceiling B``."""

import json

import pytest

from hkd.cli import main
from hkd.reporting.gap import edited_share_table, gap_closed


def summaries(values: dict[str, list[float]]) -> list[dict]:
    return [{"name": name, "seed": seed, "test": {"balanced_accuracy": value}}
            for name, per_seed in values.items() for seed, value in enumerate(per_seed)]


def test_gap_closed_is_the_gain_over_the_gap_with_an_interval():
    rows = gap_closed(summaries({"base": [0.5, 0.6, 0.4], "m": [0.6, 0.7, 0.5],
                                 "top": [0.7, 0.8, 0.6]}), "base", "top")
    assert rows["m"]["share"] == pytest.approx(0.5)
    assert rows["m"]["ci"] == pytest.approx([0.5, 0.5])  # the same share on every seed
    uneven = gap_closed(summaries({"base": [0.5, 0.5, 0.5, 0.5], "m": [0.5, 0.9, 0.5, 0.7],
                                   "top": [0.9, 0.9, 0.9, 0.9]}), "base", "top")["m"]
    assert uneven["share"] == pytest.approx(0.375)
    assert uneven["ci"][0] < 0.375 < uneven["ci"][1]


def test_edited_share_splits_clinician_marks_from_propagated_edits():
    text = edited_share_table([{"name": "imil", "imil_edited": 50, "imil_clinician_edits": 10,
                                "splits": {"train": {"images": 500}}}, {"name": "baseline"}])
    assert "| imil | 1 | 10.0 % | 2.0 % | 8.0 % |" in text
    assert "baseline" not in text


def test_compare_prints_the_gap_each_group_closes(tmp_path, capsys):
    for name, accuracies in (("baseline", [0.4, 0.5]), ("hkd", [0.5, 0.6]), ("clean", [0.6, 0.7])):
        for seed, accuracy in enumerate(accuracies):
            run = tmp_path / name / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "summary.json").write_text(json.dumps({
                "name": name, "seed": seed, "test": {"accuracy": accuracy, "balanced_accuracy": accuracy}}))
    arguments = ["compare", str(tmp_path), "--plot", "", "--against", "baseline", "--ceiling", "clean"]
    assert main([*arguments, "--metric", "test.balanced_accuracy"]) == 0
    out = capsys.readouterr().out
    assert "share of the baseline → clean gap closed (balanced_accuracy)" in out
    assert "| hkd | 2 | 50 % (gap 20.0 points) | 50 % to 50 % |" in out
    assert main(["compare", str(tmp_path), "--plot", "", "--ceiling", "clean"]) == 2  # no reference
    assert "--ceiling needs --against" in capsys.readouterr().err
