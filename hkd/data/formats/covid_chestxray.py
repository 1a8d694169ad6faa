"""The COVID-19 image data collection (github.com/ieee8023/covid-chestxray-dataset) layout:
``metadata.csv``, ``images/``, ``annotations/imageannotation_ai_lung_bounding_boxes.json`` (COCO
lung boxes), ``annotations/v7-lung-polygons.json`` (V7's COCO lung outlines, where present) and
``annotations/lungVAE-masks/<stem>_mask.png``; an image's lung region is the union of all three.
Frontal X-rays only; the lungs are the relevant regions; ``finding`` maps to classes through an
ordered table (first match wins)."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path

from hkd.data.formats.folder import apply_coco
from hkd.data.formats.source import DataSource
from hkd.data.formats.tables import map_finding
from hkd.data.image_record import Record
from hkd.errors import InputError

log = logging.getLogger(__name__)

FRONTAL_VIEWS = ("PA", "AP", "AP Supine")
# Substring of `finding` (case-insensitive) -> class; works for flat ("Streptococcus") and
# hierarchical ("Pneumonia/Bacterial/Streptococcus") findings. Order matters: first match wins.
DEFAULT_FINDING_MAP = {
    "COVID-19": "covid19",
    "SARS": "viral", "MERS": "viral", "Influenza": "viral", "Varicella": "viral",
    "Herpes": "viral", "Viral": "viral",
    "Streptococcus": "bacterial", "Klebsiella": "bacterial", "Legionella": "bacterial",
    "Mycoplasma": "bacterial", "Nocardia": "bacterial", "Staphylococcus": "bacterial",
    "MRSA": "bacterial", "E.Coli": "bacterial", "Chlamydophila": "bacterial",
    "Bacterial": "bacterial",
    "Pneumocystis": "fungal", "Aspergillosis": "fungal", "Fungal": "fungal",
    "No Finding": "healthy",
}
CLASSES = ("covid19", "viral", "bacterial", "fungal")
METADATA = ("sex", "age", "view", "location")  # metadata.csv columns kept for subgroup reports
ANNOTATION_FILES = ("imageannotation_ai_lung_bounding_boxes.json", "v7-lung-polygons.json")


def read_covid_chestxray(source: DataSource, seed: int = 0) -> tuple[list[Record], list[str]]:
    """The records and classes of data.root (``seed`` is unused: the release fixes its images)."""
    root = Path(source.root)
    metadata = root / "metadata.csv"
    if not metadata.is_file():
        raise InputError(f"{metadata} is missing: data.root must be a clone of the "
                        "covid-chestxray-dataset (metadata.csv, images/, annotations/)")
    table = dict(source.finding_map) if source.finding_map else DEFAULT_FINDING_MAP
    classes = list(source.classes) if source.classes else \
        list(CLASSES) + (["healthy"] if source.include_healthy else [])
    records, dropped = [], Counter()
    with open(metadata, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        missing = {"patientid", "finding", "view", "modality", "filename"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(f"{metadata}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            if row["modality"] != "X-ray" or row["view"] not in FRONTAL_VIEWS:
                continue
            label = map_finding(row["finding"], table)
            if label not in classes:
                dropped[row["finding"]] += 1
                continue
            folder = row.get("folder") or "images"
            path = root / folder / row["filename"]
            if not path.is_file():
                raise InputError(f"{metadata} row {line}: image file {path} does not exist")
            mask = root / "annotations" / "lungVAE-masks" / f"{Path(row['filename']).stem}_mask.png"
            records.append(Record(path=path.resolve(), label=label, patient_id=row["patientid"],
                                  mask_path=mask if mask.is_file() else None,
                                  source=f"{metadata} row {line}",
                                  metadata={key: (row.get(key) or "").strip() for key in METADATA}))
    if dropped:
        log.warning("covid-chestxray: dropped %d images whose finding maps to no class: %s",
                    sum(dropped.values()), dict(dropped))
    for name in ANNOTATION_FILES:  # every lung region there is: boxes, and V7's outlines where present
        path = root / "annotations" / name
        clipped = apply_coco(records, path, root / "images", clip=True) if path.is_file() else 0
        if clipped:
            log.warning("covid-chestxray: clipped %d lung regions of %s that crossed their image's border",
                        clipped, name)
    return records, classes
