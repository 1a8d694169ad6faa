"""benchmarks/edit_coverage.py: where a real IMIL run's edits landed against the data's marker."""

from __future__ import annotations

import json

from benchmarks.edit_coverage import coverage
from hkd.run.experiment import run_experiment


def test_every_edit_is_counted_against_the_marker(tiny, tmp_path):
    cfg = tiny("imil.enabled=true", "imil.start_epoch=0", "imil.every_n_epochs=1", "augment.policy=none",
               "imil.budget=0.2", "imil.propagate=true", "prior_generator.epochs=1",
               "imil.propagate_updates=2", "trainer.max_epochs=2")
    run_dir = run_experiment(cfg)
    run_dir.rename(tmp_path / "seed3")
    counts = coverage(tmp_path / "seed3")
    edits = json.loads((tmp_path / "seed3" / "imil" / "edits.json").read_text())["edits"]
    by_source = {source: sum(v for k, v in counts.items() if k.startswith(f"{source}:"))
                 for source in ("oracle", "propagated")}
    assert counts["seed"] == 3 and by_source["oracle"] == sum(e["source"] == "oracle" for e in edits) > 0
    assert counts["oracle: covers"] == by_source["oracle"]  # the simulated clinician marks the tag itself
    assert by_source["propagated"] == sum(e["source"] == "propagated" for e in edits)
    assert counts["markers no edit touches"] == 40 - len(edits)  # every synthetic image has its tag
