"""Public data-set layouts end to end: DICOMs through the cache into an HKD run; K-fold CV."""

import json

import numpy as np
from dicom_files import PIXELS, write_csv, write_dicom

from hkd.run.build import build_datamodule
from hkd.run.experiment import run_experiment


def test_dicom_data_set_trains_through_the_cache(tmp_path, tiny):
    """The RSNA layout end to end: DICOMs decoded into the cache, boxes as priors, an HKD run."""
    rows = []
    for number in range(16):
        patient = f"p{number}"
        rows.append([patient, 4 + number, 5, 15, 12, 1] if number % 2 else [patient, "", "", "", "", 0])
        photometric = "MONOCHROME1" if number % 3 else "MONOCHROME2"
        write_dicom(tmp_path / "stage_2_train_images" / f"{patient}.dcm", PIXELS + np.uint16(100 * number),
                    photometric=photometric)
    write_csv(tmp_path / "stage_2_train_labels.csv",
              ["patientId", "x", "y", "width", "height", "Target"], rows)
    cfg = tiny("data.format=rsna-pneumonia", f"data.root={tmp_path}", "data.folds=4", "data.fold=0",
               "method.name=hkd", "hkd.teacher_epochs=1")
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    sample = datamodule.datasets["train"][0]
    assert sample["image"].shape == (1, 32, 32) and float(sample["image"].std()) > 0
    run_dir = run_experiment(cfg)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["classes"] == ["no_opacity", "opacity"] and "accuracy" in summary["test"]


def test_cv_streams_every_fold_records_each_and_continues_where_it_stopped(tmp_path, capsys):
    """`hkd cv` on a folder data set: K real fold runs streamed epoch by epoch, one report with the
    mean over K; a second call skips finished folds and continues an interrupted one."""
    from conftest import TINY, make_folder_dataset

    from hkd.cli import main

    root = make_folder_dataset(tmp_path / "data", n_per_class=12)
    overrides = [*TINY, "data.format=folder", f"data.root={root}", "data.folds=2", "trainer.max_epochs=2",
                 f"output_dir={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}", "name=cv"]
    assert main(["cv", "quickstart", *overrides]) == 0
    out = capsys.readouterr().out
    for fold in (1, 2):
        for epoch in (1, 2):
            assert f"[fold {fold}/2 seed 42] train epoch {epoch}/2: train/loss" in out
    reports = list((tmp_path / "runs" / "cv").glob("cv-*.md"))
    assert len(reports) == 1
    text = reports[0].read_text()
    assert "| cv | 2 |" in text and "seed 42 fold 0:" in text and "seed 42 fold 1:" in text
    runs = sorted((tmp_path / "runs" / "cv").glob("cv-*-fold*"))
    assert [json.loads((r / "summary.json").read_text())["fold"] for r in runs] == [0, 1]
    # fold 1 "was killed" after its training: the next call continues it and leaves fold 0 alone
    first = (runs[0] / "summary.json").stat().st_mtime_ns
    (runs[1] / "summary.json").unlink()
    assert main(["cv", "quickstart", *overrides]) == 0
    out = capsys.readouterr().out
    assert "[fold 1/2 seed 42] finished earlier" in out and f"[fold 2/2 seed 42] continuing {runs[1]}" in out
    assert (runs[0] / "summary.json").stat().st_mtime_ns == first and (runs[1] / "summary.json").is_file()
    assert sorted((tmp_path / "runs" / "cv").glob("cv-*-fold*")) == runs  # no new run directories
    assert main(["cv", "quickstart", *overrides, "--seeds", "42", "7"]) == 0  # seed 42 is reused
    report = reports[0].read_text()
    assert "| cv | 4 |" in report and "2-fold cross-validation x 2 seeds" in report
    assert main(["cv", "quickstart", *overrides[:-4], "data.folds=0"]) == 2  # needs data.folds


def test_repeat_runs_the_papers_train_valid_protocol_once_per_seed(tmp_path, capsys):
    """`hkd repeat` with data.test_fraction=0: no test split, one run per seed, the report of the
    best checkpoints' validation metrics (mean ± std); the model card says it has no test split."""
    from conftest import TINY, make_folder_dataset

    from hkd.cli import main

    root = make_folder_dataset(tmp_path / "data", n_per_class=12)
    overrides = [*TINY, "data.format=folder", f"data.root={root}", "data.test_fraction=0",
                 f"output_dir={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}", "name=paper"]
    assert main(["repeat", "quickstart", *overrides, "--seeds", "0", "1"]) == 0
    runs = sorted((tmp_path / "runs" / "paper").glob("repeat-*-seed*"))
    summaries = [json.loads((run / "summary.json").read_text()) for run in runs]
    assert [s["seed"] for s in summaries] == [0, 1] and all(s["test"] == {} for s in summaries)
    assert all(s["splits"]["test"]["images"] == 0 for s in summaries)
    report = next((tmp_path / "runs" / "paper").glob("repeat-*.md")).read_text()
    accuracies = [100 * s["val"]["accuracy"] for s in summaries]
    assert f"| paper | 2 | {sum(accuracies) / 2:.1f} ±" in report and "val.accuracy" in report
    assert "test.accuracy" not in report  # nothing tested
    assert "no test split" in (runs[0] / "MODEL_CARD.md").read_text()
    assert main(["repeat", "quickstart", *overrides, "--seeds", "0"]) == 2  # one seed is no repeat
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "runs" / "paper"), "--plot", ""]) == 0
    assert f"| paper | 2 | {sum(accuracies) / 2:.1f} ±" in capsys.readouterr().out.split("No test split")[1]
