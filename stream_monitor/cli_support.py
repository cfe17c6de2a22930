"""What every `stream-monitor` command shares: help examples, exit codes, JSON logs and progress lines.

Kept out of cli.py so the commands stay readable there, and so the examples can
be checked by a test (every command's ``--help`` shows at least one).
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

#: Exit codes (README "Exit codes"): what a script or an orchestrator can rely on.
EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2  # bad arguments, invalid configuration, unreadable or invalid input data, refused profile
EXIT_INTERRUPTED = 130

EXIT_CODES = f"""exit codes:
  {EXIT_OK}    success
  {EXIT_USAGE}    usage, configuration or data error (the message names the file, field and fix)
  {EXIT_UNEXPECTED}    unexpected error (a bug: rerun with --log-level DEBUG and report the traceback)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C) outside `run`/`demo`, which stop cleanly and exit 0"""

EXAMPLES: dict[str, str] = {
    "": """examples:
  stream-monitor demo                                  # see it work: embedded broker, drift, alerts
  stream-monitor check-config -c monitor.yaml
  stream-monitor run -c monitor.yaml --log-format json
  stream-monitor <command> --help                      # every command has examples

""" + EXIT_CODES,
    "run": """examples:
  stream-monitor run -c monitor.yaml
  STREAM_MONITOR_KAFKA__BOOTSTRAP_SERVERS=broker:9092 stream-monitor run -c monitor.yaml --log-format json
  then open http://HOST:9308/ (status page) and http://HOST:9308/metrics""",
    "demo": """examples:
  stream-monitor demo
  stream-monitor demo --duration 120 --rate 1000 --window-seconds 10
  stream-monitor demo --bootstrap-servers localhost:9092 --metrics-port 0""",
    "replay": """examples:
  stream-monitor replay -c monitor.yaml --input events.jsonl
  stream-monitor replay -c monitor.yaml --input events.jsonl --alerts-out alerts.jsonl \\
      --dead-letter-out rejected.jsonl --metrics-out metrics.prom""",
    "report": """examples:
  stream-monitor report -c monitor.yaml --input events.jsonl -o report.html
  stream-monitor report -c monitor.yaml --input events.jsonl --model credit-risk \\
      --from 2026-01-01T00:00:00+00:00 --to 2026-01-02T00:00:00+00:00 -o report.html""",
    "simulate": """examples:
  stream-monitor simulate --output reference.jsonl --rate 100 --duration 3600 --start 2026-01-01T00:00:00+00:00
  stream-monitor simulate --output live.jsonl --duration 600 --drift-after 300 --drift-features income,channel
  stream-monitor simulate --bootstrap-servers localhost:9092 --topic predictions --rate 500 --duration 60""",
    "reference": """examples:
  stream-monitor reference build -c monitor.yaml --input reference.jsonl -o reference.json
  stream-monitor reference diff old-reference.json reference.json""",
    "reference build": """examples:
  stream-monitor reference build -c monitor.yaml --input reference.jsonl -o reference.json
  stream-monitor reference build -c monitor.yaml --input training.csv --model credit-risk -o reference.json""",
    "reference diff": """examples:
  stream-monitor reference diff old-reference.json new-reference.json
  stream-monitor reference diff a.json b.json -o diff.json""",
    "calibrate": """examples:
  stream-monitor calibrate -c monitor.yaml -o monitor.calibrated.yaml
  stream-monitor calibrate -c monitor.yaml --reference reference.json --window-events 5000 \\
      --target-rate 0.005 -o monitor.calibrated.yaml""",
    "schemas": """examples:
  stream-monitor schemas export --out schemas""",
    "schemas export": """examples:
  stream-monitor schemas export
  stream-monitor schemas export --out /tmp/schemas""",
    "decisions": """examples:
  stream-monitor decisions -c monitor.yaml
  stream-monitor decisions --audit-log decisions.jsonl --model credit-risk --type retrain --json""",
    "check-config": """examples:
  stream-monitor check-config -c monitor.yaml
  STREAM_MONITOR_SERVICE__METRICS_PORT=9400 stream-monitor check-config -c monitor.yaml""",
}


def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every (nested) subcommand parser by its path, e.g. ``"reference build"``."""
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = f"{prefix} {name}".strip()
                out[path] = sub
                out.update(subcommands(sub, path))
    return out


#: Options of the top-level parser that every command also accepts after its name.
COMMON_OPTIONS = ("--log-level", "--log-format", "--progress-seconds", "--no-progress")


def apply_examples(parser: argparse.ArgumentParser) -> None:
    """Put the examples (and, on the top level, the exit codes) under every command's --help, and let every
    command take the common options after its name too (``stream-monitor run -c x --log-format json``)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLES[""]
    common = [a for a in parser._actions if a.option_strings and a.option_strings[0] in COMMON_OPTIONS]
    for path, sub in subcommands(parser).items():
        sub.formatter_class = argparse.RawDescriptionHelpFormatter
        if path in EXAMPLES:
            sub.epilog = EXAMPLES[path]
        if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
            continue
        group = sub.add_argument_group("common options (also accepted before the command)")
        for action in common:
            kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": argparse.SUPPRESS}
            if isinstance(action, argparse._StoreTrueAction):
                kwargs["action"] = "store_true"
            else:
                kwargs.update(type=action.type, choices=action.choices)
            group.add_argument(*action.option_strings, dest=action.dest, **kwargs)


# -- logging -----------------------------------------------------------------------------------

_STANDARD = set(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line (ts, level, logger, message, extras) for log shippers.

    Fields passed with ``extra=`` become keys. Messages follow the logging rule of the
    package: positions and counts, never payloads or feature values.
    """

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        body.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (it may be swapped after set-up)."""

    _stream_monitor = True

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        return None


def setup_logging(level: str, fmt: str = "text") -> None:
    """Like ``logging.basicConfig``: configures the root logger only if nobody else (an embedding app,
    pytest) already has; calling it again replaces what it set up before."""
    root = logging.getLogger()
    if any(not getattr(h, "_stream_monitor", False) for h in root.handlers):
        return
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json"
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))


class _JsonLines(io.TextIOBase):
    """stderr for ``--log-format json``: lines that are not JSON objects already (a command's summary
    printed to stderr) become ``{"ts", "level": "INFO", "logger": "stream_monitor.cli", "message"}``."""

    def __init__(self, target: TextIO) -> None:
        self.target = target
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self._line(line)
        return len(text)

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        if line.startswith("{"):
            try:
                json.loads(line)
                self.target.write(line + "\n")
                return
            except ValueError:
                pass
        self.target.write(json.dumps({"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "level": "INFO",
                                      "logger": "stream_monitor.cli", "message": line}) + "\n")

    def flush(self) -> None:
        if self.pending:
            line, self.pending = self.pending, ""
            self._line(line)
        self.target.flush()


@contextmanager
def json_stderr(enabled: bool) -> Iterator[None]:
    """While a command runs with ``--log-format json``, everything Python writes to stderr is JSON lines."""
    if not enabled:
        yield
        return
    saved = sys.stderr
    wrapper = _JsonLines(saved)
    sys.stderr = wrapper
    try:
        yield
    finally:
        wrapper.flush()
        sys.stderr = saved


def error_line(message: str, fmt: str, exit_code: int) -> str:
    """The one line a failed command prints on stderr (a JSON object with ``--log-format json``)."""
    if fmt == "json":
        return json.dumps({"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "level": "ERROR",
                           "logger": "stream_monitor.cli", "message": message, "exit_code": exit_code})
    return f"stream-monitor: {message}"


# -- progress ----------------------------------------------------------------------------------


class Progress:
    """A progress-and-rate line every `every` seconds on long work (replay, reference build, calibrate).

    Lines go to stderr (JSON objects with ``--log-format json``), so stdout stays
    the command's result. The clock is injectable: tests drive it, never sleep.
    """

    def __init__(self, what: str, unit: str = "events", *, total: int | None = None, every: float = 5.0,
                 fmt: str = "text", enabled: bool = True, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.unit, self.total, self.every, self.fmt = what, unit, total, every, fmt
        self.enabled = enabled
        self.stream = stream
        self.clock = clock
        self.count = 0
        self.started = clock()
        self._last_t = self.started
        self._last_n = 0
        self.lines = 0

    def add(self, n: int = 1) -> None:
        self.count += n
        if self.enabled and self.every > 0:
            now = self.clock()
            if now - self._last_t >= self.every:
                self._emit(now, done=False)

    def done(self) -> None:
        if self.enabled:
            self._emit(self.clock(), done=True)

    def _emit(self, now: float, *, done: bool) -> None:
        elapsed = max(now - self.started, 1e-9)
        window = max(now - self._last_t, 1e-9)
        rate = (self.count - self._last_n) / window if not done else self.count / elapsed
        fields: dict[str, Any] = {"task": self.what, "count": self.count, "unit": self.unit,
                                  "rate_per_s": round(rate, 1), "elapsed_s": round(elapsed, 1), "done": done}
        text = f"{self.what}: {self.count:,} {self.unit}, {rate:,.0f}/s"
        if self.total:
            share = min(1.0, self.count / self.total)
            fields["percent"] = round(100 * share, 1)
            text += f", {share:.0%} of {self.total:,}"
            if not done and rate > 0:
                fields["eta_s"] = round((self.total - self.count) / rate, 1)
                text += f", ~{fields['eta_s']:.0f}s left"
        text += f" ({'done in' if done else 'elapsed'} {elapsed:.1f}s)"
        stream = self.stream or sys.stderr
        if self.fmt == "json":
            stream.write(json.dumps({"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "level": "INFO",
                                     "logger": "stream_monitor.progress", "message": text, **fields}) + "\n")
        else:
            stream.write(text + "\n")
        stream.flush()
        self._last_t, self._last_n = now, self.count
        self.lines += 1


def progress_for(args: argparse.Namespace, what: str, unit: str = "events", total: int | None = None) -> Progress:
    """A Progress set up from the global options (--log-format, --no-progress, --progress-seconds)."""
    return Progress(what, unit, total=total, every=getattr(args, "progress_seconds", 5.0),
                    fmt=getattr(args, "log_format", "text"), enabled=not getattr(args, "no_progress", False))
