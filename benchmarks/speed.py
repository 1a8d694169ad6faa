"""Speed and memory of the framework against its targets (`make bench`); prints a table of ratios.

    python -m benchmarks.speed                 # every figure (about 5 minutes on 2 CPU cores)
    python -m benchmarks.speed --only overhead hkd
    python -m benchmarks.speed --rss-images 1000 20000
    python -m benchmarks.speed --save          # also write benchmarks/results/speed.md (make results)
    python -m benchmarks.speed --only large --save decode_threads   # benchmarks/results/decode_threads.md

Every figure is measured in this process on the same model, data and batch size:
  overhead  Lightning baseline throughput / a plain PyTorch loop's            target >= 0.9
  hkd       HKD student step time / baseline step time (teacher every step)   target <= 1.3
            and with the teacher's features cached (no augmentation)           target <= 1.1
            and the teacher pass folded, channels-last / as trained            (reported)
  nonfinite step time with the non-finite guard / without it                  target <= 1.02
  mining    IMIL mining pass time / one training epoch's time                 target <= 0.3
  inpaint   epoch with 600 inpainted IMIL edits / epoch without edits          target <= 1.1
  channels_last  baseline step with model.channels_last=true / NCHW             (reported)
  counterfactual validation epoch with the swap and roi views / without: of every image (reported),
            of a quarter of them (counterfactual.fraction=0.25)                 target <= 1.5
  loader    loader throughput from the cache / the model's consumption rate   target >= 5
  large     first epoch (decode + cache) / cached epoch on 2048 px images     (reported)
  rss       peak memory training on 1,000 vs 20,000 images (fresh processes)  anonymous memory flat
  cli       seconds until `hkd --help`, `hkd config quickstart`, `hkd list` answer   target < 1 s
  imil_run  IMIL (b = 0.04, propagate, inpaint) whole run / baseline whole run       target <= 1.3
  propagation  propagation step per round / training epoch, as configured, with the
            generator at half size, warm-started with 30 updates, and both            target <= 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from hkd.atomic import atomic_write_text
from hkd.config import load_config
from hkd.data.datamodule import ChestXrayDataModule
from hkd.imil.mining import Miner
from hkd.models.backbone import build_backbone, feature_map
from hkd.models.classifier import ClassifierModule
from hkd.run.build import build_datamodule, build_imil_callback, build_method, build_module, edit_table
from hkd.run.run_dir import code_version

REPO = Path(__file__).resolve().parents[1]

WORK = Path(tempfile.gettempdir()) / "hkd-bench"
EPOCHS = 6  # the first epoch is a warm-up; the fastest of the others is reported (as timeit does:
# on a shared 2-core machine noise only ever adds time)
COMMON = ["logging.wandb=disabled", "logging.progress_bar=false", "augment.policy=basic",
          "data.batch_size=32", "data.eval_batch_size=128", "model.backbone=test_resnet"]


def bench_config(*overrides: str) -> DictConfig:
    return load_config("quickstart", [*COMMON, f"data.cache_dir={WORK / 'cache'}",
                                      f"output_dir={WORK / 'runs'}", *overrides])


SYNTHETIC = ("data.synthetic.n_train=512", "data.synthetic.n_val=32", "data.synthetic.n_test=32",
             "data.synthetic.size=64", "data.image_size=64")


def device_of(cfg: DictConfig) -> torch.device:
    wanted = cfg.trainer.accelerator
    return torch.device("cuda" if torch.cuda.is_available() and wanted in ("auto", "gpu", "cuda") else "cpu")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class EpochTimer(L.Callback):
    """Wall time of every training epoch (the GPU synchronised at both ends)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        synchronize(pl_module.device)
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        synchronize(pl_module.device)
        self.times.append(time.perf_counter() - self._start)


def steady(times: list[float]) -> float:
    return float(min(times[1:] if len(times) > 1 else times))


def lightning_fit(cfg: DictConfig, datamodule: ChestXrayDataModule, guard: bool = True, epochs: int = EPOCHS,
                  batches: Iterable[dict] | None = None) -> tuple[float, L.Trainer, ClassifierModule]:
    """Steady-state epoch time of a Lightning fit (no validation, no checkpoints, no logger);
    ``guard=False`` takes the non-finite guard out (for its own figure only); ``batches`` (already
    on the device) replace the training loader, to time the model alone."""
    L.seed_everything(cfg.seed)
    module = build_module(cfg, datamodule.classes)
    if not guard:
        module.nonfinite.note_loss = lambda *args: None
        module.nonfinite.guard_step = lambda *args, **kwargs: None
    if cfg.hkd.cache_teacher_features:  # what the teacher_features stage makes, from this teacher
        dataset = datamodule.datasets["train_eval"]
        with torch.no_grad():
                features = torch.cat([
                module.method.teacher_features(batch["roi"]) for batch in
                torch.utils.data.DataLoader(dataset, batch_size=cfg.data.eval_batch_size)]).numpy()
        rows = np.full(len(datamodule.records), -1)
        rows[dataset.indices] = np.arange(len(dataset))
        module.method.use_teacher_features(features, rows)
    timer = EpochTimer()
    trainer = L.Trainer(max_epochs=epochs, accelerator=cfg.trainer.accelerator, devices=1,
                        precision=cfg.trainer.precision, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, callbacks=[timer], inference_mode=False)
    if batches is None:
        trainer.fit(module, datamodule=datamodule)
    else:
        trainer.fit(module, train_dataloaders=batches)
    return steady(timer.times), trainer, module


def plain_fit(cfg: DictConfig, datamodule: ChestXrayDataModule) -> float:
    """The same model, loader, optimiser and loss in a hand-written PyTorch loop."""
    L.seed_everything(cfg.seed)
    device = device_of(cfg)
    net = build_backbone(cfg.model, len(datamodule.classes), cfg.data.channels).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    loader = datamodule.train_dataloader()
    times = []
    net.train()
    for _ in range(EPOCHS):
        synchronize(device)
        start = time.perf_counter()
        for batch in loader:
            logits = net(batch["image"].to(device, non_blocking=True))
            loss = F.cross_entropy(logits, batch["label"].to(device, non_blocking=True))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return steady(times)


def loader_epoch(datamodule: ChestXrayDataModule) -> float:
    start = time.perf_counter()
    for _ in datamodule.train_dataloader():
        pass
    return time.perf_counter() - start


def ready(cfg: DictConfig, roi_mode: str | None = None) -> ChestXrayDataModule:
    datamodule = build_datamodule(cfg, roi_mode=roi_mode)
    datamodule.setup("fit")
    return datamodule


def validation_epoch(cfg: DictConfig, datamodule: ChestXrayDataModule,
                     module: ClassifierModule) -> float:
    """Steady-state wall time of one validation epoch (``trainer.validate``)."""
    trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, inference_mode=True)
    times = []
    for _ in range(EPOCHS):
        synchronize(module.device)
        start = time.perf_counter()
        trainer.validate(module, datamodule=datamodule, verbose=False)
        synchronize(module.device)
        times.append(time.perf_counter() - start)
    return steady(times)


CF_FRACTION = 0.25  # the share of the validation images seen through the views in the second row


def counterfactual_rows() -> list[tuple[str, float, str, str]]:
    """A validation epoch (512 images) with the counterfactual views of every image, and of a
    quarter of them (``counterfactual.fraction``), against one without."""
    views = ("data.synthetic.n_val=512",)
    plain_cfg = bench_config(*SYNTHETIC, *views)
    L.seed_everything(plain_cfg.seed)
    module = build_module(plain_cfg, ["covid19", "viral", "bacterial", "fungal"])
    plain = validation_epoch(plain_cfg, ready(plain_cfg), module)
    rows = []
    for fraction, target in ((1.0, "(reported)"), (CF_FRACTION, "<= 1.5")):
        cf_cfg = bench_config(*SYNTHETIC, *views, "counterfactual.enabled=true",
                              f"counterfactual.fraction={fraction}")
        with_views = validation_epoch(cf_cfg, ready(cf_cfg), module)
        rows.append((with_views, fraction, target))
    plain = min(plain, validation_epoch(plain_cfg, ready(plain_cfg), module))
    return [(f"validation epoch with counterfactual views (fraction={fraction}) / without",
             with_views / plain, target, f"{with_views:.2f} s vs {plain:.2f} s for 512 images")
            for with_views, fraction, target in rows]


def measure_synthetic(only: set[str]) -> list[tuple[str, float, str, str]]:
    """The baseline is timed before and after the other loops (its best time counts), so a slow
    first run in a fresh process cannot flatter the ratios."""
    rows = []
    cfg = bench_config(*SYNTHETIC)
    datamodule = ready(cfg)
    n_train = len(datamodule.datasets["train"])
    steps = len(datamodule.train_dataloader())  # per epoch, for the ms/step columns
    first_epoch, trainer, module = lightning_fit(cfg, datamodule)
    plain_epoch = plain_fit(cfg, datamodule) if "overhead" in only else None
    hkd_epoch = cached = teacher_pass = None
    if "hkd" in only:
        hkd_cfg = bench_config(*SYNTHETIC, "method.name=hkd", "hkd.kd_epochs=1000")
        hkd_data = ready(hkd_cfg, roi_mode=hkd_cfg.hkd.roi_mode)
        hkd_epoch = min(lightning_fit(hkd_cfg, hkd_data)[0] for _ in range(2))  # best of two, as the baseline
        teacher_pass = teacher_pass_row(hkd_cfg, hkd_data)
        # the teacher's input fixed (no augmentation), its features cached
        plain = bench_config(*SYNTHETIC, "augment.policy=none")
        cached_cfg = bench_config(*SYNTHETIC, "method.name=hkd", "hkd.kd_epochs=1000", "augment.policy=none",
                                  "hkd.cache_teacher_features=true")
        cached = (lightning_fit(cached_cfg, ready(cached_cfg, roi_mode=cached_cfg.hkd.roi_mode))[0],
                  lightning_fit(plain, ready(plain))[0])
    lightning_epoch = min(first_epoch, lightning_fit(cfg, datamodule)[0])
    if plain_epoch is not None:
        rows.append(("Lightning / plain PyTorch throughput", plain_epoch / lightning_epoch, ">= 0.9",
                     f"{n_train / lightning_epoch:.0f} vs {n_train / plain_epoch:.0f} img/s"))
    if hkd_epoch is not None:
        rows.append(("HKD student step / baseline step", hkd_epoch / lightning_epoch, "<= 1.3",
                     f"{1000 * hkd_epoch / steps:.0f} vs {1000 * lightning_epoch / steps:.0f} ms/step"))
    if cached is not None:
        rows.append(("HKD student step, cached teacher features / baseline step (no augmentation)",
                     cached[0] / cached[1], "<= 1.1",
                     f"{1000 * cached[0] / steps:.0f} vs {1000 * cached[1] / steps:.0f} ms/step"))
    if teacher_pass is not None:
        rows.append(teacher_pass)
    if "mining" in only:
        miner = Miner(datamodule.training_images(), cfg.imil.mine)
        start = time.perf_counter()
        miner.mine(trainer, module.to(device_of(cfg)), set())
        mining = time.perf_counter() - start
        rows.append(("IMIL mining pass / training epoch", mining / lightning_epoch, "<= 0.3",
                     f"{mining:.2f} s vs {lightning_epoch:.2f} s"))
    if "nonfinite" in only:
        unguarded = lightning_fit(cfg, datamodule, guard=False)[0]
        guarded = min(lightning_epoch, lightning_fit(cfg, datamodule)[0])
        rows.append(("step with the non-finite guard / without", guarded / unguarded, "<= 1.02",
                     f"{1000 * guarded / steps:.1f} vs {1000 * unguarded / steps:.1f} ms/step"))
    if "inpaint" in only:
        rows.append(inpaint_row(cfg, lightning_epoch))
    if "channels_last" in only:
        nhwc = lightning_fit(bench_config(*SYNTHETIC, "model.channels_last=true"), datamodule)[0]
        measured = f"{1000 * nhwc / steps:.1f} vs {1000 * lightning_epoch / steps:.1f} ms/step"
        rows.append(("baseline step, model.channels_last=true / default (NCHW)", nhwc / lightning_epoch,
                     "reported", measured))
    if "loader" in only:
        loader = min(loader_epoch(datamodule) for _ in range(2))
        rows.append(("loader throughput / model consumption", lightning_epoch / loader, ">= 5",
                     f"{n_train / loader:.0f} vs {n_train / lightning_epoch:.0f} img/s"))
    return rows


def teacher_pass_row(cfg: DictConfig, datamodule: ChestXrayDataModule) -> tuple[str, float, str, str]:
    """HKD's no-grad teacher pass on one training batch: BatchNorms folded, channels-last (what
    training runs) against the network as trained (median of five alternating timings of 20
    passes)."""
    method = build_method(cfg, len(datamodule.classes)).to(device_of(cfg))
    roi = next(iter(datamodule.train_dataloader()))["roi"].to(device_of(cfg))

    def timed(run) -> float:
        run()
        synchronize(roi.device)
        start = time.perf_counter()
        for _ in range(20):
            run()
        synchronize(roi.device)
        return (time.perf_counter() - start) / 20

    with torch.no_grad():
        pairs = [(timed(lambda: method.teacher_features(roi)),
                  timed(lambda: feature_map(method.teacher, roi))) for _ in range(5)]
    folded, unfolded = (float(np.median(times)) for times in zip(*pairs))
    return ("HKD teacher pass, BatchNorms folded, channels-last / as trained", folded / unfolded, "reported",
            f"{1000 * folded:.1f} vs {1000 * unfolded:.1f} ms/batch")


def inpaint_row(cfg: DictConfig, plain_epoch: float) -> tuple[str, float, str, str]:
    """An epoch whose 600 training images all carry an inpainted IMIL edit, against none."""
    from hkd.imil.edits import Edit

    edited_cfg = bench_config(*SYNTHETIC, "data.synthetic.n_train=600", "imil.fill=inpaint")
    datamodule = ready(edited_cfg)
    images = datamodule.training_images()
    table = edit_table(edited_cfg)
    size = edited_cfg.data.image_size
    mask = np.zeros((size, size), bool)
    mask[: size // 4, : size // 4] = True  # a corner tag's worth of pixels
    for idx in images.indices:
        table[int(idx)] = Edit(mask=mask, round=1, epoch=0, source="oracle")
    start = time.perf_counter()
    table.precompute(images.original)  # once per round, as the IMIL callback does
    fill = time.perf_counter() - start
    times: dict[bool, list[float]] = {True: [], False: []}
    for edited in (True, False, True, False):  # alternated, the best of each: no order effect
        images.use_edits(table if edited else edit_table(edited_cfg))
        times[edited].append(lightning_fit(edited_cfg, datamodule)[0])
    edited, unedited = min(times[True]), min(times[False])
    return ("epoch with 600 inpainted edits / without edits", edited / unedited, "<= 1.1",
            f"{edited:.2f} s vs {unedited:.2f} s; filling them once: {fill:.2f} s")


def write_large_images(root: Path, count: int, size: int) -> Path:
    """A folder data set of big 16-bit-like grayscale scans (smooth anatomy plus noise)."""
    if (root / "labels.csv").is_file():
        return root
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 120 + 60 * np.sin(6 * xx) * np.cos(4 * yy)
    lines = ["image,label,patient_id"]
    for i in range(count):
        pixels = (base + rng.normal(0, 8, base.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"{i}.png", compress_level=1)
        lines.append(f"images/{i}.png,{'ab'[i % 2]},p{i}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def measure_large() -> list[tuple[str, float, str, str]]:
    root = write_large_images(WORK / "large", count=48, size=2048)
    cfg = bench_config("data.format=folder", f"data.root={root}", "data.image_size=256",
                       f"data.cache_dir={WORK / 'large-cache'}")
    shutil.rmtree(WORK / "large-cache", ignore_errors=True)
    first = {}
    for workers in (1, 0):  # one decoding thread, then one per core (the default)
        shutil.rmtree(WORK / "large-cache", ignore_errors=True)
        start = time.perf_counter()
        datamodule = ready(OmegaConf.merge(cfg, {"data": {"num_workers": workers}}))  # decode once
        first[workers] = time.perf_counter() - start + loader_epoch(datamodule)
    cached = min(loader_epoch(ready(cfg)) for _ in range(2))
    n = len(datamodule.datasets["train"])
    return [("2048 px: first epoch / cached epoch (loader)", first[0] / cached, "reported",
             f"{first[0]:.1f} s vs {cached:.2f} s for {n} images"),
            ("2048 px first epoch: 1 decoding thread / one per core", first[1] / first[0], "reported",
             f"{first[1]:.1f} s vs {first[0]:.1f} s ({os.cpu_count()} cores)")]


def write_small_images(root: Path, count: int) -> Path:
    if (root / "labels.csv").is_file():
        return root
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count)
    lines = ["image,label,patient_id"]
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        lines.append(f"images/{i}.png,{'abcd'[i % 4]},p{i}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def anonymous_kib() -> int:
    """Resident anonymous memory (heap, tensors) in KiB, not counting file-backed pages such as the
    memory-mapped cache, which the kernel can drop at any time."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


class AnonymousPeak(L.Callback):
    def __init__(self) -> None:
        self.peak = 0

    def on_train_batch_end(self, *args) -> None:
        self.peak = max(self.peak, anonymous_kib())


def rss_child(count: int) -> None:
    """One epoch on `count` images in this fresh process; prints peak RSS figures as JSON."""
    import resource

    root = write_small_images(WORK / f"small-{count}", count)
    cfg = bench_config("data.format=folder", f"data.root={root}", "data.image_size=32",
                       f"data.cache_dir={WORK / 'small-cache'}", "data.batch_size=64")
    datamodule = ready(cfg)
    module = build_module(cfg, datamodule.classes)
    peak = AnonymousPeak()
    trainer = L.Trainer(max_epochs=1, accelerator=cfg.trainer.accelerator, devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[peak])
    trainer.fit(module, datamodule=datamodule)
    cache_mib = sum(f.stat().st_size for f in datamodule.datasets["train"].cache.folder.iterdir()) / 2**20
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "peak_anonymous_mib": peak.peak / 1024, "cache_mib": cache_mib}))


def measure_rss(counts: list[int]) -> list[tuple[str, float, str, str]]:
    figures = {}
    for count in counts:
        result = subprocess.run([sys.executable, __file__, "--rss-child", str(count)], capture_output=True,
                                text=True, check=True)
        figures[count] = json.loads(result.stdout.strip().splitlines()[-1])
    small, large = figures[counts[0]], figures[counts[-1]]
    detail = (f"anon {small['peak_anonymous_mib']:.0f} -> {large['peak_anonymous_mib']:.0f} MiB; "
              f"RSS {small['peak_rss_mib']:.0f} -> {large['peak_rss_mib']:.0f} MiB; memory-mapped cache "
              f"{small['cache_mib']:.0f} -> {large['cache_mib']:.0f} MiB")
    return [(f"peak anonymous memory {counts[-1]} / {counts[0]} images",
             large["peak_anonymous_mib"] / small["peak_anonymous_mib"], "~1 (flat)", detail)]


def synthetic_run_config(experiment: str, *overrides: str) -> DictConfig:
    """An experiment as the imil matrix runs it (its own sizes), quiet, in the benchmark's folders."""
    return load_config(experiment, ["logging.wandb=disabled", "logging.progress_bar=false",
                                    f"output_dir={WORK / 'runs'}", f"data.cache_dir={WORK / 'cache'}",
                                    *overrides])


def imil_run_rows() -> list[tuple[str, float, str, str]]:
    """Whole runs on the synthetic benchmark as the imil matrix makes them (600 training images,
    96 px): IMIL with b = 0.04, propagation and inpainting against the baseline."""
    from hkd.run.experiment import run_experiment

    def whole_run(experiment: str) -> float:
        start = time.perf_counter()
        run_experiment(synthetic_run_config(experiment))
        return time.perf_counter() - start

    baseline = whole_run("synthetic_baseline")
    imil = whole_run("synthetic_imil_propagate")
    baseline = min(baseline, whole_run("synthetic_baseline"))  # the better of two, as the other rows
    return [("IMIL (b = 0.04, propagate, inpaint) whole run / baseline whole run", imil / baseline, "<= 1.3",
             f"{imil:.1f} s vs {baseline:.1f} s (synthetic benchmark, 600 training images)")]


def propagation_rows() -> list[tuple[str, float, str, str]]:
    """One propagation step (the generator trained on 4 % of the images' marks, proposing the
    rest) against a training epoch, as configured and in the cheaper variants (issue #32)."""
    from benchmarks.propagation_trace import simulated_round
    from hkd.imil.propagation import propose_irrelevant_regions

    _, images, table, _ = simulated_round(synthetic_run_config("synthetic_imil_propagate"))
    plain = synthetic_run_config("synthetic_baseline")
    epoch = lightning_fit(plain, ready(plain), epochs=3)[0]
    proposed = len(images.indices) - len(table)

    def step(*overrides: str, previous=None):
        settings = build_imil_callback(synthetic_run_config("synthetic_imil_propagate", *overrides),
                                       WORK / "imil-propagation").propagation
        start = time.perf_counter()
        generator = propose_irrelevant_regions(settings, images, table, set(), 1, previous).generator
        return time.perf_counter() - start, generator

    first, generator = step()
    half, small = step("imil.propagate_scale=0.5")
    warm, _ = step("imil.propagate_warm_start=true", "imil.propagate_updates=30", previous=generator)
    both, _ = step("imil.propagate_scale=0.5", "imil.propagate_warm_start=true", "imil.propagate_updates=30",
                   previous=small)
    return [(f"IMIL propagation step per round{name} / training epoch", seconds / epoch, "<= 0.5",
             f"{seconds:.2f} s vs {epoch:.2f} s; {1000 * seconds / proposed:.2f} s per 1,000 proposed images")
            for name, seconds in (("", first), (", generator at half size", half),
                                  (", warm-started with 30 updates (a later round)", warm),
                                  (", half size and warm-started (a later round)", both))]


def measure_cli() -> list[tuple[str, float, str, str]]:
    """Wall time of the fast commands in a fresh process (best of five): what a user waits for
    before `hkd` answers; the ratio column holds seconds."""
    rows = []
    for argv in (["--help"], ["config", "quickstart"], ["list"]):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "hkd", *argv], capture_output=True, check=True)
            times.append(time.perf_counter() - start)
        rows.append((f"seconds until `hkd {' '.join(argv)}` has answered (fresh process)", min(times), "< 1",
                     f"best of 5; median {float(np.median(times)):.2f} s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=["overhead", "hkd", "nonfinite", "mining", "inpaint",
                                                       "channels_last", "loader", "counterfactual", "large",
                                                       "rss", "cli", "imil_run", "propagation"])
    parser.add_argument("--save", nargs="?", const="speed", default=None, metavar="NAME",
                        help="also write the table to benchmarks/results/NAME.md (default speed.md, what the "
                             "README shows; --only large --save decode_threads makes decode_threads.md)")
    parser.add_argument("--rss-images", type=int, nargs=2, default=[1000, 20000])
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.rss_child:
        rss_child(args.rss_child)
        return
    only = set(args.only)
    rows = []
    if only & {"overhead", "hkd", "nonfinite", "mining", "inpaint", "channels_last", "loader"}:
        rows += measure_synthetic(only)
    if "counterfactual" in only:
        rows.extend(counterfactual_rows())
    if "large" in only:
        rows += measure_large()
    if "rss" in only:
        rows += measure_rss(args.rss_images)
    if "cli" in only:
        rows += measure_cli()
    if "imil_run" in only:
        rows += imil_run_rows()
    if "propagation" in only:
        rows += propagation_rows()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    lines = ["| figure | ratio | target | measured |", "|---|---|---|---|",
             *(f"| {name} | {ratio:.2f} | {target} | {detail} |" for name, ratio, target, detail in rows),
             "", f"<sub>{device} · torch {torch.__version__} · {time.strftime('%Y-%m-%d')} · code "
                 f"{code_version()} · `python -m benchmarks.speed {' '.join(sys.argv[1:])}`</sub>"]
    print("\n" + "\n".join(lines))
    if args.save:
        atomic_write_text(REPO / "benchmarks" / "results" / f"{args.save}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
