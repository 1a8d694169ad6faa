"""A run remembers the data set it trained on (``RUN_DIR/data.json``: every image's file, class and
split), and a resume compares: what changed is printed, and a split that changed is refused unless
``data.allow_split_change=true`` (an image that moved from test to train would be trained on and
then tested on). IMIL's edits and marks are matched to their images separately (by the callback)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from hkd.atomic import append_json_line, atomic_write_json
from hkd.data.identity import DataChange, compare
from hkd.errors import InputError

FINGERPRINT = "data.json"
CHANGES = "data_changes.jsonl"
log = logging.getLogger(__name__)


def check_data_set(run_dir: Path, now: dict, resuming: bool, allow_split_change: bool = False) -> DataChange:
    """Record the data set of a new run; on a resume, say what changed since and refuse a changed
    split (unless allowed). The accepted data set becomes the run's, and the change is logged in
    ``RUN_DIR/data_changes.jsonl``."""
    path = run_dir / FINGERPRINT
    change = DataChange()
    if resuming and path.is_file():
        change = compare(json.loads(path.read_text()), now)
        if change.classes:
            raise InputError(f"resume={run_dir}: the data set's classes changed ({change.classes}); the "
                             "model's output layer is for the old ones: start a new run")
        if change.resplit and not allow_split_change:
            raise InputError(f"resume={run_dir}: the data set changed since the run began, and "
                             f"{len(change.resplit)} images are now in another split, e.g. "
                             f"{'; '.join(change.resplit[:5])}. Images that moved into training from test "
                             "would be tested on after training on them. Restore the splits, or resume with "
                             f"data.allow_split_change=true if that is what you mean.\n{change.describe()}")
        if change and rank_zero_only.rank == 0:  # DDP: every rank checks, one writes
            log.warning("the data set changed since the run began:\n%s", change.describe())
            append_json_line(run_dir / CHANGES, {"time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                 "change": change.describe(limit=50)})
    if (change or not path.is_file()) and rank_zero_only.rank == 0:
        atomic_write_json(path, now)
    return change
