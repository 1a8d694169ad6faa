"""Where a saved prior generator is: ``data.prior_generator`` names a run of ``hkd prior train`` or
its file (no torch here: the configuration checks that the file exists)."""

from __future__ import annotations

from pathlib import Path

GENERATOR_FILE = "prior_generator.pt"  # in a run of ``hkd prior train``


def generator_path(value: str | Path) -> Path:
    """``data.prior_generator``: a run of ``hkd prior train`` or its ``prior_generator.pt``."""
    path = Path(value)
    return path / GENERATOR_FILE if path.is_dir() else path
