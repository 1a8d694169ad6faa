"""How many of hkd's source files (and lines) one run goes through: what a reader follows to
understand it. Runs ``hkd train EXPERIMENT`` (tiny settings) in this process with a profiler that
notes every hkd file one of whose functions is called (importing a module, which runs its module
and class bodies, is not counted), and prints the count, the files and their lines.

    python -m benchmarks.files_read synthetic_hkd
    python -m benchmarks.files_read synthetic_hkd --code runs/bench/worktrees/782815c  # another commit
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TINY = ["data.synthetic.n_train=40", "data.synthetic.n_val=16", "data.synthetic.n_test=16",
        "data.synthetic.size=48", "data.image_size=32", "data.batch_size=8", "data.eval_batch_size=16",
        "trainer.max_epochs=1", "logging.wandb=disabled", "logging.progress_bar=false", "explain.n_images=4"]

CHILD = """
import sys, threading
package = sys.argv[1]
seen = set()
def note(frame, event, arg):
    name = frame.f_code.co_filename
    if event == "call" and frame.f_code.co_flags & 1 and name.startswith(package):  # CO_OPTIMIZED: a function
        seen.add(name)
sys.setprofile(note)
threading.setprofile(note)
from hkd.cli import main
main(sys.argv[2:])
sys.setprofile(None)
print("FILES " + " ".join(sorted(seen)))
"""


def files_of_a_run(experiment: str, code: Path) -> list[Path]:
    """The hkd source files whose functions one tiny run of ``experiment`` calls."""
    with tempfile.TemporaryDirectory() as tmp:
        arguments = ["train", experiment, *TINY, f"output_dir={tmp}/runs", f"data.cache_dir={tmp}/cache"]
        env = {**os.environ, "PYTHONPATH": str(code), "WANDB_MODE": "disabled"}
        env.pop("HKD_EXPERIMENTS", None)
        out = subprocess.run([sys.executable, "-c", CHILD, str(code / "hkd"), *arguments], cwd=code, env=env,
                             capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("FILES "))
    return [Path(name) for name in line.split()[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="?", default="synthetic_hkd")
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the checkout whose hkd runs (default: this one)")
    args = parser.parse_args()
    code = args.code.resolve()
    files = [f for f in files_of_a_run(args.experiment, code) if f.name != "__init__.py"]
    lines = {f: len(f.read_text().splitlines()) for f in files}
    for file, count in sorted(lines.items()):
        print(f"{count:5d}  {file.relative_to(code)}")
    commit = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"{args.experiment} at {commit}: {len(files)} hkd files ({sum(lines.values())} lines) "
          "have a function called in one run (__init__ files left out)")


if __name__ == "__main__":
    main()
