"""DICOM decoding with pydicom: modality LUT, VOI LUT / windowing, MONOCHROME1 inverted.

Pixel values stay in float32 until the final scaling to [0, 1], so 12- and 16-bit data keep their
precision. Compressed transfer syntaxes (JPEG 2000 in SIIM, JPEG-LS) need a pixel-data plugin such
as ``pylibjpeg[all]`` or ``python-gdcm``; without one the error names the file and the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hkd.errors import InputError

DICOM_SUFFIXES = (".dcm", ".dicom")


def is_dicom(path: Path) -> bool:
    """By content (the ``DICM`` preamble marker, via pydicom), with the suffix as a fallback for
    files without a preamble; a file that cannot be opened is judged by its suffix."""
    from pydicom.misc import is_dicom as has_dicom_marker

    try:
        if has_dicom_marker(path):
            return True
    except OSError:
        pass
    return path.suffix.lower() in DICOM_SUFFIXES


def _read(path: Path, where: str, pixels: bool):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise InputError(f"{where or path}: cannot read DICOM file {path}: {error}") from error


def dicom_size(path: Path, where: str = "") -> tuple[int, int]:
    """(width, height) from the header, without decoding the pixels."""
    dataset = _read(path, where, pixels=False)
    if "Rows" not in dataset or "Columns" not in dataset:
        raise InputError(f"{where or path}: DICOM file {path} has no Rows/Columns (not an image)")
    return int(dataset.Columns), int(dataset.Rows)


def decode_dicom(path: Path, where: str = "") -> np.ndarray:
    """A DICOM image as float32 (H, W) in [0, 1], bright = dense (bone white, as on a film)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    dataset = _read(path, where, pixels=True)
    try:
        array = dataset.pixel_array
    except Exception as error:  # pydicom raises several types for missing decoders/broken data
        raise InputError(f"{where or path}: cannot decode the pixels of {path} "
                        f"(transfer syntax {dataset.file_meta.get('TransferSyntaxUID', '?')}; compressed "
                        f"files need `pip install pylibjpeg[all]` or python-gdcm): {error}") from error
    if array.ndim != 2:
        raise InputError(f"{where or path}: {path} holds {array.shape} pixels; expected one 2-D "
                        "grayscale frame")
    array = apply_modality_lut(array, dataset).astype(np.float32)
    has_window = "WindowCenter" in dataset and "WindowWidth" in dataset
    if has_window or "VOILUTSequence" in dataset:
        array = np.asarray(apply_voi_lut(array, dataset, index=0), dtype=np.float32)
    low, high = float(array.min()), float(array.max())
    array = (array - low) / (high - low) if high > low else np.zeros_like(array)
    if str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        array = 1.0 - array  # MONOCHROME1: low values are white
    return array


HEADER_METADATA = {"sex": "PatientSex", "age": "PatientAge", "view": "ViewPosition"}  # subgroup reports


def header_metadata(path: Path) -> dict[str, str]:
    """The subgroup fields of a DICOM header (sex, age, view; blank where absent), without pixels."""
    dataset = _read(path, "", pixels=False)
    return {name: str(dataset.get(keyword, "") or "").strip() for name, keyword in HEADER_METADATA.items()}


def image_metadata(record) -> dict[str, str]:
    """A record's metadata, with a DICOM file's header fields where the loader read none."""
    if record.metadata or not is_dicom(Path(record.path)):
        return dict(record.metadata)
    return header_metadata(Path(record.path))
