"""GPU speed and memory at a real size (`make bench-gpu`): one command, about 8 minutes on one H200.

    python -m benchmarks.gpu                        # writes benchmarks/results/gpu.{json,md}
    python -m benchmarks.gpu --backbones resnet50 --modes fp32 bf16 --out /tmp/gpu
    python -m benchmarks.gpu --smoke                # a tiny CPU run of every code path (the tests)
    python -m benchmarks.gpu --modes "bf16 + channels-last" --no-loader --save gpu_teacher_autocast

On 224 px synthetic X-rays, for each real-size backbone (random weights, nothing downloaded) and
each numeric mode (fp32; bf16 autocast; bf16 + channels-last; bf16 + channels-last +
``torch.compile``), it times whole Lightning fits of the framework's own modules:
  baseline  training images per second (the batches already on the GPU: the model alone)
  hkd       HKD student's images per second, teacher every step, and its step / the baseline's
  hkd, teacher in autocast   the same with hkd.teacher_precision=autocast (bf16 modes, not compiled)
  memory    peak GPU memory of each fit
  mining    IMIL's mining pass over the training set (in the run's precision), per 1,000 images and
            / a training epoch
  loader    the training loader's images per second (decode from cache, augmentation, workers)
            against the fastest model's consumption
Each row is written as soon as it is measured (gpu.json, then gpu.md), so a run stopped early keeps
what it had. The first epoch of every fit is a warm-up (cuDNN autotuning, compilation); the fastest
of the others counts.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from itertools import islice
from pathlib import Path

import torch

from benchmarks.speed import WORK, bench_config, device_of, lightning_fit, loader_epoch, ready, synchronize
from hkd.atomic import atomic_write_text
from hkd.imil.mining import Miner
from hkd.run.run_dir import code_version

REPO = Path(__file__).resolve().parents[1]
BACKBONES = ("resnet50", "convnext_tiny")
MODES = {  # name: the overrides that make it (every mode on top of the one before)
    "fp32": [],
    "bf16": ["trainer.precision=bf16-mixed"],
    "bf16 + channels-last": ["trainer.precision=bf16-mixed", "model.channels_last=true"],
    "bf16 + channels-last + compile": ["trainer.precision=bf16-mixed", "model.channels_last=true",
                                       "model.compile=true"],
}
AUTOCAST_TEACHER_MODES = ("bf16", "bf16 + channels-last")  # where hkd.teacher_precision=autocast is timed
MINING_MODES = ("fp32", "bf16", "bf16 + channels-last")
FULL = {"size": 224, "n_train": 1024, "batch_size": 64, "steps": 16, "epochs": 3}
SMOKE = {"size": 32, "n_train": 32, "batch_size": 8, "steps": 2, "epochs": 2}


def config(backbone: str, mode: str, sizes: dict, *extra: str):
    size = sizes["size"]
    return bench_config(f"data.synthetic.size={size}", f"data.image_size={size}",
                        f"data.synthetic.n_train={sizes['n_train']}", "data.synthetic.n_val=16",
                        "data.synthetic.n_test=16", f"data.batch_size={sizes['batch_size']}",
                        "data.eval_batch_size=256", f"model.backbone={backbone}", "model.pretrained=false",
                        f"data.cache_dir={WORK / 'gpu-cache'}", *MODES[mode], *extra)


class Batches:
    """Ready batches served again every epoch (a list would be read by Lightning as several loaders)."""

    def __init__(self, batches, device: torch.device) -> None:
        self.batches = [{key: value.to(device) if torch.is_tensor(value) else value
                         for key, value in batch.items()} for batch in batches]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


METHODS = {  # row name: its overrides
    "baseline": [],
    "hkd": ["method.name=hkd", "hkd.kd_epochs=1000"],
    "hkd, teacher in autocast": ["method.name=hkd", "hkd.kd_epochs=1000", "hkd.teacher_precision=autocast"],
}


def fit_row(backbone: str, mode: str, method: str, sizes: dict, batches: Batches, datamodule) -> dict:
    cfg = config(backbone, mode, sizes, *METHODS[method])
    device = device_of(cfg)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    epoch, trainer, module = lightning_fit(cfg, datamodule, epochs=sizes["epochs"], batches=batches)
    images = sum(len(batch["label"]) for batch in batches.batches)
    row = {"backbone": backbone, "mode": mode, "method": method, "images_per_s": images / epoch,
           "ms_per_step": 1000 * epoch / len(batches),
           "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None}
    return row | {"_trainer": trainer, "_module": module}


def mining_row(backbone: str, mode: str, sizes: dict, trainer, module, epoch_s: float) -> dict:
    cfg = config(backbone, mode, sizes)
    datamodule = ready(cfg)
    miner = Miner(datamodule.training_images(), cfg.imil.mine)
    module = module.to(device_of(cfg))
    miner.mine(trainer, module, set())  # warm-up
    synchronize(module.device)
    start = time.perf_counter()
    miner.mine(trainer, module, set())
    synchronize(module.device)
    mining = time.perf_counter() - start
    n = len(miner.images.indices)
    return {"backbone": backbone, "mode": mode, "method": "imil mining",
            "s_per_1000_images": 1000 * mining / n, "mining_over_epoch": mining / epoch_s}


def loader_rows(sizes: dict) -> list[dict]:
    """The training loader alone, in the main process (the default) and with worker processes."""
    rows = []
    for workers in sorted({0, min(8, os.cpu_count() or 1)}):
        cfg = config(BACKBONES[0], "fp32", sizes, f"data.num_workers={workers}")
        datamodule = ready(cfg)
        n = len(datamodule.datasets["train"])
        best = min(loader_epoch(datamodule) for _ in range(2))
        rows.append({"method": "loader", "images_per_s": n / best, "workers": workers,
                     "cores": os.cpu_count()})
    return rows


def table(rows: list[dict], made: str) -> str:
    """gpu.md: one line per backbone, mode and method, then mining and the loader."""
    fits = [r for r in rows if r["method"] in METHODS or r["method"] == "hkd"]
    baseline = {(r["backbone"], r["mode"]): r for r in fits if r["method"] == "baseline"}
    lines = ["| backbone | mode | method | img/s | step / baseline step | peak memory (GiB) |",
             "|---|---|---|---|---|---|"]
    for row in fits:
        base = baseline.get((row["backbone"], row["mode"]))
        ratio = f"{base['images_per_s'] / row['images_per_s']:.2f}" if base else "-"
        memory = f"{row['peak_memory_gib']:.1f}" if row["peak_memory_gib"] is not None else "-"
        lines.append(f"| {row['backbone']} | {row['mode']} | {row['method']} | {row['images_per_s']:.0f} | "
                     f"{ratio} | {memory} |")
    fastest = max((r["images_per_s"] for r in baseline.values()), default=None)
    for row in rows:
        if row["method"] == "imil mining":
            lines.append(f"\nIMIL mining ({row['backbone']}, {row['mode']}): "
                         f"{row['s_per_1000_images']:.2f} s per 1,000 images, "
                         f"{row['mining_over_epoch']:.2f}x a training epoch in that mode.")
        if row["method"] == "loader" and fastest:
            lines.append(f"\nTraining loader with {row['workers']} workers ({row['cores']} cores): "
                         f"{row['images_per_s']:.0f} img/s, {row['images_per_s'] / fastest:.2f}x the fastest "
                         f"model above ({fastest:.0f} img/s).")
    return "\n".join(lines) + f"\n\n<sub>{made}</sub>\n"


def save(rows: list[dict], out: Path, made: str, name: str = "gpu") -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{name}.json", json.dumps({"made": made, "rows": rows}, indent=1) + "\n")
    atomic_write_text(out / f"{name}.md", table(rows, made))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="*", default=list(BACKBONES))
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--save", default="gpu", help="the results' name: OUT/NAME.json and OUT/NAME.md")
    parser.add_argument("--no-loader", action="store_true", help="leave the loader rows out")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (a CPU check of the code paths)")
    parser.add_argument("--render", action="store_true", help="only rewrite OUT/NAME.md from OUT/NAME.json")
    args = parser.parse_args()
    if args.render:
        saved = json.loads((args.out / f"{args.save}.json").read_text())
        atomic_write_text(args.out / f"{args.save}.md", table(saved["rows"], saved["made"]))
        return
    sizes = SMOKE if args.smoke else FULL
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    code = os.environ.get("HKD_CODE") or code_version()  # HKD_CODE: where the copy has no .git
    made = (f"{device} · torch {torch.__version__} · {time.strftime('%Y-%m-%d')} · code {code} · "
            f"{sizes['size']} px, batch {sizes['batch_size']}, {sizes['steps']} steps an epoch · "
            f"`python -m benchmarks.gpu`")
    torch.backends.cudnn.benchmark = True
    rows: list[dict] = []

    def keep(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        save(rows, args.out, made, args.save)

    for row in [] if args.no_loader else loader_rows(sizes):
        keep(row)
    for mode in args.modes:  # compilation, the slowest to warm up, last
        for backbone in args.backbones:
            hkd_cfg = config(backbone, mode, sizes, "method.name=hkd", "hkd.kd_epochs=1000")
            datamodule = ready(hkd_cfg, roi_mode=hkd_cfg.hkd.roi_mode)  # batches with the ROI images
            batches = Batches(islice(datamodule.train_dataloader(), sizes["steps"]), device_of(hkd_cfg))
            for method in args.methods:
                if method == "hkd, teacher in autocast" and mode not in AUTOCAST_TEACHER_MODES:
                    continue  # fp32 has no autocast to run in; one mixed mode keeps the run short
                row = fit_row(backbone, mode, method, sizes, batches, datamodule)
                trainer, module = row.pop("_trainer"), row.pop("_module")
                keep(row)
                if method == "baseline" and mode in MINING_MODES:  # mining runs in the run's precision
                    epoch_s = sizes["n_train"] / row["images_per_s"]
                    keep(mining_row(backbone, mode, sizes, trainer, module, epoch_s))
    print(table(rows, made))


if __name__ == "__main__":
    main()
