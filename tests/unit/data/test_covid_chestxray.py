"""The covid-chestxray loader on a tiny clone in the public layout (and on ../shared when present)."""

import csv
import json

import numpy as np
import pytest
from conftest import SHARED_COVID, write_png

from hkd.config import load_config
from hkd.data.formats.covid_chestxray import DEFAULT_FINDING_MAP, map_finding, read_covid_chestxray
from hkd.errors import InputError


@pytest.mark.parametrize("finding, label", [
    ("COVID-19", "covid19"), ("Pneumonia/Viral/COVID-19", "covid19"), ("COVID-19, ARDS", "covid19"),
    ("SARS", "viral"), ("Pneumonia/Viral/Influenza", "viral"),
    ("Streptococcus", "bacterial"), ("Pneumonia/Bacterial/Streptococcus", "bacterial"),
    ("Mycoplasma Bacterial Pneumonia", "bacterial"), ("Pneumonia/Fungal/Pneumocystis", "fungal"),
    ("No Finding", "healthy"), ("ARDS", None), ("Pneumonia/Lipoid", None), ("todo", None),
])
def test_findings_map_flat_and_hierarchical(finding, label):
    assert map_finding(finding, DEFAULT_FINDING_MAP) == label


def test_tiny_clone_in_the_public_layout(tmp_path):
    rows = [("1", "COVID-19", "PA", "X-ray", "a.png"), ("1", "COVID-19", "AP", "X-ray", "b.png"),
            ("2", "Pneumonia/Bacterial/Klebsiella", "AP Supine", "X-ray", "c.png"),
            ("3", "Streptococcus", "L", "X-ray", "d.png"), ("4", "Lipoid", "PA", "X-ray", "e.png"),
            ("5", "No Finding", "PA", "CT", "f.png")]
    with open(tmp_path / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patientid", "finding", "view", "modality", "folder", "filename", "sex", "age"])
        for row in rows:
            writer.writerow([*row[:4], "images", row[4], "F", "" if row[0] == "1" else "60"])
            write_png(tmp_path / "images" / row[4], np.full((40, 50), 100, np.uint8))
    (tmp_path / "annotations" / "lungVAE-masks").mkdir(parents=True)
    write_png(tmp_path / "annotations" / "lungVAE-masks" / "b_mask.png", np.full((40, 50), 255, np.uint8))
    (tmp_path / "annotations" / "imageannotation_ai_lung_bounding_boxes.json").write_text(json.dumps({
        "images": [{"id": 7, "file_name": "a.png"}], "categories": [{"id": 1, "name": "Right Lung"}],
        "annotations": [{"image_id": 7, "category_id": 1, "bbox": [2, 3, 10, 20]}]}))
    cfg = load_config("covid_cxr_baseline", [f"data.root={tmp_path}"])
    records, classes = read_covid_chestxray(cfg.data)
    assert classes == ["covid19", "viral", "bacterial", "fungal"]
    assert [(r.path.name, r.label, r.patient_id) for r in records] == [
        ("a.png", "covid19", "1"), ("b.png", "covid19", "1"), ("c.png", "bacterial", "2")]
    assert records[0].relevant[0].bounds() == (2, 3, 12, 23) and records[1].mask_path is not None
    assert not records[2].has_prior
    assert records[0].metadata == {"sex": "F", "age": "", "view": "PA", "location": ""}  # for subgroups
    assert records[2].metadata["view"] == "AP Supine" and records[2].metadata["age"] == "60"
    (tmp_path / "images" / "c.png").unlink()
    with pytest.raises(InputError, match="row 4: image file .*c.png"):
        read_covid_chestxray(cfg.data)


def test_missing_root_says_how_to_give_it():
    from hkd.config import ConfigError

    with pytest.raises(ConfigError, match="data.root=/path"):
        load_config("covid_cxr_baseline")


@pytest.mark.skipif(not SHARED_COVID.is_dir(), reason="../shared/datasets/covid-chestxray is absent")
def test_shared_data_set_has_the_documented_class_counts():
    cfg = load_config("covid_cxr_baseline", [f"data.root={SHARED_COVID}", "data.include_healthy=true"])
    records, classes = read_covid_chestxray(cfg.data)
    counts = {c: sum(r.label == c for r in records) for c in classes}
    assert counts == {"covid19": 427, "viral": 21, "bacterial": 32, "fungal": 12, "healthy": 19}
    with_outline = [r for r in records if any(len(region.polygon) > 4 for region in r.relevant)]
    assert len(with_outline) == 427  # V7's lung polygons (boxes have 4 corners)
    assert sum(r.has_prior for r in records) == 475  # of 511: boxes, outlines or lungVAE masks
