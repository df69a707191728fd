"""/healthz, /readyz and /metrics on one small HTTP server (a WSGI app on a thread)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:  # probes every few seconds: not worth a log line each
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class HealthServer:
    """`ready` is asked on every /readyz: caches synced and a policy loaded."""

    def __init__(
        self,
        registry: CollectorRegistry,
        ready: Callable[[], tuple[bool, str]],
        host: str = "0.0.0.0",
        port: int = 9090,
    ):
        metrics: WSGIApplication = make_wsgi_app(registry)  # typed there as a bare Callable

        def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/healthz":
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"ok\n"]
            if path == "/readyz":
                ok, why = ready()
                start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
                return [(why or ("ready" if ok else "not ready")).encode() + b"\n"]
            if path == "/metrics":
                return metrics(environ, start_response)
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /healthz, /readyz or /metrics\n"]

        self.server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_Quiet)
        self.thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> HealthServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(registry: CollectorRegistry, ready: Callable[[], tuple[bool, str]], host: str, port: int) -> HealthServer:
    """A started HealthServer, or OSError with one line naming the address (a port in use by
    another replica or process, a host that is not this machine's)."""
    try:
        return HealthServer(registry, ready, host=host, port=port).start()
    except OSError as err:
        raise OSError(f"cannot serve /metrics on {host}:{port}: {err.strerror or err}") from None
