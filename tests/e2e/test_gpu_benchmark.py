"""`make bench-gpu` (benchmarks/gpu.py): its code paths, run on the CPU at a tiny size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.gpu import table

REPO = Path(__file__).resolve().parents[2]


def test_smoke_run_writes_every_row_and_the_table(tmp_path):
    subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--smoke", "--backbones", "test_resnet",
                    "--modes", "fp32", "bf16", "--out", str(tmp_path)], cwd=REPO, check=True,
                   capture_output=True, text=True, timeout=600)
    rows = json.loads((tmp_path / "gpu.json").read_text())["rows"]
    fits = {(r["mode"], r["method"]): r for r in rows if r["method"] in ("baseline", "hkd")}
    assert set(fits) == {(mode, method) for mode in ("fp32", "bf16") for method in ("baseline", "hkd")}
    assert all(r["images_per_s"] > 0 and r["ms_per_step"] > 0 for r in fits.values())
    mining = [r for r in rows if r["method"] == "imil mining"]
    assert len(mining) == 1 and mining[0]["s_per_1000_images"] > 0
    workers = sorted(r["workers"] for r in rows if r["method"] == "loader")
    assert workers == sorted({0, min(8, os.cpu_count() or 1)})
    markdown = (tmp_path / "gpu.md").read_text()
    ratio = fits[("bf16", "hkd")]["ms_per_step"] / fits[("bf16", "baseline")]["ms_per_step"]
    assert f"| test_resnet | bf16 | {fits[('bf16', 'baseline')]['images_per_s']:.0f} |" in markdown
    assert f"| {ratio:.2f} |" in markdown


def test_a_run_cut_short_still_makes_a_table():
    rows = [{"backbone": "resnet50", "mode": "fp32", "method": "baseline", "images_per_s": 900.0,
             "ms_per_step": 71.0, "peak_memory_gib": 27.5}]
    assert "| resnet50 | fp32 | 900 | - | - | 27.5 / - |" in table(rows, "made")

