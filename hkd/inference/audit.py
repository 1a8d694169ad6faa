"""``hkd audit RUN_DIR [data.* keys]``: is a trained model right for the right reasons? A shortcut
audit of any run's model on any data set (its own split, or external data as ``hkd test`` reads it),
from the images' relevant regions (annotations, or the lungs ``data.prior_generator`` predicts).

Every image with a region R is seen four ways (``hkd.data.counterfactual``): as it is; with the
pixels outside R swapped in from an image of another class (*swap*); with them filled (*roi*); and,
the control, swapped in from another image of the same class (*swap_same*). The audit reports the
share of images whose predicted class the swap changes (the flip rate), the same under the control,
their difference — the flips that follow the class the outside came from, the *shortcut flip rate*,
which an imperfect prior or an unnatural swap alone does not raise — balanced accuracy under each
view and per class, the relevance mass of the Grad-CAM inside R — each with a
bootstrap 95 % interval — the images whose decision changes most (original, swapped and Grad-CAM
side by side), and one plain verdict line. Written to ``RUN_DIR/audit/NAME/`` (``audit.json``,
``audit.md``, ``changed_most.png``) and summarised in the run's ``MODEL_CARD.md``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from hkd.atomic import atomic_write_json, atomic_write_text
from hkd.errors import ConfigError, InputError
from hkd.explanations.cam import upsample
from hkd.explanations.metrics import region_scores
from hkd.inference.external import external_config
from hkd.inference.model import load_model
from hkd.reporting.compare import mean_interval
from hkd.reporting.figures import save_figure
from hkd.reporting.model_card import AUDIT, write_model_card
from hkd.reporting.statistics import bootstrap_intervals, classification_scores
from hkd.run.build import build_datamodule, swap_settings
from hkd.run.saved_prior import apply_saved_prior

SPLITS = ("train", "val", "test")
VIEWS = ("swap", "roi", "swap_same")  # the views every audited image is seen in besides as it is


@torch.no_grad()
def views_of(model, batch: dict) -> dict[str, torch.Tensor]:
    """Class probabilities of the image and its three views, and the true class's Grad-CAM
    relevance mass inside the region (NaN without one)."""
    device = model.device
    clean_logits, cam = model.true_class_cams(batch["image"].to(device), batch["label"].to(device))
    mass, _ = region_scores(cam, batch["prior"].to(device), batch["has_prior"].to(device))
    views = torch.cat([batch[f"cf_{view}"] for view in VIEWS]).to(device)
    probabilities = dict(zip(VIEWS, (logits.softmax(1).cpu() for logits in model(views).float().chunk(3))))
    return {"clean": model.calibrated(clean_logits).float().softmax(1).cpu(), **probabilities,
            "relevance_mass": mass.cpu(), "cam": upsample(cam, tuple(batch["image"].shape[-2:])).cpu()}


def audit_model(run_dir: str | Path, overrides: list[str], split: str = "test", name: str | None = None,
                n_images: int = 8, bootstrap: int = 1000) -> Path:
    """Audit the run's model on ``split`` of the data the overrides describe (the run's own by
    default); the audit's folder."""
    if split not in SPLITS:
        raise ConfigError(f"--split {split} is not one of {', '.join(SPLITS)}")
    run_dir = Path(run_dir)
    model, _ = load_model(run_dir)
    cfg = external_config(run_dir, overrides)
    datamodule = build_datamodule(cfg)
    if datamodule.classes != model.classes:
        raise InputError(f"the data's classes {datamodule.classes} are not the model's {model.classes}: "
                         f"list the model's in data.classes=[{','.join(model.classes)}]")
    apply_saved_prior(cfg, datamodule)
    datamodule.add_counterfactual_views(split, swap_settings(cfg), control=True)
    dataset = datamodule.datasets[split]
    parts: dict[str, list] = {}
    for batch in DataLoader(dataset, batch_size=int(cfg.data.eval_batch_size)):
        out = views_of(model, batch)
        for key, value in {**out, "label": batch["label"], "idx": batch["idx"],
                           "has_region": batch["has_region"]}.items():
            parts.setdefault(key, []).append(value.numpy() if key != "cam" else value)
    found = {key: np.concatenate([np.asarray(v) for v in values]) if key != "cam" else torch.cat(values)
             for key, values in parts.items()}
    name = name or f"{cfg.data.format}-{split}"
    folder = run_dir / "audit" / name
    report = summarise(found, model.classes, bootstrap, int(cfg.seed))
    without = found["idx"][~found["has_region"].astype(bool)][:10]
    report.update(name=name, split=split, data=cfg.data.format, root=cfg.data.root,
                  without_region_first=[datamodule.names[int(i)] for i in without])
    folder.mkdir(parents=True, exist_ok=True)
    changed_most_figure(dataset, found, n_images, folder / "changed_most.png", model.classes)
    atomic_write_json(folder / AUDIT, report)
    atomic_write_text(folder / "audit.md", markdown(report))
    write_model_card(run_dir, OmegaConf.load(run_dir / "config.yaml"))
    return folder


def summarise(found: dict, classes: list[str], bootstrap: int, seed: int) -> dict:
    """The audit's numbers over the images with a region."""
    region = found["has_region"].astype(bool)
    n = int(region.sum())
    if n == 0:
        raise InputError("no image of this split has a relevant region (annotations, or "
                         "data.prior_generator): there is nothing to audit against")
    labels = found["label"][region]
    probabilities = {view: found[view][region] for view in ("clean", *VIEWS)}
    predicted = probabilities["clean"].argmax(1)
    flips = (probabilities["swap"].argmax(1) != predicted).astype(float)
    control_flips = (probabilities["swap_same"].argmax(1) != predicted).astype(float)
    mass = found["relevance_mass"][region]
    per_sample = {"flip_rate": flips, "flip_rate_same_class": control_flips,
                  "shortcut_flip_rate": flips - control_flips, "relevance_mass": mass}
    intervals = {view: bootstrap_intervals(p, labels, per_sample, bootstrap, seed=seed)
                 for view, p in probabilities.items()}
    per_class = {}
    for k, name in enumerate(classes):
        mine = labels == k
        if not mine.any():
            continue
        per_class[name] = {"images": int(mine.sum()), "flip_rate": float(flips[mine].mean()),
                           "flip_rate_ci": mean_interval(list(flips[mine]), bootstrap, seed),
                           "shortcut_flip_rate": float((flips - control_flips)[mine].mean()),
                           **{f"recall_{view}": float((p[mine].argmax(1) == k).mean())
                              for view, p in probabilities.items()}}
    scores = {view: classification_scores(p, labels)["balanced_accuracy"]
              for view, p in probabilities.items()}
    rates = {key: float(per_sample[key].mean()) for key in ("flip_rate", "flip_rate_same_class",
                                                            "shortcut_flip_rate")}
    verdict = (f"For {100 * rates['flip_rate']:.0f} % of the {n} images with a relevant region the decision "
               f"changes when only the pixels outside it change (swapped in from an image of another class), "
               f"for {100 * rates['flip_rate_same_class']:.0f} % when they come from an image of the same "
               f"class: {100 * rates['shortcut_flip_rate']:.0f} points of the flips follow the class the "
               f"outside came from; balanced accuracy {100 * scores['clean']:.1f} % as they are, "
               f"{100 * scores['swap']:.1f} % swapped, {100 * scores['roi']:.1f} % with only the region.")
    return {"images": int(len(region)), "with_region": n, "without_region": int(len(region) - n),
            **rates, **{f"{key}_ci": intervals["clean"][key] for key in rates},
            "balanced_accuracy": scores,
            "balanced_accuracy_ci": {view: intervals[view]["balanced_accuracy"] for view in intervals},
            "relevance_mass": float(np.nanmean(mass)) if not np.isnan(mass).all() else None,
            "relevance_mass_ci": intervals["clean"]["relevance_mass"], "per_class": per_class,
            "verdict": verdict}


def markdown(report: dict) -> str:
    """The audit as a short report."""
    def ci(values: list[float]) -> str:
        return f"{100 * values[0]:.1f} – {100 * values[1]:.1f}"

    lines = [f"# Shortcut audit: {report['name']}", "", report["verdict"], "",
             f"{report['with_region']} of {report['images']} images of the {report['split']} split have a "
             f"relevant region ({report['without_region']} without are left out).", "",
             "| view | balanced accuracy | 95 % CI |", "|---|---|---|"]
    for view, value in report["balanced_accuracy"].items():
        lines.append(f"| {view} | {100 * value:.1f} | {ci(report['balanced_accuracy_ci'][view])} |")
    lines += ["", f"Flip rate under the swap: {100 * report['flip_rate']:.1f} % "
                  f"(95 % CI {ci(report['flip_rate_ci'])}); with an outside of the same class (the "
                  f"control): {100 * report['flip_rate_same_class']:.1f} % "
                  f"(95 % CI {ci(report['flip_rate_same_class_ci'])}); "
                  f"the shortcut flip rate, the difference: {100 * report['shortcut_flip_rate']:.1f} points "
                  f"(95 % CI {ci(report['shortcut_flip_rate_ci'])})."]
    if report["relevance_mass"] is not None:
        lines.append(f"Relevance mass of the Grad-CAM inside the region: "
                     f"{100 * report['relevance_mass']:.1f} % (95 % CI {ci(report['relevance_mass_ci'])}).")
    lines += ["", "| class | images | flip rate | shortcut flip rate | recall as is | swapped | region only "
                  "| swapped, same class |", "|---|---|---|---|---|---|---|---|"]
    for name, row in report["per_class"].items():
        lines.append(f"| {name} | {row['images']} | {100 * row['flip_rate']:.1f} % "
                     f"| {100 * row['shortcut_flip_rate']:.1f} | {100 * row['recall_clean']:.1f} "
                     f"| {100 * row['recall_swap']:.1f} | {100 * row['recall_roi']:.1f} "
                     f"| {100 * row['recall_swap_same']:.1f} |")
    lines += ["", "Images whose decision changes most: `changed_most.png` (as is, swapped, Grad-CAM).",
              "", "A shortcut inside the region (a chest tube, a pacemaker) is not caught by an outside "
                  "swap; a poor region (prior) weakens the test."]
    return "\n".join(lines) + "\n"


def changed_most_figure(dataset, found: dict, n_images: int, path: Path, classes: list[str]) -> None:
    """The images whose predicted class's probability drops most under the swap: the image, its
    swap view and the true class's Grad-CAM, one row each."""
    import matplotlib.pyplot as plt

    region = np.flatnonzero(found["has_region"].astype(bool))
    predicted = found["clean"][region].argmax(1)
    drop = found["clean"][region, predicted] - found["swap"][region, predicted]
    chosen = region[np.argsort(-drop, kind="stable")[:n_images]]
    rows = max(1, len(chosen))
    figure, axes = plt.subplots(rows, 3, figsize=(7.5, 2.5 * rows), squeeze=False)
    position = {int(idx): p for p, idx in enumerate(dataset.indices)}
    for row, k in enumerate(chosen):
        sample = dataset[position[int(found["idx"][k])]]
        shown = [sample["image"], sample["cf_swap"]]
        for column, image in enumerate(shown):
            axes[row, column].imshow(image[0].numpy(), cmap="gray")
        axes[row, 2].imshow(sample["image"][0].numpy(), cmap="gray")
        axes[row, 2].imshow(found["cam"][k].numpy(), cmap="jet", alpha=0.45)
        truth, before, after = (classes[int(v)] for v in (found["label"][k], found["clean"][k].argmax(),
                                                          found["swap"][k].argmax()))
        axes[row, 0].set_title(f"{truth}: predicted {before}", fontsize=8)
        axes[row, 1].set_title(f"swapped: {after}", fontsize=8)
        axes[row, 2].set_title("Grad-CAM (true class)", fontsize=8)
    for axis in axes.flat:
        axis.axis("off")
    save_figure(figure, path)
