"""`make bench-gpu` (benchmarks/gpu.py): its code paths, run on the CPU at a tiny size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.gpu import METHODS, table

REPO = Path(__file__).resolve().parents[2]


def test_smoke_run_writes_every_row_and_the_table(tmp_path):
    subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--smoke", "--backbones", "test_resnet",
                    "--modes", "fp32", "bf16", "--out", str(tmp_path)], cwd=REPO, check=True,
                   capture_output=True, text=True, timeout=600)
    rows = json.loads((tmp_path / "gpu.json").read_text())["rows"]
    fits = {(r["mode"], r["method"]): r for r in rows if r["method"] in METHODS}
    assert set(fits) == {("fp32", "baseline"), ("fp32", "hkd"), ("bf16", "baseline"), ("bf16", "hkd"),
                         ("bf16", "hkd, teacher in autocast")}  # no autocast teacher without autocast
    assert all(r["images_per_s"] > 0 and r["ms_per_step"] > 0 for r in fits.values())
    mining = {r["mode"]: r for r in rows if r["method"] == "imil mining"}
    assert set(mining) == {"fp32", "bf16"} and all(r["s_per_1000_images"] > 0 for r in mining.values())
    workers = sorted(r["workers"] for r in rows if r["method"] == "loader")
    assert workers == sorted({0, min(8, os.cpu_count() or 1)})
    markdown = (tmp_path / "gpu.md").read_text()
    base, hkd = fits[("bf16", "baseline")], fits[("bf16", "hkd")]
    ratio = hkd["ms_per_step"] / base["ms_per_step"]
    assert f"| test_resnet | bf16 | hkd | {hkd['images_per_s']:.0f} | {ratio:.2f} | - |" in markdown
    assert f"| test_resnet | bf16 | baseline | {base['images_per_s']:.0f} | 1.00 | - |" in markdown


def test_a_run_cut_short_still_makes_a_table():
    rows = [{"backbone": "resnet50", "mode": "fp32", "method": "baseline", "images_per_s": 900.0,
             "ms_per_step": 71.0, "peak_memory_gib": 27.5},
            {"backbone": "resnet50", "mode": "bf16", "method": "hkd", "images_per_s": 600.0,
             "ms_per_step": 106.0, "peak_memory_gib": 12.0}]
    text = table(rows, "made")
    assert "| resnet50 | fp32 | baseline | 900 | 1.00 | 27.5 |" in text
    assert "| resnet50 | bf16 | hkd | 600 | - | 12.0 |" in text  # its baseline was not measured
