"""benchmarks/propagation_trace.py: the generator's trace every 10 updates on a tiny benchmark,
the stopping rule's verdict at each check and the table made from it."""

from __future__ import annotations

from benchmarks.propagation_trace import table_md, trace
from hkd.imil.propagation import CHECK_EVERY
from tests.conftest import TINY


def test_the_trace_records_every_check_and_where_the_rule_stops(tmp_path):
    # threshold 0 and no filters: every pixel proposed, so the rule holds from the first check
    lenient = ("imil.propagate_confidence=0", "imil.propagate_max_area=1", "prior_generator.threshold=0",
               "imil.budget=0.2")
    run = trace(0, 2 * CHECK_EVERY, tmp_path, (*TINY, *lenient))
    assert [step["updates"] for step in run["steps"]] == [CHECK_EVERY, 2 * CHECK_EVERY]
    assert run["marks"] > 0 and run["others"] == 40 - run["marks"]
    assert run["stop"] == CHECK_EVERY and all(step["stops"] for step in run["steps"])
    for step in run["steps"]:
        assert step["marks_proposable"] == 1.0 and step["marks_covered"] == 1.0
        assert step["proposed"] == run["others"] and step["tag_covered"] == 1.0
    table = table_md([run])
    assert table.count("**stops here**") == 1 and f"| 0 | {CHECK_EVERY} | 100 % |" in table
