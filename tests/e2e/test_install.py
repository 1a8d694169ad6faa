"""hkd installed like a library: a wheel built from the repository, installed (not editable) into a
fresh virtual environment, trains the quickstart from a folder that has no experiments/."""

import json
import os
import subprocess
import sys
import sysconfig
import venv

from conftest import REPO, TINY


def test_a_wheel_installed_in_a_fresh_venv_trains_the_quickstart_anywhere(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(REPO)], check=True, timeout=300)
    wheel, = wheels.glob("hkd-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies (torch, lightning, ...) come from this environment, not from the network
    (tmp_path / "venv" / site.split(str(env_dir) + "/", 1)[1] / "dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                    "--no-index", "-q", str(wheel)], check=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("HKD_EXPERIMENTS", "PYTHONPATH")}
    where = subprocess.run([str(python), "-c", "import hkd, hkd.config; print(hkd.__file__); "
                            "print(hkd.config.experiments_dir())"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True).stdout.split()
    assert all(path.startswith(str(env_dir)) for path in where)  # the installed copy, its experiments
    result = subprocess.run([str(env_dir / "bin" / "hkd"), "train", "quickstart", *TINY,
                             f"output_dir={elsewhere / 'runs'}", f"data.cache_dir={elsewhere / 'cache'}"],
                            cwd=elsewhere, env={**env, "WANDB_MODE": "disabled"}, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = elsewhere / result.stdout.strip().splitlines()[-1]
    assert json.loads((run_dir / "summary.json").read_text())["name"] == "quickstart"
