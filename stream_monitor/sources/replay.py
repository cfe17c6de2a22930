"""Replay: the same pipeline over a JSON-lines file, no broker. The offline mode, and the quickest config test."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from stream_monitor.engine_types import EngineOutput
from stream_monitor.sinks.base import RawRecord
from stream_monitor.sources.pipeline import Pipeline


def read_records(path: str | Path) -> Iterator[RawRecord]:
    """One record per non-empty line; the "offset" is the 1-based line number, so dead letters point at it."""
    p = Path(path)
    with p.open("rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            line = line.rstrip(b"\r\n")
            if line:
                yield RawRecord(value=line, key=None, topic=p.name, partition=0, offset=line_no)


def replay(pipeline: Pipeline, path: str | Path, batch_size: int = 1000,
           progress: Callable[[int], None] | None = None) -> EngineOutput:
    """`progress`, if given, is called with the number of records after each batch (the CLI's progress line)."""
    batch: list[RawRecord] = []
    for record in read_records(path):
        batch.append(record)
        if len(batch) >= batch_size:
            pipeline.handle(batch)
            if progress is not None:
                progress(len(batch))
            batch = []
    if batch:
        pipeline.handle(batch)
        if progress is not None:
            progress(len(batch))
    pipeline.finish()
    pipeline.flush()
    return pipeline.totals
