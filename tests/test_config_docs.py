"""docs/config-reference.md is generated from the config model: the committed page must match the generator."""
from __future__ import annotations

from pathlib import Path

from stream_monitor.config import MonitorConfig
from stream_monitor.config_docs import render

PAGE = Path(__file__).resolve().parents[1] / "docs" / "config-reference.md"


def test_committed_reference_matches_the_generator():
    assert PAGE.read_text() == render(), (
        "docs/config-reference.md is stale: regenerate with `python -m stream_monitor.config_docs > "
        "docs/config-reference.md`")


def test_every_field_of_every_section_is_listed():
    text = render()
    for section in ("kafka", "topics", "service", "checkpoint"):
        model = MonitorConfig.model_fields[section].annotation
        for name in model.model_fields:  # type: ignore[union-attr]
            assert f"| `{name}` |" in text, f"{section}.{name}"
    assert "`STREAM_MONITOR_SERVICE__HISTORY_WINDOWS`" in text
    assert "## `models[].rules[]`" in text and "**required**" in text
