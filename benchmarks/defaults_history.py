"""Defaults that changed what a run does, and when: so a record or run directory made before such a
change is not taken for a run of today's configuration (a record keeps only the overrides of its
row, and a run directory only the keys of its day).

Whoever changes a default's behaviour adds a ``DefaultsChange``: the first commit with the new
default, the overrides that restore the old one, and which runs it touches."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import NamedTuple

from omegaconf import DictConfig, OmegaConf

REPO = Path(__file__).resolve().parents[1]


def propagates(cfg: DictConfig) -> bool:
    """Whether a run propagates clinician marks (IMIL with ``imil.propagate``)."""
    return bool(cfg.imil.enabled and cfg.imil.propagate)


class DefaultsChange(NamedTuple):
    commit: str  # the first commit with the new defaults
    before: tuple[str, ...]  # the overrides that restore the old ones
    applies: Callable[[DictConfig], bool]  # which runs the change touches


# issue #32: propagation got its own, narrower generator that stops once it reproduces the marks,
# then smaller batches
GENERATOR_BEFORE_32 = ("imil.propagate_features=[8,16,32,64,128,8]", "imil.propagate_lr=0.002",
                       "imil.propagate_updates=100", "imil.propagate_stop_recall=null")
BATCHES_OF_16 = "imil.propagate_batch_size=16"
DEFAULTS_CHANGES = (
    DefaultsChange("db96352524ad97c2acc4a287f1e52b6f639eb03c", GENERATOR_BEFORE_32, propagates),
    DefaultsChange("2722d877c5de55f6bd09703ee01a2e41c027b4cf", (BATCHES_OF_16,), propagates),
)


def behaviour_before_keys(changes: tuple[DefaultsChange, ...] = DEFAULTS_CHANGES) -> dict[str, object]:
    """{key: value} of every changed default as it was before: what a run directory made before
    such a key existed did."""
    from hkd.config import to_dotlist

    return to_dotlist(OmegaConf.from_dotlist([o for change in changes for o in change.before]))


@cache
def made_before(commit: str | None, change_commit: str, repo: Path = REPO) -> bool:
    """Whether code at ``commit`` (a record's ``git_commit``) predates ``change_commit`` in the git
    history of ``repo``; a commit it does not know, or none, counts as before (the run is made
    again rather than trusted)."""
    if not commit:
        return True
    after = subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", change_commit,
                            commit.removesuffix("+changes")], capture_output=True)
    return after.returncode != 0


def overrides_then(record: dict, cfg: DictConfig, changes: tuple[DefaultsChange, ...] = DEFAULTS_CHANGES,
                   repo: Path = REPO) -> list[str]:
    """A record's overrides as today's configuration needs them to say what its run did: the old
    defaults of each change it predates and that touches a run of ``cfg`` (its row's configuration
    today), then its own overrides (which win)."""
    predated = [change for change in changes
                if change.applies(cfg) and made_before(record.get("git_commit"), change.commit, repo)]
    return [*(o for change in predated for o in change.before), *record["overrides"]]


def same_overrides(first: list[str], second: list[str]) -> bool:
    """Whether two override lists set the same keys to the same values (the last one of a key wins)."""
    def settings(overrides: list[str]) -> dict[str, str]:
        return dict(o.split("=", 1) for o in overrides)

    return settings(first) == settings(second)
