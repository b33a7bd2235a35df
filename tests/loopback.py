"""Real loopback listeners for the consent and CLI tests (127.0.0.1, port 0).

``Listener`` counts every TCP connection it accepts and answers each HTTP
request with 200, decoding gzip JSON envelopes so a test can count the events
that arrived.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.hosts import build_env
from tests.servers import wait_for

ROOT = Path(__file__).resolve().parent.parent


class Listener:
    """A real TCP listener on loopback that counts accepted connections."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/v1/events"
        self.connections = 0
        self._peers: set[tuple[str, int]] = set()
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except OSError:
                continue
            with self._lock:
                self.connections += 1
                self._peers.add(peer)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def settled_connections(self) -> int:
        """Connections accepted from others, counted only once the backlog is drained.

        A handshake instead of a sleep: the kernel queues completed connections
        in FIFO order, so once our own sentinel connection has been accepted,
        every connection made before it (by a process that has already exited,
        say) has been accepted and counted too.
        """
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as probe:
            me = probe.getsockname()
            wait_for(lambda: me in self._peers)
        with self._lock:
            return self.connections - 1

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            with conn, conn.makefile("rb") as r:
                while True:
                    line = r.readline()
                    if not line:
                        return
                    headers: dict[str, str] = {}
                    while True:
                        h = r.readline()
                        if h in (b"\r\n", b"\n", b""):
                            break
                        k, _, v = h.decode("latin-1").partition(":")
                        headers[k.strip().lower()] = v.strip()
                    body = r.read(int(headers.get("content-length", "0")))
                    self._record(body, headers)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            return

    def _record(self, body: bytes, headers: dict[str, str]) -> None:
        try:
            if headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            doc = json.loads(body)
        except ValueError:
            return
        with self._lock:
            self.events.extend(doc.get("events", []) if isinstance(doc, dict) else [])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """``build_env`` with HOME inside the test and no CI override (the consent
    and CLI tests add exactly the variables they are about)."""
    return build_env(extra, home, allow_ci=False)


def run(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    kw.setdefault("cwd", str(ROOT))
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, **kw)


def telespool(*args: str, env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run the installed console script ``.venv/bin/telespool`` for real."""
    exe = Path(sys.executable).with_name("telespool")
    return run([str(exe), *args], env, **kw)


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (relative), directories included."""
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text`` (Linux /proc)."""
    found = []
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmd:
            found.append(cmd)
    return found
