"""Fault injection at the steps of a checkpoint, for the crash-recovery tests (never set in production).

``STREAM_MONITOR_FAULT=<step>:<n>`` kills the process with SIGKILL the n-th time it
reaches ``step``: ``before_state_write``, ``after_state_write`` (state durable,
offsets not committed) or ``after_commit``. SIGKILL, not an exception: nothing may
run after the fault, exactly as after a power cut.
"""
from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "STREAM_MONITOR_FAULT"
STEPS = ("before_state_write", "after_state_write", "after_commit")
_seen: Counter[str] = Counter()


def maybe_crash(step: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != step:
        return
    _seen[step] += 1
    if _seen[step] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
