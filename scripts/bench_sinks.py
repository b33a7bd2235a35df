"""Loopback endpoints for the benchmarks: up, refused and blackholed."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


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
    completes the TCP handshake (kernel backlog) and never answers."""

    def __enter__(self) -> Sinks:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.refused_port = probe.getsockname()[1]
        probe.close()
        self.hole = socket.socket()
        self.hole.bind(("127.0.0.1", 0))
        self.hole.listen(1024)
        return self

    def urls(self) -> dict[str, str]:
        return {
            "up": f"http://127.0.0.1:{self.server.server_address[1]}/v1/events",
            "refused": f"http://127.0.0.1:{self.refused_port}/v1/events",
            "blackholed": f"http://127.0.0.1:{self.hole.getsockname()[1]}/v1/events",
        }

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.hole.close()
