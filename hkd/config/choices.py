"""Every configuration key with a fixed set of names, and where each name is implemented.

A registry maps a name to ``"module:attribute"`` and imports the module the first time the name
is used, so checking a configuration (``hkd config``, ``hkd.config.validate``) imports no torch.
A new built-in method, data format, augmentation policy, fill or optimiser is its function or class
in its module plus one line here; code outside hkd adds its own with ``@METHODS.register("name")``
(or ``FORMATS``, ...) before loading a configuration."""

from __future__ import annotations

from collections.abc import Collection

from hkd.config.registry import Registry

METHODS = Registry("method.name", {
    "baseline": "hkd.methods.base:Method",
    "hkd": "hkd.methods.hkd:HKDStudent",
    "rrr": "hkd.methods.guided:RRR",
    "gradmask": "hkd.methods.guided:GradMask",
    "actdiff": "hkd.methods.guided:ActDiff",
    "cam_align": "hkd.methods.guided:CamAlign",
    "jtt": "hkd.methods.jtt:JTT",
})
FORMATS = Registry("data.format", {
    "synthetic": "hkd.data.formats.synthetic:read_synthetic",
    "folder": "hkd.data.formats.folder:read_folder_format",
    "covid-chestxray": "hkd.data.formats.covid_chestxray:read_covid_chestxray",
    "kermany": "hkd.data.formats.kermany:read_kermany",
    "siim-covid": "hkd.data.formats.siim_covid:read_siim_covid",
    "rsna-pneumonia": "hkd.data.formats.rsna_pneumonia:read_rsna_pneumonia",
    "vindr-cxr": "hkd.data.formats.vindr_cxr:read_vindr_cxr",
})
POLICIES = Registry("augment.policy", {  # (the affine range, image channels) -> the policy's transforms
    "none": "hkd.data.transforms:no_policy",
    "basic": "hkd.data.transforms:basic_policy",
    "strong": "hkd.data.transforms:strong_policy",
    "randaugment": "hkd.data.transforms:randaugment_policy",
    "trivialaugment": "hkd.data.transforms:trivialaugment_policy",
    "pneuknownet": "hkd.data.transforms:pneuknownet_policy",
    "pneuknownet_weak": "hkd.data.transforms:pneuknownet_weak_policy",
})
FILLS = Registry("fill (imil.fill, hkd.roi_fill, counterfactual.fill)", {
    "zero": "hkd.data.masking:zero_fill",
    "mean": "hkd.data.masking:mean_fill",
    "blur": "hkd.data.masking:blur_fill",
    "noise": "hkd.data.masking:noise_fill",
    "inpaint": "hkd.data.masking:inpaint_fill",
})
OPTIMIZERS = Registry("optim.name", {
    "adamw": "hkd.models.optim:adamw",
    "adam": "hkd.models.optim:adam",
    "sgd": "hkd.models.optim:sgd",
})

# optim.scheduler: cosine (per epoch), cosine_per_step (one smooth cosine over all steps),
# pneuknownet_cosine (the authors' code, hkd.models.optim), none
SCHEDULERS = ("cosine", "cosine_per_step", "pneuknownet_cosine", "none")
SAMPLERS = ("random", "balanced")  # data.sampler
ROI_MODES = ("blackout", "soft")  # hkd.roi_mode: how the teacher's ROI image is built
PRIORS = ("annotations", "predicted", "none")  # hkd.prior
ROI_FRACTION_MODES = ("raw_rest", "subset", "authors")  # hkd.roi_fraction_mode
TEACHER_PRECISIONS = ("fp32", "autocast")  # hkd.teacher_precision
NONFINITE_POLICIES = ("stop", "skip")  # training.nonfinite_loss
ORACLES = ("annotations", "queue", "sham", "none")  # imil.oracle
MINE_MODES = ("mispredicted", "flips", "both")  # imil.mine
SWAP_PARTNERS = ("any", "other_class")  # augment.counterfactual.partner: where a swapped outside comes from
EDIT_SCOPES = ("sample", "all")  # imil.edit_scope: each region on its own image (the paper), or on every one
EDIT_MODES = ("replace", "add")  # imil.edit: the edited image replaces its original (the paper) or joins it
CHANGED_IMAGES = ("error", "drop")  # imil.changed_images: an edited image gone or changed on resume
WANDB_MODES = ("offline", "online", "disabled")  # logging.wandb
# logging.loggers: dashboard -> the package it needs (the CSV log is always written)
LOGGERS = {"csv": "lightning", "wandb": "wandb", "tensorboard": "tensorboard", "mlflow": "mlflow"}
CHECKPOINT_MODES = ("min", "max")  # checkpoint.mode


def one_of(name: str, value: str, allowed: Collection[str]) -> str:
    """``value`` when it is one of ``allowed``, else a ValueError naming ``name`` and the choices."""
    if value not in allowed:
        raise ValueError(f"{name} is one of {', '.join(allowed)}, not {value!r}")
    return value
