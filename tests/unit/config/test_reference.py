"""Every key is declared once, in the schema: ``base.yaml`` and the docs' key table are generated
from it and must be current; the declarations carry what loading checks."""

from pathlib import Path

import pytest
import yaml

from hkd.config import ConfigError, load_config
from hkd.config.choices import FILLS, METHODS
from hkd.config.reference import BASE_YAML, KEY_TABLE, base_yaml, commented, key_table, yaml_value
from hkd.config.schema import ENUMERATED, RANGED, declared, default_of, is_section

REPO = Path(__file__).resolve().parents[3]


def test_base_yaml_and_the_key_table_are_generated_from_the_schema():
    assert BASE_YAML.read_text() == base_yaml(), "run python -m hkd.config.reference (make config)"
    assert key_table() in KEY_TABLE.read_text(), "run python -m hkd.config.reference (make config)"
    assert KEY_TABLE == REPO / "docs" / "configuration.md"


def test_every_key_is_declared_with_its_default_and_what_it_does():
    keys = [(dotted, item) for dotted, item in declared() if not is_section(item)]
    assert len(keys) > 120 and all(item.metadata["doc"] for _, item in keys)
    base = yaml.safe_load(base_yaml())
    for dotted, item in keys:
        value = base
        for part in dotted.split("."):
            value = value[part]
        assert value == default_of(item), dotted
        assert f"| `{dotted}` | `{yaml_value(default_of(item))}` |" in key_table()
    assert ENUMERATED["method.name"] is METHODS and ENUMERATED["imil.fill"] is FILLS
    assert RANGED["data.batch_size"].describe() == ">= 1"


def test_a_declared_choice_and_range_are_what_loading_checks():
    with pytest.raises(ConfigError, match="imil.fill"):
        load_config("quickstart", ["imil.fill=paint"])
    with pytest.raises(ConfigError, match="data.batch_size=-3 must be >= 1"):
        load_config("quickstart", ["data.batch_size=-3"])


def test_a_long_comment_wraps_at_the_comment_column():
    lines = commented("  key: value", "word " * 40)
    assert lines[0].startswith("  key: value") and lines[0].index("#") == 29
    assert all(len(line) <= 110 and line.index("#") == 29 for line in lines[1:]) and len(lines) > 1
    assert commented("  very_long_key_name_here_and_more: 1", "x")[0].endswith(": 1 # x")
