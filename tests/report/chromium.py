"""Headless Chromium (Debian's `chromium` package) as a test tool: DOM, console messages, screenshot.

Console messages are read from Chromium's own log (``--enable-logging=stderr``
prints every console message, errors, uncaught exceptions and CSP violations
included, as ``...:CONSOLE:<line>] "<text>", source: <url>``), so the page under
test needs no injected script: the report's Content-Security-Policy forbids
scripts anyway.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

CONSOLE = re.compile(r':CONSOLE(?:\(\d+\)|:\d+)\] "(.*)", source: (\S*)')


@dataclass
class Rendered:
    dom: str
    console: list[str]


def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("headless Chromium is not installed: `apt-get install -y chromium` (Debian's package; "
                    ".ci/run installs it)")
    return binary


def _run(url: str, profile: Path, *action: str, window: str = "1400,2000") -> subprocess.CompletedProcess[str]:
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}", "--enable-logging=stderr",
            "--v=0", f"--window-size={window}", *action, url]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def render(url: str, tmp: Path) -> Rendered:
    """The DOM after load, and every console message the page produced."""
    proc = _run(url, tmp / "chromium-profile-dom", "--dump-dom")
    return Rendered(dom=proc.stdout, console=[m.group(1) for m in CONSOLE.finditer(proc.stderr)])


def screenshot(url: str, path: Path, tmp: Path, window: str = "1400,2000") -> Path:
    _run(url, tmp / "chromium-profile-shot", f"--screenshot={path}", window=window)
    if not path.exists():
        raise AssertionError(f"chromium wrote no screenshot at {path}")
    return path
