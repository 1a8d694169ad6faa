"""The benchmarks package: `make results` regenerates tables from committed run records, byte for
byte, and pastes them into the documents' results blocks; the gap-closed share and edit shares;
rows run at another commit; tuned settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import matrix, results, tune
from benchmarks.report import benchmark_report

REPO = Path(__file__).resolve().parents[3]
FIXTURE = REPO / "tests" / "fixtures" / "results"


def test_the_table_is_regenerated_byte_for_byte(tmp_path):
    shutil.copy(FIXTURE / "demo.jsonl", tmp_path)
    table = results.write_matrix(tmp_path / "demo.jsonl")
    assert table.read_bytes() == (FIXTURE / "demo.md").read_bytes()
    assert (tmp_path / "demo.png").stat().st_size > 1000


def test_a_rerun_replaces_the_older_record_of_its_row_and_seed(tmp_path):
    lines = (FIXTURE / "demo.jsonl").read_text().splitlines()
    rerun = json.loads(lines[0])
    rerun["test"]["balanced_accuracy"] = 0.0
    (tmp_path / "demo.jsonl").write_text("\n".join([*lines, json.dumps(rerun)]) + "\n")
    records = results.load_records(tmp_path / "demo.jsonl")
    assert len(records) == len(lines)
    assert [r["test"]["balanced_accuracy"] for r in records if r["name"] == rerun["name"]
            and r["seed"] == rerun["seed"]] == [0.0]


def test_a_broken_record_names_its_file_and_line(tmp_path):
    (tmp_path / "demo.jsonl").write_text((FIXTURE / "demo.jsonl").read_text() + "{oops\n")
    with pytest.raises(ValueError, match=r"demo.jsonl, line 13"):
        results.load_records(tmp_path / "demo.jsonl")


def test_documents_get_the_generated_table_between_their_markers(tmp_path):
    shutil.copy(FIXTURE / "demo.md", tmp_path)
    document = tmp_path / "README.md"
    document.write_text("intro\n<!-- results:demo -->\nan old, typed table\n<!-- /results:demo -->\nend\n")
    module = results
    assert module.fill_document(document, tmp_path)
    text = document.read_text()
    assert "an old, typed table" not in text
    assert (FIXTURE / "demo.md").read_text() in text and text.startswith("intro\n") and text.endswith("end\n")
    assert not module.fill_document(document, tmp_path)  # idempotent
    document.write_text("<!-- results:missing -->\n<!-- /results:missing -->\n")
    module.fill_document(document, tmp_path)  # a matrix not run yet says so
    assert "No runs recorded yet: `python -m benchmarks.matrix missing`" in document.read_text()
    document.write_text("<!-- results:tuned -->\n<!-- /results:tuned -->\n")
    module.fill_document(document, tmp_path)  # a table made by another script names that script
    assert "No runs recorded yet: `python -m benchmarks.tune`" in document.read_text()


def summaries(values: dict[str, list[float]]) -> list[dict]:
    return [{"name": name, "seed": seed, "test": {"balanced_accuracy": value}}
            for name, per_seed in values.items() for seed, value in enumerate(per_seed)]


def test_the_ceiling_is_the_row_whose_records_say_so():
    metric = ("test.balanced_accuracy",)
    records = summaries({"base": [0.5, 0.6], "m": [0.6, 0.7], "top (ceiling)": [0.7, 0.8]})
    assert "gap closed" not in benchmark_report(records, metric)  # a label is not a role
    flagged = [{**r, "ceiling": r["name"] == "top (ceiling)"} for r in records]
    assert "| m | 2 | 50 % (gap 20.0 points)" in benchmark_report(flagged, metric)
    renamed = [{**r, "name": "upper bound"} if r["ceiling"] else r for r in flagged]
    assert "base → upper bound gap closed" in benchmark_report(renamed, metric)


def test_the_tuned_matrix_trains_at_the_recorded_settings_with_a_shortcut_free_val(tmp_path, monkeypatch):
    monkeypatch.setattr(tune, "TUNED", tmp_path / "tuned.json")
    with pytest.raises(SystemExit, match="no tuned settings for rrr.*--only rrr"):
        matrix.matrix_rows("methods_tuned")
    found = {method: {"overrides": [f"method.weight={n}"]} for n, method in enumerate(tune.SPACES)}
    found["hkd"] = {"overrides": ["hkd.alpha=0.2", "hkd.kd_epochs=3"]}
    (tmp_path / "tuned.json").write_text(json.dumps(found))
    rows = matrix.matrix_rows("methods_tuned")
    assert list(rows) == ["baseline", "rrr (tuned)", "gradmask (tuned)", "actdiff (tuned)",
                          "cam_align (tuned)", "hkd (tuned)", "shortcut-free (ceiling)"]
    assert rows["gradmask (tuned)"] == matrix.Row("gradmask (tuned)", "synthetic_gradmask",
                                                  ["data.synthetic.val_shortcut=random", "method.weight=1"])
    assert rows["hkd (tuned)"].overrides[1:] == ["hkd.alpha=0.2", "hkd.kd_epochs=3"]
    assert all("data.synthetic.val_shortcut=random" in row.overrides for row in rows.values())
    assert [label for label, row in rows.items() if row.ceiling] == ["shortcut-free (ceiling)"]


def test_the_tuned_settings_table_is_made_from_tuned_json(tmp_path):
    found = {"rrr": {"overrides": ["method.weight=0.37"], "metric": "val/balanced_accuracy", "value": 0.61,
                     "n_trials": 10, "spaces": ["method.weight=log(0.01,100)"], "git_commit": "abc",
                     "date": "2026-11-30T08:00:00+00:00", "fixed": ["data.synthetic.val_shortcut=random"]}}
    (tmp_path / "tuned.json").write_text(json.dumps(found))
    table = results.write_tuned(tmp_path / "tuned.json").read_text()
    row = "| rrr | `method.weight=0.37` | val/balanced_accuracy 61.0 | 10 | `method.weight=log(0.01,100)` |"
    assert row in table
    assert "1 studies, 2026-11-30 to 2026-11-30, code abc" in table


def test_every_trial_of_a_study_is_kept_in_the_results(tmp_path, monkeypatch):
    study = tmp_path / "runs" / "rrr" / "tune-1"
    study.mkdir(parents=True)
    (study / "trials.csv").write_text("trial,state,val/balanced_accuracy,method.weight,run_dir\r\n"
                                      f"0,COMPLETE,0.3,0.5,{tmp_path}/runs/rrr/tune-1/trial0/x\r\n"
                                      "1,PRUNED,0.25,20.0,\r\n")
    monkeypatch.setattr(tune, "REPO", tmp_path)
    monkeypatch.setattr(tune, "TRIALS", tmp_path / "results" / "tuned")
    kept = tune.keep_trials(study, "rrr").read_text()
    assert kept.splitlines() == ["trial,state,val/balanced_accuracy,method.weight,run_dir",
                                 "0,COMPLETE,0.3,0.5,runs/rrr/tune-1/trial0/x", "1,PRUNED,0.25,20.0,"]


def test_rows_run_at_other_commits_are_compared_with_the_first_commit_paired_by_seed(tmp_path):
    """Rows run at another commit (``ROW @ COMMIT``) get a table of their own: each later
    commit against the first one, paired by seed; without a second commit there is none."""
    lines = [json.loads(line) for line in (FIXTURE / "demo.jsonl").read_text().splitlines()]
    hkd = [r for r in lines if r["name"] == "hkd"]
    old = [{**r, "name": "hkd @ aaaaaaa"} for r in hkd]
    new = [{**r, "name": "hkd @ bbbbbbb", "test": {**r["test"], "balanced_accuracy":
                                                   r["test"]["balanced_accuracy"] - 0.1}} for r in hkd]
    module = results
    assert "hkd @ aaaaaaa |" not in module.commit_comparisons([*lines, *old])
    text = module.commit_comparisons([*lines, *old, *new])
    assert "| run − hkd @ aaaaaaa |" in text
    row = next(line for line in text.splitlines() if line.startswith("| hkd @ bbbbbbb"))
    assert "| 3 | -10.0 ± 0.0 | 0/3 |" in row


def test_a_row_is_read_against_its_reference_row_of_another_matrix_paired_by_seed(tmp_path, monkeypatch):
    """A matrix's ``references``: a row paired by seed with a row of another matrix's records, labelled with
    that matrix and the reference's commits; no table while the other matrix has no records."""
    lines = [json.loads(line) for line in (FIXTURE / "demo.jsonl").read_text().splitlines()]
    hkd = [r for r in lines if r["name"] == "hkd"]
    better = [{**r["test"], "balanced_accuracy": r["test"]["balanced_accuracy"] + 0.05} for r in hkd[:2]]
    variant = [{**r, "name": "hkd, variant", "test": test} for r, test in zip(hkd, better)]
    (tmp_path / "matrices").mkdir()
    (tmp_path / "matrices" / "variants.yaml").write_text(
        'references: {"hkd, variant": {matrix: demo, row: hkd}}\nrows:\n'
        '  - {name: "hkd, variant", experiment: synthetic_hkd}\n')
    monkeypatch.setattr(matrix, "MATRICES", tmp_path / "matrices")
    assert results.reference_comparisons("variants", variant, tmp_path) == ""  # demo.jsonl not there yet
    shutil.copy(FIXTURE / "demo.jsonl", tmp_path)
    text = results.reference_comparisons("variants", variant, tmp_path)
    row = next(line for line in text.splitlines() if line.startswith("| hkd, variant |"))
    assert "| run − hkd (demo) |" in text and "| 2 | +5.0 ± 0.0 | 2/2 |" in row  # the two seeds both have
    assert "hkd (demo): 3 runs, 2026-11-20" in text and "0123456789ab" in text
    assert results.reference_comparisons("demo", lines, tmp_path) == ""  # a matrix without references


def test_audit_records_make_their_table_with_the_mean_over_seeds():
    from benchmarks.report import audit_table

    records = [{"name": name, "seed": seed, "git_commit": "abc", "split": "val",
                "data": ["data.shortcut.bias=0.95"],
                "flip_rate": flip, "flip_rate_same_class": same, "shortcut_flip_rate": flip - same,
                "balanced_accuracy": {"clean": 0.9, "swap": swap, "roi": 0.5}}
               for name, seed, flip, same, swap in (("baseline", 0, 0.6, 0.2, 0.3),
                                                     ("baseline", 1, 0.4, 0.1, 0.5),
                                                     ("ceiling", 0, 0.05, 0.05, 0.8))]
    text = audit_table(records)
    assert "| baseline | 2 | 50.0 % | 15.0 % | 35.0 points | 90.0 | 40.0 | 50.0 |" in text
    assert "| ceiling | 1 | 5.0 % | 5.0 % | 0.0 points | 90.0 | 80.0 | 50.0 |" in text
    assert "3 audits of the val split with `data.shortcut.bias=0.95`, code abc" in text
    control = ("split", "data", "flip_rate_same_class", "shortcut_flip_rate")
    old = [{key: value for key, value in record.items() if key not in control}
           for record in records]  # audits recorded before the control
    assert "| baseline | 2 | 50.0 % | – | – | 90.0 | 40.0 | 50.0 |" in audit_table(old)
    assert "3 audits of the test split, code abc" in audit_table(old)


def test_the_clinical_record_makes_its_tables():
    from benchmarks.report import clinical_tables

    scores = {"ece": 0.2, "nll": 0.9, "brier": 0.5}
    after = {"ece": 0.05, "nll": 0.7, "brier": 0.45}
    group = {"images": 12, "patients": 10, "small": True,
             **{key: {"value": 0.5, "ci": [0.4, 0.6]} for key in ("accuracy", "balanced_accuracy", "auroc")}}
    difference = {"a": 0.7, "b": 0.8, "difference": 0.1, "ci": [0.05, 0.15], "p": 0.001}
    record = {"kermany_calibration": [{"seed": s, "temperature": t, "uncalibrated": scores,
                                       "temperature_scaled": after} for s, t in ((0, 1.5), (1, 2.5))],
              "kermany_paired": [{"seed": 0, "a": "baseline", "b": "hkd", "images": 624,
                                  "accuracy": {"a": 0.7, "b": 0.8, "p": 0.01},
                                  "balanced_accuracy": difference, "auroc": difference}],
              "covid_subgroups": {"images": 12, "patients": 10,
                                  "subgroups": {"columns": ["sex"], "groups": {"F": group}}}}
    text = clinical_tables(record)
    assert "| mean | 2.000 | 0.2000 → 0.0500 | 0.9000 → 0.7000 | 0.5000 → 0.4500 |" in text
    assert "| 0 | 70.0 → 80.0 | 0.01 | +10.0 (+5.0 to +15.0) | 0.001 |" in text
    assert "| F | 12 | 10 | 50.0 (40.0–60.0) |" in text and "small: read with care" in text


def test_records_with_the_last_epoch_get_its_columns_gap_and_swap_views():
    """A matrix whose records carry the last epoch shows it beside the selected checkpoint: its
    columns, the gap closed at each, and the validation swap views with the epochs selected."""

    def run(name: str, seed: int, selected: float, last: float, swap: float, ceiling: bool = False) -> dict:
        return {"name": name, "seed": seed, "fold": None, **({"ceiling": True} if ceiling else {}),
                "test": {"balanced_accuracy": selected, "worst_class_accuracy": selected - 0.1},
                "test_last_epoch": {"balanced_accuracy": last}, "epochs": {"selected": seed, "last": 5},
                "val": {"cf/balanced_accuracy": swap}, "val_last_epoch": {"cf_balanced_accuracy": swap / 2}}

    records = [run(name, seed, selected + 0.01 * seed, last + 0.01 * seed, swap)
               for seed in (0, 1) for name, selected, last, swap in
               (("baseline", 0.5, 0.5, 0.4), ("fix", 0.7, 0.6, 0.8), ("clean", 0.8, 0.8, 0.9))]
    records = [{**r, "ceiling": True} if r["name"] == "clean" else r for r in records]
    text = benchmark_report(records, ("test.balanced_accuracy",))
    assert "| worst_class_accuracy | balanced_accuracy, last epoch |" in text
    assert "gap closed (balanced_accuracy) |" in text
    assert "gap closed (balanced_accuracy, last epoch) |" in text
    assert "| fix | 2 | 67 % (gap 30.0 points)" in text and "| fix | 2 | 33 % (gap 30.0 points)" in text
    assert "| fix | 2 | 80.0 | 40.0 | 0, 1 (of 0 … 5) |" in text
    older = [{k: v for k, v in r.items() if "last" not in k and k != "epochs"} for r in records]
    assert "last epoch" not in benchmark_report(older, ("test.balanced_accuracy",))
