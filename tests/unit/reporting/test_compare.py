"""Run comparison: mean and spread per group, paired differences, the CLI."""

import json

import numpy as np
import pytest

from hkd.cli import main
from hkd.reporting.compare import (
    aggregate,
    find_summaries,
    markdown_table,
    paired_differences,
    paired_table,
    sign_flip_p_value,
)


def _write(folder, name, seed, accuracy, mass):
    run = folder / name / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "name": name, "method": name.split("-")[0], "seed": seed,
        "test": {"accuracy": accuracy, "balanced_accuracy": accuracy, "macro_f1": accuracy, "auroc": 0.5},
        "explanations": {"relevance_mass": mass, "pointing_game": 0.5}}))
    (run / "teacher").mkdir()
    (run / "teacher" / "summary.json").write_text(json.dumps({"test_on_roi": {"accuracy": 1.0}}))


def test_mean_and_spread_per_group(tmp_path):
    for seed, accuracy in enumerate([0.5, 0.7]):
        _write(tmp_path, "hkd", seed, accuracy, 0.2)
    _write(tmp_path, "baseline", 0, 0.3, 0.1)
    table = aggregate(find_summaries([tmp_path]))
    mean, std, n = table["hkd"]["test.accuracy"]
    assert (round(mean, 6), round(std, 4), n) == (0.6, 0.1414, 2)  # teacher sub-runs excluded
    assert table["baseline"]["test.accuracy"][1:] == (0.0, 1)
    text = markdown_table(table)
    assert "| hkd | 2 | 60.0 ± 14.1 |" in text


def test_cli_prints_table_and_writes_plot(tmp_path, capsys):
    _write(tmp_path, "baseline", 0, 0.3, 0.1)
    assert main(["compare", str(tmp_path), "--plot", str(tmp_path / "plot.png")]) == 0
    assert "| baseline | 1 | 30.0 ± 0.0 |" in capsys.readouterr().out
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["compare", str(tmp_path / "none")]) == 2
    assert "no summary.json" in capsys.readouterr().err


def test_paired_differences_pair_by_seed_with_an_exact_p_value(tmp_path):
    for seed, (base, hkd) in enumerate([(0.30, 0.40), (0.50, 0.55), (0.20, 0.35), (0.40, 0.38)]):
        _write(tmp_path, "baseline", seed, base, 0.1)
        _write(tmp_path, "hkd", seed, hkd, 0.2)
    _write(tmp_path, "hkd", 9, 0.99, 0.2)  # no baseline with seed 9: left out of the pairs
    rows = paired_differences(find_summaries([tmp_path]), "baseline")
    row = rows["hkd"]
    assert row["n"] == 4 and row["wins"] == 3
    assert row["mean"] == pytest.approx((0.10 + 0.05 + 0.15 - 0.02) / 4)
    # of the 16 sign flips of (.10, .05, .15, -.02), those with |mean| >= the observed .07: all +
    # (and its mirror) and flipping only the -.02 (and mirror) -> 4/16
    assert row["p"] == pytest.approx(4 / 16)
    assert sign_flip_p_value([0.1] * 5) == pytest.approx(2 / 32)  # all-agreeing: the smallest p
    assert "| hkd | 4 | +7.0 ± 7.3 | 3/4 | 0.250 | " in paired_table(rows, "baseline")
    low, high = rows["hkd"]["ci"]
    assert low < rows["hkd"]["mean"] < high
    with pytest.raises(ValueError, match="reference group 'nope'"):
        paired_differences(find_summaries([tmp_path]), "nope")


def test_cli_paired_comparison(tmp_path, capsys):
    for seed in range(3):
        _write(tmp_path, "baseline", seed, 0.3, 0.1)
        _write(tmp_path, "hkd", seed, 0.4 + seed / 100, 0.2)
    assert main(["compare", str(tmp_path), "--plot", "", "--against", "baseline"]) == 0
    assert "| hkd | 3 | +11.0 ± 1.0 | 3/3 | 0.250 |" in capsys.readouterr().out


@pytest.mark.parametrize("n", [20, 50])
def test_p_values_for_many_pairs_are_monte_carlo_estimates_of_the_exact_test(n):
    rng = np.random.default_rng(n)
    shifted = list(rng.normal(0.02, 0.05, n))
    p = sign_flip_p_value(shifted)
    assert 0 < p < 1 and sign_flip_p_value(shifted) == p  # seeded: the same value again
    assert sign_flip_p_value([0.01] * n) == pytest.approx(1 / 100_001)  # only the observed flip is as extreme
    noise = list(rng.normal(0.0, 0.05, n))
    assert sign_flip_p_value(noise) > 0.05
    sixteen = shifted[:16]  # where both apply, the sampled test agrees with the exact one
    from hkd.reporting import compare

    exact = sign_flip_p_value(sixteen)
    compare.EXACT_UP_TO = 15
    try:
        assert sign_flip_p_value(sixteen) == pytest.approx(exact, abs=0.01)
    finally:
        compare.EXACT_UP_TO = 16
