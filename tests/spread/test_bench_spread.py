"""`python -m bench.spread` keeps working: its partial-size figure on a small pane, and the merge of two shards."""
from __future__ import annotations

from pathlib import Path

import bench.spread as spread_bench


def test_partial_size_figure_for_25_numeric_features(tmp_path: Path) -> None:
    reference = spread_bench.build_reference(tmp_path)
    [row] = spread_bench.partial_sizes(reference, [1000])
    assert row["pane_events"] == 1000 and row["features"] == 26
    # every sketch of 26 numeric features, compressed: tens of KiB per feature at most, far below 1 MB
    assert 10_000 < row["partial_bytes"] < 1_000_000
    assert row["partial_bytes"] < row["json_bytes"] and row["watermark_bytes"] < 1000
