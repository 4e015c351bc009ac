"""The HTTP side of the local API: the standard library's ``ThreadingHTTPServer`` reading raw
requests (bytes, repeated headers, ``Expect: 100-continue``, chunked bodies) for the gateway.

One thread per connection, and a deep listen backlog, so a burst of clients is queued, not reset;
the threads only wait while the functions run in their own worker processes."""

import logging
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from infra.local_api.gateway import Gateway, HttpRequest, HttpResponse

logger = logging.getLogger("local_api")

# Connection-level headers API Gateway does not forward to the integration.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "expect", "te", "upgrade"})
DISCARD_LIMIT = (
    64 * 1024 * 1024
)  # an oversized body up to this is read and dropped so the 413 arrives cleanly


class _BodyTooLarge(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "ApiServer"

    def handle_one_request(self) -> None:
        self._started = time.perf_counter()
        super().handle_one_request()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every method reaches the gateway, which answers unknown ones
            return self._serve
        raise AttributeError(name)

    def handle_expect_100(self) -> bool:
        if int(self.headers.get("Content-Length") or 0) > self.server.gateway.payload_limit:
            self.close_connection = True
            self._send(self.server.gateway.error("REQUEST_TOO_LARGE", "local-expect"))
            return False
        return super().handle_expect_100()

    def _read_body(self) -> bytes:
        limit = self.server.gateway.payload_limit
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, size = [], 0
            while True:
                chunk_size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if chunk_size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                size += chunk_size
                if size > limit:
                    self.close_connection = True
                    raise _BodyTooLarge
                chunks.append(self.rfile.read(chunk_size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            if length > DISCARD_LIMIT:
                self.close_connection = True
            else:
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            raise _BodyTooLarge
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        gateway = self.server.gateway
        try:
            body = self._read_body()
        except _BodyTooLarge:
            self._send(gateway.error("REQUEST_TOO_LARGE", "local-body"))
            return
        request = HttpRequest(
            method=self.command,
            target=self.path,
            headers=[(name, value) for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP],
            body=body,
            source_ip=self.client_address[0],
        )
        self._send(gateway.handle(request))

    def _send(self, response: HttpResponse) -> None:
        self.send_response_only(response.status)
        skip = {"content-length", "transfer-encoding", "connection"}
        for name, value in response.headers:
            if name.lower() not in skip:
                self.send_header(name, value)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        elapsed_ms = (time.perf_counter() - self._started) * 1000
        print(
            f"{self.command} {self.path} {response.status} {elapsed_ms:.1f} ms", file=sys.stderr, flush=True
        )

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        logger.debug(format, *args)


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the listen backlog: connections beyond it would be refused or reset

    def __init__(self, gateway: Gateway, host: str, port: int):
        super().__init__((host, port), _Handler)
        self.gateway = gateway
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="local-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
