"""``MODEL_CARD.md`` of a run, generated from its own records (``summary.json``, the resolved
configuration and any external evaluations) — never from hand-written numbers."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from hkd.atomic import atomic_write_text

METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro F1",
                "auroc": "AUROC (macro, one-vs-rest)", "relevance_mass": "relevance mass",
                "pointing_game": "pointing game"}


def percent(value: float | None) -> str:
    return "–" if value is None or value != value else f"{100 * value:.1f}"


def metric_rows(values: dict, intervals: dict) -> list[str]:
    rows = ["| metric | value (%) | 95 % CI (bootstrap) |", "|---|---|---|"]
    for key, name in METRIC_NAMES.items():
        if key in values:
            low, high = intervals.get(key, [None, None])
            rows.append(f"| {name} | {percent(values[key])} | {percent(low)} – {percent(high)} |")
    return rows


def method_lines(cfg: DictConfig, summary: dict) -> list[str]:
    method = cfg.method.name
    lines = [f"- Method: `{method}`"]
    if method == "hkd":
        lines.append(f"  (Human Knowledge Distillation: a teacher trained on ROI images from the expert "
                     f"regions — `hkd.roi_mode={cfg.hkd.roi_mode}`, `hkd.roi_fill={cfg.hkd.roi_fill}`, "
                     f"prior from `{cfg.hkd.prior}` — then this student distilled from its features with "
                     f"α₀ = {cfg.hkd.alpha}; only the student is deployed and it needs no annotations)")
    elif method == "jtt":
        lines.append(f"  (Just Train Twice: the training errors of a {cfg.jtt.epochs}-epoch model "
                     f"up-weighted {cfg.jtt.upweight} × in this model's loss)")
    elif method != "baseline":
        lines.append(f"  (cross-entropy + {cfg.method.weight} × the method's annotation penalty)")
    swap = cfg.augment.counterfactual
    if swap.p:
        lines.append(f"- Counterfactual training: {swap.p:.0%} of each batch's images with the outside of "
                     f"their region from another image (partner `{swap.partner}`)")
    if "refit" in summary:
        refit = summary["refit"]
        lines.append(f"- Classifier head refitted on counterfactual views (`hkd refit`, backbone frozen) "
                     f"from {refit['from']}: logistic regression C = {refit['strength']} on "
                     f"{refit['train_views']} training swap views, chosen on {refit['val_views']} "
                     "validation swap views")
    if cfg.imil.enabled:
        lines.append(f"- IMIL: oracle `{cfg.imil.oracle}`, budget {cfg.imil.budget}, fill `{cfg.imil.fill}`, "
                     f"propagation {'on' if cfg.imil.propagate else 'off'}; "
                     f"{summary.get('imil_edited', 0)} training images edited, "
                     f"{summary.get('imil_clinician_edits', 0)} of them marked by the (simulated) clinician")
    lines += [f"- Backbone: `{cfg.model.backbone}` (initial weights: {cfg.model.pretrained or 'random'}; "
              f"the checkpoint holds all weights)",
              f"- Input: {cfg.data.image_size} × {cfg.data.image_size} px, {cfg.data.channels} channel(s), "
              f"normalised with mean {list(cfg.data.mean)} and std {list(cfg.data.std)}; DICOM through its "
              "modality and VOI LUT (or window), MONOCHROME1 inverted; 16-bit images min-max scaled",
              f"- Training: {cfg.trainer.max_epochs} epochs, `{cfg.optim.name}` lr {cfg.optim.lr}, "
              f"schedule `{cfg.optim.scheduler}`, augmentation `{cfg.augment.policy}`, seed {cfg.seed}; "
              f"checkpoint chosen by `{cfg.checkpoint.monitor}` ({cfg.checkpoint.mode}) on the "
              "validation split"]
    return lines


def data_lines(cfg: DictConfig, summary: dict) -> list[str]:
    splits = summary.get("splits", {})
    classes = summary["classes"]
    grouping = (f"fold {cfg.data.fold} of a patient-grouped {cfg.data.folds}-fold cross-validation"
                if cfg.data.folds else "patient-grouped splits (no patient in two splits)")
    root = f" at `{cfg.data.root}`" if cfg.data.root else ""
    lines = [f"- Source: `data.format={cfg.data.format}`{root}",
             f"- Classes: {', '.join(classes)}; {grouping}", "",
             "| split | images | patients | " + " | ".join(classes) + " |",
             "|---|---|---|" + "---|" * len(classes)]
    for split, counts in splits.items():
        lines.append(f"| {split} | {counts['images']} | {counts['patients']} | "
                     + " | ".join(str(counts["classes"].get(c, 0)) for c in classes) + " |")
    if cfg.data.prior_generator:
        lines += ["", f"- Regions: predicted by the saved generator `{cfg.data.prior_generator}` where the "
                      "data has none; the relevance mass and pointing game are measured against them."]
    if cfg.data.shortcut.kind:
        lines += ["", f"- **Stress test, not a model to use:** a planted `{cfg.data.shortcut.kind}` marker "
                      f"names the class in {100 * (cfg.data.shortcut.bias or 0):.0f} % of the training "
                      f"images (`data.shortcut.*`); test images: {cfg.data.shortcut.test}."]
    return lines


def external_lines(run_dir: Path) -> list[str]:
    found = sorted((run_dir / "external").glob("*/summary.json")) if (run_dir / "external").is_dir() else []
    if not found:
        return ["None yet: `hkd test RUN_DIR data.format=... data.root=...` evaluates this model on another "
                "data set and adds it here."]
    lines = []
    for path in found:
        external = json.loads(path.read_text())
        lines += [f"### {external['external']['name']} ({external['external']['images']} images, "
                  f"`data.format={external['data']}`)", "",
                  *metric_rows({**external["test"], **external["explanations"]}, external["test_ci"]), ""]
    return lines


AUDIT = "audit.json"  # RUN_DIR/audit/NAME/audit.json, written by `hkd audit`


def audits(run_dir: str | Path) -> list[dict]:
    """The run's shortcut audits (``hkd audit``), by name."""
    return [json.loads(path.read_text()) for path in sorted(Path(run_dir).glob(f"audit/*/{AUDIT}"))]


def audit_lines(run_dir: Path) -> list[str]:
    found = audits(run_dir)
    if not found:
        return ["None yet: `hkd audit RUN_DIR` measures how often the model's decision changes when only the "
                "pixels outside the relevant regions change, and adds it here."]
    return [f"- **{audit['name']}** ({audit['with_region']} images): {audit['verdict']} Flip rate 95 % CI "
            f"{100 * audit['flip_rate_ci'][0]:.1f} – {100 * audit['flip_rate_ci'][1]:.1f} %."
            for audit in found]


def clinical_lines(run_dir: Path) -> list[str]:
    """Calibration and the worst subgroup, from ``RUN_DIR/report/report.json`` (``hkd report``)."""
    path = run_dir / "report" / "report.json"
    if not path.is_file():
        return ["None yet: `hkd report RUN_DIR` writes the per-class, calibration and subgroup report."]
    report = json.loads(path.read_text())
    calibration = report["calibration"]
    lines = ["- Per-class sensitivity, specificity, PPV, NPV with 95 % CIs, ROC and PR curves: "
             "[report/report.md](report/report.md).",
             f"- Calibration as deployed: ECE {calibration['as_deployed']['ece']:.3f}, "
             f"Brier {calibration['as_deployed']['brier']:.3f}"
             + (f"; with the temperature {calibration['temperature_fitted_on_validation']:.2f} fitted on "
                f"validation: ECE {calibration['temperature_scaled']['ece']:.3f}"
                if "temperature_scaled" in calibration else "") + "."]
    groups = report.get("subgroups", {}).get("groups", {})
    large = {name: group for name, group in groups.items() if not group["small"]}
    if large:
        name, worst = min(large.items(), key=lambda item: item[1]["balanced_accuracy"]["value"])
        low, high = worst["balanced_accuracy"]["ci"]
        lines.append(f"- Worst subgroup by {' / '.join(report['subgroups']['columns'])} (of those with at "
                     f"least the minimum size): **{name}**, balanced accuracy "
                     f"{100 * worst['balanced_accuracy']['value']:.1f} % (95 % CI {100 * low:.1f} – "
                     f"{100 * high:.1f}), {worst['images']} images.")
    return lines


LIMITATIONS = """- **Not for clinical use.** Research software: not a medical device, not validated for
  diagnosis, screening or treatment decisions.
- Shortcuts: a model can reach a high validation accuracy by reading text tags, markers or devices
  that go with the label in its training data and fail where they don't (hkd's synthetic benchmark
  shows exactly this). Check where it looks (relevance mass, pointing game, the CAM overlays) and
  validate on data from another source before trusting a number.
- Relevance mass and pointing game measure Grad-CAM against the expert regions of annotated test
  images only; a plausible map is not proof of a correct reason.
- Small and imbalanced data give wide confidence intervals: read the intervals, not the point values.
- Populations differ: a model trained on one hospital, age group (e.g. children) or device may not
  transfer to another."""


def performance_lines(summary: dict, test: dict, n_test: object) -> list[str]:
    """The test metrics with their intervals; without a test split (the train / valid protocol,
    ``data.test_fraction=0``) the best checkpoint's validation metrics, said to be those."""
    if summary.get("test"):
        return [f"## Performance on the test split ({n_test} images)", "",
                *metric_rows(test, summary.get("test_ci", {})), ""]
    return ["## Performance (no test split: the train / valid protocol)", "",
            "Validation metrics of the checkpoint chosen on the same validation split: an optimistic "
            "estimate, as in the papers' protocol.", "", *metric_rows(summary.get("val", {}), {}), ""]


def write_model_card(run_dir: str | Path, cfg: DictConfig) -> Path:
    """(Re)write ``RUN_DIR/MODEL_CARD.md`` from the run's ``summary.json`` and external results."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    test = {**summary["test"], **summary.get("explanations", {})}
    n_test = summary.get("splits", {}).get("test", {}).get("images", "?")
    text = "\n".join([
        f"# Model card: {summary['name']} — run {run_dir.name}", "",
        "> Research software, **not for clinical use**. Generated by hkd from this run's own records.", "",
        "## Model", "", *method_lines(cfg, summary), "",
        "## Data", "", *data_lines(cfg, summary), "",
        *performance_lines(summary, test, n_test),
        "Relevance mass: the share of the Grad-CAM of the true class inside the expert regions; pointing "
        "game: how often its maximum lies inside them (annotated test images only).", "",
        "## Clinical evaluation", "", *clinical_lines(run_dir), "",
        "## External validation", "", *external_lines(run_dir), "",
        "## Shortcut audit", "", *audit_lines(run_dir), "",
        "## Intended use and limitations", "",
        "Intended use: research on training classifiers with expert annotations (HKD, IMIL and the "
        "annotation-guided baselines), comparing methods and inspecting what models look at.", "",
        LIMITATIONS, ""])
    return atomic_write_text(run_dir / "MODEL_CARD.md", text)
