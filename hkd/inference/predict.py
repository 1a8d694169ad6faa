"""``hkd predict RUN_DIR INPUT...``: classify image files, folders or a ``labels.csv`` with a run's
model and preprocessing; ``predictions.csv`` and, with ``--cam``, a Grad-CAM overlay per image."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from hkd.atomic import atomic_write_csv, atomic_write_png
from hkd.data.dicom import DICOM_SUFFIXES, is_dicom
from hkd.errors import InputError
from hkd.explanations.cam import explain_batch
from hkd.inference.model import load_model
from hkd.inference.preprocessing import Preprocessing

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", *DICOM_SUFFIXES}


def expand_inputs(inputs: list[str | Path]) -> list[tuple[Path, str | None]]:
    """Every image to classify and its true label when known: files as given, folders searched
    for images (recursively), ``labels.csv`` read as ``image,label`` relative to its folder."""
    found: list[tuple[Path, str | None]] = []
    for given in map(Path, inputs):
        if given.is_dir():  # images by suffix, and suffix-less files that are DICOM (PACS exports)
            found += [(p, None) for p in sorted(given.rglob("*")) if p.is_file() and (
                p.suffix.lower() in IMAGE_SUFFIXES or (not p.suffix and is_dicom(p)))]
        elif given.suffix.lower() == ".csv":
            with open(given, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                if not reader.fieldnames or "image" not in reader.fieldnames:
                    raise InputError(f"{given}: a labels file needs an 'image' column (and 'label')")
                found += [(given.parent / row["image"], row.get("label") or None) for row in reader]
        elif given.is_file():
            found.append((given, None))
        else:
            raise InputError(f"{given}: no such file or folder")
    return found


def cam_overlay(pixels: np.ndarray, cam: np.ndarray) -> Image.Image:
    """The preprocessed image (grayscale) with the CAM (jet) blended over it."""
    gray = np.repeat(pixels.mean(0)[..., None], 3, axis=-1)
    heat = matplotlib.colormaps["jet"](cam)[..., :3]
    blended = (0.6 * gray + 0.4 * heat).clip(0, 1)
    return Image.fromarray((blended * 255).astype(np.uint8))


def predict_files(run_dir: str | Path, inputs: list[str | Path], out_dir: str | Path,
                  cam: bool = False, batch_size: int = 32) -> tuple[Path, int, list[str]]:
    """Classify every input; return predictions.csv, how many were classified, and the errors
    (unreadable files are reported by name and skipped)."""
    model, preprocessing = load_model(run_dir)
    items = expand_inputs(inputs)
    out_dir = Path(out_dir)
    rows, errors = [], []
    for start in tqdm(range(0, len(items), batch_size), desc="predict", unit="batch", file=sys.stderr):
        loaded = []
        for path, label in items[start:start + batch_size]:
            try:
                loaded.append((path, label, preprocessing.pixels(path)))
            except (InputError, OSError, ValueError) as error:
                errors.append(f"{path}: {error}")
        if loaded:
            rows += classify(model, preprocessing, loaded, out_dir if cam else None, first=len(rows))
    for error in errors:
        print(f"skipped {error}", file=sys.stderr)
    if not rows:  # keep an earlier predictions.csv rather than replace it with nothing
        return out_dir / "predictions.csv", 0, errors
    return atomic_write_csv(out_dir / "predictions.csv", rows), len(rows), errors


def classify(model, preprocessing: Preprocessing, loaded: list, cam_dir: Path | None,
             first: int = 0) -> list[dict]:
    """One batch: a predictions row per image (and its CAM overlay under ``cam_dir/cams``, named
    by the image's position ``first + n`` and stem)."""
    images = torch.stack([preprocessing.normalize(pixels) for _, _, pixels in loaded])
    if cam_dir is None:
        with torch.no_grad():
            probabilities = model(images.to(model.device)).softmax(1).cpu()
    else:
        probabilities, cams = explain_batch(model, {"image": images}, of_prediction=True)
    classes = preprocessing.classes
    rows = []
    for number, ((path, label, pixels), p) in enumerate(zip(loaded, probabilities)):
        predicted = classes[int(p.argmax())]
        row = {"file": str(path), "prediction": predicted,
               **{f"p_{c}": f"{float(v):.6f}" for c, v in zip(classes, p)}, "label": label or "",
               "correct": "" if label is None else str(label == predicted).lower()}
        if cam_dir is not None:
            row["cam"] = f"cams/{first + number:05d}-{path.stem}.png"
            atomic_write_png(cam_dir / row["cam"], cam_overlay(pixels, cams[number].numpy()))
        rows.append(row)
    return rows
