"""One root exception for the package, with a few precise subclasses.

Callers that embed stream-monitor catch :class:`StreamMonitorError`; the CLI turns
it into a one-line message and a non-zero exit code instead of a traceback.
"""
from __future__ import annotations


class StreamMonitorError(Exception):
    """Root of every error stream-monitor raises on purpose."""


class ConfigError(StreamMonitorError):
    """The configuration file or an override is invalid; the message names the field and the fix."""


class ProfileError(StreamMonitorError):
    """A reference profile is missing, corrupt (hash mismatch) or does not match the model's features."""


class EventRejected(StreamMonitorError):
    """An input record failed its contract; carries a short machine-readable reason for the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
