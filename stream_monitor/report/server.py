"""The service's HTTP endpoint: ``/metrics`` for Prometheus, ``/`` for people (the status page).

``/metrics`` (and every other path except ``/`` and ``/status``, as with
prometheus_client's own server) is prometheus_client's WSGI app, unchanged:
same content negotiation, same ``?name[]=`` filtering, same gzip. TLS and client
certificates are set up as prometheus_client's ``start_http_server`` does, so the
``service.metrics_tls_*`` settings mean the same thing.
"""
from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

STATUS_PATHS = ("/", "/status")


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: scrapes every few seconds would drown the service's own logs."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return None


def _family(addr: str, port: int) -> tuple[socket.AddressFamily, str]:
    info = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = info[0]
    return family, str(sockaddr[0])


def tls_context(certfile: str, keyfile: str, client_cafile: str | None = None,
                client_auth_required: bool = False) -> ssl.SSLContext:
    """Server-side TLS; with `client_cafile` and `client_auth_required`, clients must present a certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if client_cafile is not None:
        ctx.load_verify_locations(client_cafile)
    if client_auth_required:
        ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(certfile=certfile, keyfile=keyfile)
    return ctx


def status_and_metrics_app(registry: CollectorRegistry, status: Callable[[], str]) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") in STATUS_PATHS and environ.get("REQUEST_METHOD", "GET") in ("GET", "HEAD"):
            body = status().encode()
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                       ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
            return [body] if environ.get("REQUEST_METHOD", "GET") == "GET" else [b""]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    return app


def start_server(port: int, addr: str, registry: CollectorRegistry, status: Callable[[], str], *,
                 certfile: str | None = None, keyfile: str | None = None, client_cafile: str | None = None,
                 client_auth_required: bool = False) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/`` and ``/metrics`` from a daemon thread; returns the server (``server_port`` is the bound port)."""

    class Server(ThreadingWSGIServer):
        pass

    Server.address_family, host = _family(addr, port)
    httpd = make_server(host, port, status_and_metrics_app(registry, status), Server, handler_class=_QuietHandler)
    if certfile and keyfile:
        ctx = tls_context(certfile, keyfile, client_cafile, client_auth_required)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return httpd, thread
