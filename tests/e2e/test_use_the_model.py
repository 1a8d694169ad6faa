"""A trained model outside its run: predict on files of every kind, external validation with
confidence intervals, ONNX / TorchScript export, a model card, loading without the original
weights file."""

import csv
import json

import numpy as np
import pytest
import timm
import torch
from conftest import tiny_config, write_png
from dicom_files import write_dicom

from hkd import load_model
from hkd.cli import main
from hkd.inference.preprocessing import Preprocessing
from hkd.run.checkpoints import load_classifier
from hkd.run.experiment import run_experiment


def mixed_format_data(root):
    """Two classes told apart by a bright square's position, stored as 8-bit PNG, 16-bit PNG,
    DICOM and inverted (MONOCHROME1) DICOM, with a split column that puts each kind in test."""
    rng = np.random.default_rng(0)
    rows = []
    for k, label in enumerate(("a", "b")):
        for i in range(20):
            image = rng.uniform(0, 60, (40, 44))
            image[8:18, 4 + 22 * k:14 + 22 * k] = 220
            kind, stem = i % 4, f"img/{label}_{i:02d}"
            if kind == 0:
                name = f"{stem}.png"
                write_png(root / name, image.astype(np.uint8))
            elif kind == 1:
                name = f"{stem}_16bit.png"
                write_png(root / name, (image * 250).astype(np.uint16))
            elif kind == 2:
                name = f"{stem}.dcm"
                write_dicom(root / name, (image * 10).astype(np.uint16))
            else:
                name = f"{stem}_mono1.dcm"
                write_dicom(root / name, (3000 - image * 10).astype(np.uint16), photometric="MONOCHROME1")
            split = ("train", "train", "train", "val", "test")[i % 5]
            rows.append({"image": name, "label": label, "patient_id": f"{label}{i}", "split": split})
    with open(root / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("folder")
    root = mixed_format_data(tmp / "data")
    cfg = tiny_config(tmp, "data.format=folder", f"data.root={root}", "trainer.max_epochs=2")
    return run_experiment(cfg), root


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    return run_experiment(tiny_config(tmp_path_factory.mktemp("synthetic"), "trainer.max_epochs=2"))


def test_a_run_records_its_test_predictions_and_a_model_card(folder_run):
    run_dir, _ = folder_run
    summary = json.loads((run_dir / "summary.json").read_text())
    predictions = read_csv(run_dir / "test_predictions.csv")
    assert len(predictions) == summary["splits"]["test"]["images"] == 8
    accuracy = np.mean([row["prediction"] == row["label"] for row in predictions])
    assert accuracy == pytest.approx(summary["test"]["accuracy"])
    card = (run_dir / "MODEL_CARD.md").read_text()
    low, high = summary["test_ci"]["accuracy"]
    row = f"| accuracy | {100 * summary['test']['accuracy']:.1f} | {100 * low:.1f} – {100 * high:.1f} |"
    assert row in card
    assert "not for clinical use" in card and "| test | 8 | 8 | 4 | 4 |" in card


def test_predict_equals_the_runs_own_test_predictions_for_every_file_kind(folder_run, tmp_path, capsys):
    run_dir, root = folder_run
    assert main(["predict", str(run_dir), str(root / "labels.csv"), "--out", str(tmp_path)]) == 0
    predicted = {row["file"]: row for row in read_csv(tmp_path / "predictions.csv")}
    assert len(predicted) == 40
    own = read_csv(run_dir / "test_predictions.csv")
    names = [row["file"].rsplit("/", 1)[1] for row in own]
    assert {name.split(".", 1)[1] for name in names} == {"png", "dcm"}  # every kind is in the test split
    assert any(n.endswith("_16bit.png") for n in names) and any(n.endswith("_mono1.dcm") for n in names)
    for row in own:  # same preprocessing as training: same probabilities
        mine = predicted[row["file"]]
        assert mine["prediction"] == row["prediction"] and mine["label"] == row["label"]
        assert mine["correct"] == str(row["label"] == row["prediction"]).lower()
        for key in ("p_a", "p_b"):
            assert float(mine[key]) == pytest.approx(float(row[key]), abs=1e-5)


def test_predict_reports_an_unreadable_file_by_name_and_keeps_the_rest(folder_run, tmp_path, capsys):
    run_dir, root = folder_run
    folder = tmp_path / "new"
    folder.mkdir()
    (folder / "a.png").write_bytes((root / "img" / "a_00.png").read_bytes())
    (folder / "b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "c.dcm").write_bytes((root / "img" / "b_02.dcm").read_bytes())
    out = tmp_path / "out"
    assert main(["predict", str(run_dir), str(folder), "--out", str(out), "--cam"]) == 0
    assert "b_broken.png" in capsys.readouterr().err
    rows = read_csv(out / "predictions.csv")
    assert [row["file"].rsplit("/", 1)[1] for row in rows] == ["a.png", "c.dcm"]
    assert all((out / row["cam"]).is_file() for row in rows) and len(list((out / "cams").iterdir())) == 2
    before = (out / "predictions.csv").read_bytes()
    assert main(["predict", str(run_dir), str(folder / "b_broken.png"), "--out", str(out)]) == 1
    assert (out / "predictions.csv").read_bytes() == before  # nothing written so far is lost
    assert main(["predict", str(run_dir), str(folder / "missing.png")]) == 2


def test_external_test_on_another_synthetic_set_and_on_its_own_test_split(synthetic_run, capsys):
    run_dir = synthetic_run
    assert main(["test", str(run_dir), "data.synthetic.seed=7", "--name", "seed7"]) == 0
    external = json.loads((run_dir / "external" / "seed7" / "summary.json").read_text())
    assert external["external"]["images"] == 72 and external["name"].endswith("@seed7")
    for key, value in {**external["test"], **external["explanations"]}.items():
        low, high = external["test_ci"][key]
        assert low <= value <= high, key
    assert (run_dir / "external" / "seed7" / "confusion_matrix.png").is_file()
    assert (run_dir / "external" / "seed7" / "cam_overlays.png").is_file()
    assert "### seed7 (72 images" in (run_dir / "MODEL_CARD.md").read_text()
    # on the run's own test split it measures exactly what the run measured
    assert main(["test", str(run_dir), "--split", "test", "--name", "own"]) == 0
    own = json.loads((run_dir / "external" / "own" / "summary.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "auroc"):
        assert own["test"][key] == pytest.approx(summary["test"][key], abs=1e-4), key
    for key in ("relevance_mass", "pointing_game"):
        assert own["explanations"][key] == pytest.approx(summary["explanations"][key], abs=1e-4), key
    capsys.readouterr()
    assert main(["compare", str(run_dir), "--plot", ""]) == 0
    table = capsys.readouterr().out
    assert "quickstart@seed7" in table and "quickstart@own" in table


def test_external_test_names_a_class_the_model_does_not_know(synthetic_run, capsys):
    run_dir = synthetic_run
    assert main(["test", str(run_dir), "data.include_healthy=true", "--name", "healthy"]) == 2
    error = capsys.readouterr().err
    assert "class 'healthy' of the test data is not a class of the model" in error and "--map" in error
    assert main(["test", str(run_dir), "data.include_healthy=true", "--map", "healthy=covid19",
                 "--name", "healthy"]) == 0
    external = json.loads((run_dir / "external" / "healthy" / "summary.json").read_text())
    assert external["external"]["class_map"] == {"healthy": "covid19"}
    assert main(["test", str(run_dir), "data.image_size=48"]) == 2  # the model fixes its input


def test_export_round_trips_through_onnxruntime_and_torchscript(folder_run):
    import onnxruntime

    run_dir, root = folder_run
    model, preprocessing = load_model(run_dir)
    files = [root / row["file"] for row in read_csv(run_dir / "test_predictions.csv")]
    images = torch.stack([preprocessing.load(path) for path in files])
    with torch.no_grad():
        expected = model(images).numpy()
    assert main(["export", str(run_dir), "--format", "onnx"]) == 0
    assert main(["export", str(run_dir), "--format", "torchscript"]) == 0
    session = onnxruntime.InferenceSession(str(run_dir / "export" / "model.onnx"))
    onnx_logits = session.run(["logits"], {"image": images.numpy()})[0]
    scripted = torch.jit.load(str(run_dir / "export" / "model.pt"))
    with torch.no_grad():
        script_logits = scripted(images).numpy()
    assert np.abs(onnx_logits - expected).max() <= 1e-4
    assert np.abs(script_logits - expected).max() <= 1e-4
    description = json.loads((run_dir / "export" / "model.onnx.json").read_text())
    assert description["classes"] == ["a", "b"] and description["image_size"] == 32
    assert description["mean"] == [0.5] and description["std"] == [0.25]
    assert "MONOCHROME1" in description["decoding"]
    assert Preprocessing(**{k: description[k] for k in ("image_size", "channels", "mean", "std", "classes")}
                         ).load(files[0]).shape == (1, 32, 32)


def test_an_hkd_model_is_loaded_and_exported_without_its_teacher(tmp_path):
    import onnx

    run_dir = run_experiment(tiny_config(tmp_path, "method.name=hkd", "hkd.teacher_epochs=1"))
    checkpoint = torch.load(json.loads((run_dir / "summary.json").read_text())["best_checkpoint"],
                            weights_only=False)
    assert any(key.startswith("method.teacher.") for key in checkpoint["state_dict"])  # training kept it
    model, _ = load_model(run_dir)
    student = sum(p.numel() for p in model.net.parameters())
    assert not any(key.startswith("method.") for key in model.state_dict())
    assert sum(p.numel() for p in model.parameters()) == student
    assert main(["export", str(run_dir), "--format", "torchscript"]) == 0
    assert main(["export", str(run_dir), "--format", "onnx"]) == 0
    scripted = torch.jit.load(str(run_dir / "export" / "model.pt"))
    assert sum(p.numel() for p in scripted.parameters()) == student
    graph = onnx.load(str(run_dir / "export" / "model.onnx")).graph
    stored = sum(int(np.prod(tensor.dims)) for tensor in graph.initializer)
    buffers = sum(b.numel() for b in model.net.buffers())
    assert stored <= student + buffers < 1.5 * student  # no second (teacher) network inside


def test_loading_needs_no_pretrained_weights_file(tmp_path):
    weights = tmp_path / "imagenet.pth"
    torch.save(timm.create_model("test_resnet", num_classes=1000, in_chans=3).state_dict(), weights)
    run_dir = run_experiment(tiny_config(tmp_path, f"model.pretrained={weights}"))
    weights.unlink()  # the file the run started from is gone
    model, preprocessing = load_model(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    notebook_model = load_classifier(summary["best_checkpoint"])
    image = torch.zeros(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(image), notebook_model(image))
    assert preprocessing.classes == tuple(summary["classes"])
