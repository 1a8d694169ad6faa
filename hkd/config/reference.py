"""``experiments/base.yaml`` and the docs' key table (``docs/configuration.md``), both generated from
the schema (``hkd.config.schema``), so a key's default, range, names and comment are typed once.

    python -m hkd.config.reference          # rewrite both (make config); a test checks they are current
"""

from __future__ import annotations

import textwrap
from dataclasses import Field
from pathlib import Path
from typing import Any

import yaml

from hkd.atomic import atomic_write_text
from hkd.config.schema import declared, default_of, is_section

PACKAGE = Path(__file__).resolve().parents[1]
BASE_YAML = PACKAGE / "experiments" / "base.yaml"
KEY_TABLE = PACKAGE.parent / "docs" / "configuration.md"  # in a source checkout
HEADER = ("# Every key hkd knows, with its default. Experiment files override a few of these;\n"
          "# `key=value` arguments on the command line override both. Unknown keys are an error.\n"
          "# Generated from hkd/config/schema.py by `python -m hkd.config.reference`: edit the schema.\n")
COMMENT_COLUMN = 29
WIDTH = 110
BEGIN, END = "<!-- config-keys -->\n", "<!-- /config-keys -->"


def yaml_value(value: Any) -> str:
    """A default as base.yaml writes it: flow style, ``null`` for None."""
    return yaml.safe_dump(value, default_flow_style=True, width=1000).removesuffix("\n...\n").strip()


def wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)


def commented(line: str, doc: str) -> list[str]:
    """``line`` with ``doc`` as its comment, wrapped onto comment lines at the comment column."""
    if not doc:
        return [line]
    column = max(COMMENT_COLUMN, len(line) + 1)
    first, *rest = wrap(doc, WIDTH - column - 2) or [""]
    wrapped = wrap(" ".join(rest), WIDTH - COMMENT_COLUMN - 2) if rest else []
    return [f"{line.ljust(column)}# {first}", *(f"{' ' * COMMENT_COLUMN}# {part}" for part in wrapped)]


def base_yaml() -> str:
    """Every key with its default and comment, sections in declaration order."""
    lines = []
    for dotted, item in declared():
        depth = dotted.count(".")
        name = dotted.rsplit(".", 1)[-1]
        if depth == 0 and is_section(item):
            lines.append("")
        text = f"{'  ' * depth}{name}:" + ("" if is_section(item) else f" {yaml_value(default_of(item))}")
        lines += commented(text, item.metadata.get("doc", ""))
    return HEADER + "\n".join(lines) + "\n"


def allowed(item: Field) -> str:
    if item.metadata.get("choices") is not None:
        return " \\| ".join(f"`{name}`" for name in item.metadata["choices"])
    if item.metadata.get("bounds") is not None:
        return item.metadata["bounds"].describe()
    kind = str(item.type)
    return f"{kind[9:-1]} or null" if kind.startswith("Optional[") else kind


def key_table() -> str:
    """The markdown table of every key: its default, the values it takes and what it does."""
    rows = ["| key | default | takes | what it does |", "|---|---|---|---|"]
    for dotted, item in declared():
        if is_section(item):
            continue
        default = yaml_value(default_of(item)).replace("|", "\\|")
        doc = item.metadata["doc"].replace("|", "\\|")
        rows.append(f"| `{dotted}` | `{default}` | {allowed(item)} | {doc} |")
    return "\n".join(rows) + "\n"


def with_key_table(text: str) -> str:
    """``text`` with the key table between its markers."""
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + key_table() + text[stop:]


def main() -> None:
    atomic_write_text(BASE_YAML, base_yaml())
    print(BASE_YAML)
    if KEY_TABLE.is_file():
        atomic_write_text(KEY_TABLE, with_key_table(KEY_TABLE.read_text()))
        print(KEY_TABLE)


if __name__ == "__main__":
    main()
