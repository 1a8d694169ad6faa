"""The model card's clinical lines: calibration as deployed and after the fitted temperature, and
the worst subgroup among those of adequate size (a small one is never named the worst)."""

import json

from hkd.reporting.model_card import clinical_lines


def group(images: int, balanced: float, small: bool) -> dict:
    interval = [balanced - 0.1, balanced + 0.1]
    return {"images": images, "small": small, "balanced_accuracy": {"value": balanced, "ci": interval}}


def test_the_card_names_calibration_and_the_worst_adequate_subgroup(tmp_path):
    (tmp_path / "report").mkdir()
    calibration = {"as_deployed": {"ece": 0.12, "brier": 0.3}, "temperature_fitted_on_validation": 1.7,
                   "temperature_scaled": {"ece": 0.04, "brier": 0.28}}
    groups = {"F": group(80, 0.7, False), "M": group(90, 0.8, False), "O": group(3, 0.1, True)}
    report = {"calibration": calibration, "subgroups": {"columns": ["sex"], "groups": groups}}
    (tmp_path / "report" / "report.json").write_text(json.dumps(report))
    text = "\n".join(clinical_lines(tmp_path))
    assert "ECE 0.120" in text and "temperature 1.70 fitted on validation: ECE 0.040" in text
    assert "**F**, balanced accuracy 70.0 % (95 % CI 60.0 – 80.0), 80 images" in text and "**O**" not in text
    assert "hkd report RUN_DIR" in clinical_lines(tmp_path / "elsewhere")[0]
