import json
import subprocess
import sys

from conftest import REPO

from hkd.compare import aggregate, find_summaries, markdown_table


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


def test_cli_prints_table_and_writes_plot(tmp_path):
    _write(tmp_path, "baseline", 0, 0.3, 0.1)
    result = subprocess.run([sys.executable, "-m", "hkd", "compare", str(tmp_path), "--plot",
                             str(tmp_path / "plot.png")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and "| baseline | 1 | 30.0 ± 0.0 |" in result.stdout
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    empty = subprocess.run([sys.executable, "-m", "hkd", "compare", str(tmp_path / "none")],
                           cwd=REPO, capture_output=True, text=True)
    assert empty.returncode == 2 and "no summary.json" in empty.stderr
