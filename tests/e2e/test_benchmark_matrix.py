"""A benchmark matrix is a YAML file; its rows train once, in a process of their own (the resumable
runner `hkd cv` uses too), and a record stands for a row's run exactly when the row's resolved
configuration today hashes to the record's: a new key counts at its default, a changed default
re-trains."""

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import matrix

REPO = Path(__file__).resolve().parents[2]
TINY = ["trainer.max_epochs=1", "data.synthetic.n_train=40", "data.synthetic.n_val=20",
        "data.synthetic.n_test=20", "data.synthetic.size=48", "data.image_size=32"]


@pytest.fixture
def bench(tmp_path, monkeypatch):
    """Matrices, records and run configurations under tmp_path."""
    for name in ("MATRICES", "RECORDS"):
        (tmp_path / name).mkdir()
        monkeypatch.setattr(matrix, name, tmp_path / name)
    monkeypatch.setattr(matrix, "RUN_CONFIGS", tmp_path / "run_configs.jsonl")
    fragments = ", ".join(f'"{o}"' for o in [*TINY, f"data.cache_dir={tmp_path / 'cache'}"])
    (tmp_path / "MATRICES" / "demo.yaml").write_text(
        f"fragments:\n  tiny: &tiny [{fragments}]\nseeds: [0]\nrows:\n"
        "  - {name: base line, experiment: quickstart, overrides: *tiny}\n"
        "  - {name: top, experiment: quickstart, overrides: [*tiny, augment.policy=none], ceiling: true}\n")
    (tmp_path / "MATRICES" / "curve.yaml").write_text(
        f"rows:\n  - {{name: 'baseline, all', experiment: quickstart, overrides: [{fragments}]}}\n")
    return tmp_path


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_matrix_trains_each_row_once_and_its_records_stand_for_it(bench, capsys):
    demo = matrix.load_matrix("demo")
    assert [row.name for row in demo.rows] == ["base line", "top"] and demo.rows[1].ceiling
    assert demo.rows[1].overrides[-1] == "augment.policy=none" and demo.seeds == [0]  # aliases spliced in
    matrix.run_matrix(demo, [0], None, bench / "runs")
    printed = capsys.readouterr().out
    run_dir = bench / "runs" / "demo" / "base_line" / "seed0"
    assert f"[base line seed0] training {run_dir}" in printed and "| base line | 1 |" in printed
    first, top = records(bench / "RECORDS" / "demo.jsonl")
    assert (first["name"], first["seed"], top.get("ceiling")) == ("base line", 0, True)
    configs = matrix.run_configs()
    assert set(configs) == {first["config_hash"], top["config_hash"]}
    assert "data.cache_dir" not in configs[first["config_hash"]]  # where a run is written: not its identity

    # found again, not trained again, even with its run directories gone (a fresh clone)
    shutil.rmtree(bench / "runs")
    matrix.run_matrix(demo, [0], None, bench / "runs")
    assert "training" not in capsys.readouterr().out and len(records(bench / "RECORDS" / "demo.jsonl")) == 2
    row = demo.rows[0]
    wanted = matrix.digest(matrix.identity(matrix.run_config(row, 0, None)))
    assert matrix.recorded_run("demo", row, 0, None, wanted)["test"] == first["test"]
    assert matrix.recorded_run("demo", row, 1, None, wanted) is None  # another seed
    other = matrix.digest(matrix.identity(matrix.run_config(demo.rows[1], 0, None)))
    assert matrix.recorded_run("demo", row, 0, None, other) is None  # another configuration
    # a matrix whose tables read the last epoch: a record made with it stands, one without does not
    assert matrix.recorded_run("demo", row, 0, None, wanted, ("test_last_epoch",))["test_last_epoch"]
    assert matrix.recorded_run("demo", row, 0, None, wanted, ("made_by_a_later_hkd",)) is None

    # a key added to hkd after the record counts at its default; a default that changed re-trains
    stored = configs[first["config_hash"]]
    without_key = {key: value for key, value in stored.items() if key != "imil.propagate_scale"}
    changed_default = {**stored, "imil.propagate_lr": 0.002}
    for config, stands in ((without_key, True), (changed_default, False)):
        rewritten = {**first, "config_hash": matrix.keep_config(config), "test": {"balanced_accuracy": 0.0}}
        (bench / "RECORDS" / "demo.jsonl").write_text(json.dumps(rewritten) + "\n")
        found = matrix.recorded_run("demo", row, 0, None, wanted)
        assert (found is not None and found["test"] == rewritten["test"]) == stands

    # another matrix's record of the same configuration stands in, under the row's name
    (bench / "RECORDS" / "demo.jsonl").write_text(json.dumps(first) + "\n")
    curve = matrix.load_matrix("curve")
    matrix.run_matrix(curve, [0], None, bench / "runs")
    [reused] = records(bench / "RECORDS" / "curve.jsonl")
    assert reused["name"] == "baseline, all" and reused["reused_from"] == "demo: base line"
    assert reused["test"] == first["test"] and "training" not in capsys.readouterr().out


def test_a_refit_row_refits_its_source_rows_run_and_is_not_confused_with_it(bench, capsys):
    (bench / "MATRICES" / "refit.yaml").write_text(
        (bench / "MATRICES" / "demo.yaml").read_text().split("  - {name: top")[0]
        + "  - {name: base line + refit, refit_of: base line}\n")
    spec = matrix.load_matrix("refit")
    assert spec.rows[1].refit_of == "base line" and spec.rows[1].overrides == spec.rows[0].overrides
    matrix.run_matrix(spec, [0], None, bench / "runs")
    source, refitted = records(bench / "RECORDS" / "refit.jsonl")
    assert refitted["name"] == "base line + refit" and refitted["config_hash"] != source["config_hash"]
    assert matrix.run_configs()[refitted["config_hash"]]["refit"] == matrix.REFIT
    run_dir = bench / "runs" / "refit" / "base_line" / "seed0"
    summary = json.loads((run_dir.with_name("seed0-refit") / "summary.json").read_text())
    assert refitted["test"] == summary["test"] and summary["refit"]["from"] == str(run_dir)
    capsys.readouterr()
    matrix.run_matrix(spec, [0], None, bench / "runs")  # both stand: nothing is trained or refitted
    assert "training" not in capsys.readouterr().out and len(records(bench / "RECORDS" / "refit.jsonl")) == 2
    (bench / "MATRICES" / "orphan.yaml").write_text("rows:\n  - {name: r, refit_of: nowhere}\n")
    with pytest.raises(SystemExit, match="refits 'nowhere'"):
        matrix.load_matrix("orphan")


def test_a_run_directory_of_another_configuration_starts_again(bench, capsys):
    demo = matrix.load_matrix("demo")
    run_dir = matrix.train_row("demo", demo.rows[0], 0, None, bench / "runs")
    assert (run_dir / "summary.json").is_file()
    assert matrix.train_row("demo", demo.rows[0], 0, None, bench / "runs") == run_dir  # finished: kept
    assert "training" in capsys.readouterr().out
    changed = demo.rows[0]._replace(overrides=[*demo.rows[0].overrides, "optim.lr=0.01"])
    assert matrix.train_row("demo", changed, 0, None, bench / "runs") == run_dir
    assert "training" in capsys.readouterr().out
    assert "lr: 0.01" in (run_dir / "config.yaml").read_text()


def test_a_matrix_file_that_is_not_yaml_names_itself(bench):
    (bench / "MATRICES" / "broken.yaml").write_text("rows: [ {name: a\n")
    with pytest.raises(SystemExit, match="broken.yaml"):
        matrix.load_matrix("broken")
    with pytest.raises(SystemExit, match="no such matrix.*demo"):
        matrix.load_matrix("absent")


def test_every_committed_matrix_loads_and_every_record_has_its_configuration():
    configs = matrix.run_configs()
    for name in matrix.matrix_names():
        rows = matrix.matrix_rows(name)
        assert rows and all(row.experiment and row.name == label for label, row in rows.items())
    for path in (REPO / "benchmarks" / "results").glob("*.jsonl"):
        for record in records(path):  # all but the runs of other code and the external tests
            if "config_hash" in record:
                assert record["config_hash"] in configs, (path.name, record["name"])
            else:
                assert " @ " in record["name"] or record["experiment"].startswith("hkd test"), path.name
