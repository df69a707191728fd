"""HTTP/1.1 for the API: a threading server on 127.0.0.1, keep-alive, request bodies by
Content-Length or chunked, and watches as chunked responses that end when the watch ends, the
client goes away, or the server stops.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from scheduler.sandbox import errors
from scheduler.sandbox.api import Api
from scheduler.sandbox.protocol import Request, Response, error_response

log = logging.getLogger("scheduler.sandbox")


class HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: Api) -> None:
        self.api = api
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _client_gone(sock: socket.socket) -> bool:
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HttpServer
    server_version = "sandbox-apiserver"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # small answers go out at once (no Nagle / delayed-ACK stalls of ~40 ms per request)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        req = Request(self.command, url.path, dict(parse_qsl(url.query, keep_blank_values=True)), self.headers, body)  # type: ignore[arg-type]  # Message: case-insensitive get
        try:
            resp = self.server.api.handle(req)
        except Exception as e:  # a bug in the sandbox: answer like the apiserver's panic handler
            log.exception("sandbox: %s %s failed", self.command, self.path)
            resp = error_response(errors.internal(f"{type(e).__name__}: {e}"))
        if resp.stream is None:
            self._send(resp)
        else:
            self._send_stream(resp)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _headers(self, resp: Response) -> None:
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in resp.headers.items():
            self.send_header(name, value)

    def _send(self, resp: Response) -> None:
        self._headers(resp)
        self.send_header("Content-Length", str(len(resp.body)))
        if self.command != "HEAD" and len(resp.body) <= 65536:
            self._headers_buffer.append(b"\r\n" + resp.body)  # type: ignore[attr-defined]  # one write
            self.flush_headers()
            return
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    def _send_stream(self, resp: Response) -> None:
        assert resp.stream is not None
        self._headers(resp)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in resp.stream:
                if not chunk:
                    if _client_gone(self.connection):
                        self.close_connection = True
                        return
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True
        finally:
            close = getattr(resp.stream, "close", None)
            if close:
                close()
