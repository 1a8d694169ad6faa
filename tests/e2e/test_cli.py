"""The command line's own commands: --version, list, config (with its dry run of the splits), and
that the fast ones import no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.metadata import version

from hkd.cli import main
from hkd.config import experiments_dir

HEAVY = ("torch", "lightning", "timm", "torchmetrics", "monai")


def modules_loaded_by(*argv: str) -> set[str]:
    """The top-level packages a fresh Python holds after ``hkd ARGV`` (its exit code ignored)."""
    code = ("import sys, json\nfrom hkd.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n"
            "    pass\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_help_version_list_and_config_import_no_torch():
    for argv in (["--help"], ["--version"], ["list"], ["config", "quickstart"]):
        loaded = modules_loaded_by(*argv)
        assert not loaded & set(HEAVY), (argv, loaded & set(HEAVY))
    assert "omegaconf" in modules_loaded_by("config", "quickstart")  # it did load the configuration


def test_version_is_the_installed_one():
    out = subprocess.run([sys.executable, "-m", "hkd", "--version"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == f"hkd {version('hkd')}"


def test_config_prints_the_resolved_configuration(capsys):
    assert main(["config", "quickstart", "data.batch_size=7", "name=mine"]) == 0
    out = capsys.readouterr().out
    assert "  batch_size: 7\n" in out and "name: mine\n" in out and "max_epochs: 6" in out


def test_config_refuses_a_bad_value_with_exit_code_2(capsys):
    assert main(["config", "quickstart", "data.batch_size=-3"]) == 2
    assert "error: override 'data.batch_size=-3': data.batch_size=-3 must be >= 1" in capsys.readouterr().err


def test_config_splits_counts_every_image_once(tmp_path, capsys):
    sizes = ["data.synthetic.n_train=40", "data.synthetic.n_val=20", "data.synthetic.n_test=12",
             f"data.cache_dir={tmp_path}"]
    assert main(["config", "quickstart", *sizes, "--splits"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split("|")[1].strip(): [int(cell) for cell in line.split("|")[2:-1]]
            for line in lines if line.startswith(("| train", "| val", "| test"))}
    assert {split: cells[4] for split, cells in rows.items()} == {"train": 40, "val": 20, "test": 12}
    assert all(sum(cells[:4]) == cells[4] for cells in rows.values())  # four classes add up
    assert rows["train"][:4] == [10, 10, 10, 10]  # balanced, as generated


def test_list_shows_shipped_and_local_experiments(tmp_path, monkeypatch, capsys):
    local = tmp_path / "experiments"
    shutil.copytree(experiments_dir(), local)
    (local / "my_site.yaml").write_text("# Our hospital's X-rays, HKD with our boxes.\n"
                                        "extends: kermany_hkd\n")
    monkeypatch.setenv("HKD_EXPERIMENTS", str(local))
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    mine = [line for line in lines if line.startswith("my_site ")]
    assert len(mine) == 1 and "Our hospital's X-rays" in mine[0] and str(local) in mine[0]
    assert any(line.startswith("pneuknownet/resnet50_weak ") for line in lines)
    assert any(line.startswith("quickstart ") and "few minutes" in line for line in lines)
