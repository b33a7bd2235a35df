"""Loopback endpoints for the benchmarks: up, refused and blackholed."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TypeVar

S = TypeVar("S", bound="Sinks")


class _Ok(BaseHTTPRequestHandler):
    """Reads the body and answers 200 with an empty JSON object."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, format: str, *args: object) -> None:
        pass


class Sinks:
    """``up`` answers 200; ``refused`` has nothing listening; ``blackholed``
    completes the TCP handshake (kernel backlog) and never answers.

    ``handler`` serves ``up`` (scripts/bench_seed.py's counts what arrives)."""

    handler: type[BaseHTTPRequestHandler] = _Ok

    def __enter__(self: S) -> S:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.refused_port = probe.getsockname()[1]
        probe.close()
        self.hole = socket.socket()
        self.hole.bind(("127.0.0.1", 0))
        self.hole.listen(1024)  # the kernel completes handshakes; nobody ever reads
        return self

    def url(self, condition: str, path: str = "/v1/events") -> str:
        port = {
            "up": self.server.server_address[1],
            "refused": self.refused_port,
            "blackholed": self.hole.getsockname()[1],
        }[condition]
        return f"http://127.0.0.1:{port}{path}"

    def urls(self) -> dict[str, str]:
        return {c: self.url(c) for c in ("up", "refused", "blackholed")}

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.hole.close()
