"""Scripted loopback servers for uploader tests (real sockets, real threads).

Like urllib3's dummyserver: each server answers according to a small script,
so a test can stage a refused port, a blackhole, 5xx with Retry-After, a reset
in the middle of the body, or a server that drips its reply a byte at a time.
Everything binds 127.0.0.1 on a free port.

One protocol for every server here, so no test waits on a guess:
- start: a context manager (``with ScriptedServer(...) as s``, ``with
  collector(db) as c``, ``with Blackhole() as b``);
- ready: when ``__enter__`` returns a client can connect. In-process servers
  bind and listen before it returns (the kernel queues a connection until the
  serving thread accepts it); the collector subprocess is ready once it has
  printed its "listening on" line;
- handshakes instead of sleeps: ``Gate`` holds one request until the test
  releases it; ``settled_connections()`` counts after a sentinel connection
  has drained the accept backlog; ``wait_for`` is a bounded wait on a condition;
- stop: ``__exit__`` shuts the server down (SIGTERM, then SIGKILL, for a subprocess).

The uploader runs through ``start_uploader`` / ``run_uploader`` only.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from tests.hosts import host_env

__all__ = [
    "REPO",
    "Blackhole",
    "Gate",
    "Received",
    "Reply",
    "ScriptedServer",
    "Uploader",
    "collector",
    "drops",
    "fill",
    "fixed",
    "meta",
    "queued",
    "refused_port",
    "run_uploader",
    "set_endpoint",
    "start_uploader",
]

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"{}"
    # Instead of a normal reply, send it one byte every drip_s seconds.
    drip_s: float = 0.0


Script = Callable[[dict[str, Any]], Reply]
# A relay answers from the raw request (body, headers) instead: a recording proxy.
Relay = Callable[[bytes, dict[str, str]], tuple[int, bytes]]


@dataclass(frozen=True)
class Received:
    """One request as it arrived, before any decoding."""

    path: str
    headers: dict[str, str]
    body: bytes


def fixed(status: int, **headers: str) -> Script:
    """A script that always answers ``status`` with ``headers``."""
    return lambda envelope: Reply(status, dict(headers))


class Gate:
    """Holds one request's reply until the test releases it: a handshake, not a pause.

    ``arrived`` is set once the request is read (so its sender is mid-pass and
    holds the upload lock); the reply waits for ``release()``. Give the client a
    read timeout longer than the test needs (``read_timeout_s``): the hold is
    bounded by that, never by a guess at how long another process takes to start.
    """

    def __init__(self, request_number: int = 1) -> None:
        self.request_number = request_number
        self.arrived = threading.Event()
        self._released = threading.Event()

    def wait_arrived(self, timeout: float = 60.0) -> None:
        # The timeout is a hang guard only.
        assert self.arrived.wait(timeout), "the held request never arrived"

    def release(self) -> None:
        self._released.set()

    def _hold(self) -> None:
        self.arrived.set()
        self._released.wait(120)  # hang guard: a test that forgets to release still ends


class _CountingServer(ThreadingHTTPServer):
    """Records the peer of every TCP connection it accepts (even one that never sends)."""

    daemon_threads = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.peers: list[tuple[str, int]] = []
        super().__init__(*args, **kw)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, peer = super().get_request()
        self.peers.append(peer)  # list.append is atomic: read from the test thread
        return conn, peer


class ScriptedServer:
    """A threaded HTTP server on loopback; records every envelope it decoded.

    Ready protocol: the socket is bound and listening when the constructor
    returns, so a client started after ``__enter__`` can always connect (the
    kernel queues it until the serving thread accepts). ``__exit__`` stops it.
    """

    def __init__(
        self,
        script: Script = lambda envelope: Reply(),
        tls: ssl.SSLContext | None = None,
        gate: Gate | None = None,
        path: str = "/v1/events",
        relay: Relay | None = None,
    ) -> None:
        self.script = script
        self.gate = gate
        self.relay = relay
        self.requests = 0
        # Every request's raw bytes (any encoding: json, otlp, otlp-proto).
        self.received: list[Received] = []
        self.envelopes: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                with outer.lock:
                    outer.requests += 1
                    number = outer.requests
                length = int(self.headers.get("Content-Length", "0"))
                if outer._wants_reset():
                    self.rfile.read(min(length, 100))
                    # SO_LINGER 0: close() sends RST instead of FIN.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    self.close_connection = True
                    return
                raw = self.rfile.read(length)
                headers = dict(self.headers.items())
                with outer.lock:
                    outer.received.append(Received(self.path, headers, raw))
                if outer.gate is not None and outer.gate.request_number == number:
                    outer.gate._hold()
                if outer.relay is not None:
                    status, data = outer.relay(raw, headers)
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                envelope = json.loads(gzip.decompress(raw))
                reply = outer.script(envelope)
                if 200 <= reply.status < 300:
                    with outer.lock:
                        outer.envelopes.append(envelope)
                if reply.drip_s:
                    head = f"HTTP/1.1 {reply.status} OK\r\nContent-Length: 2\r\n\r\n{{}}"
                    try:
                        for ch in head.encode():
                            self.wfile.write(bytes([ch]))
                            self.wfile.flush()
                            time.sleep(reply.drip_s)  # the dripping reply is the fault staged
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = _CountingServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}{path}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        # This many next requests get their connection reset in the middle of the body.
        self.reset_next = 0

    def _wants_reset(self) -> bool:
        with self.lock:
            if self.reset_next > 0:
                self.reset_next -= 1
                return True
        return False

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (see ``settled_connections``)."""
        return len(self.httpd.peers)

    def settled_connections(self) -> int:
        """Connections accepted from others, counted only once the backlog is drained.

        A handshake instead of a sleep: the kernel queues completed connections
        in FIFO order, so once our own sentinel connection has been accepted,
        every connection made before it (by a process that has already exited,
        say) has been accepted and counted too.
        """
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as probe:
            me = probe.getsockname()
            wait_for(lambda: me in self.httpd.peers)
        return len(self.httpd.peers) - 1

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event of every accepted envelope, in arrival order."""
        with self.lock:
            return [e for env in self.envelopes for e in env["events"]]

    @property
    def event_ids(self) -> list[str]:
        with self.lock:
            return [e["id"] for env in self.envelopes for e in env["events"]]

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Blackhole:
    """Accepts TCP connections (the kernel completes the handshake) and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/events"

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def wait_for(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll until ``predicate()`` is true; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the hang guard")
        time.sleep(0.02)  # the poll interval of a bounded wait on a condition


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def collector(db: Path, *extra: str) -> Iterator[Collector]:
    """Run scripts/collector.py as a real subprocess on a free loopback port."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "scripts" / "collector.py"),
            "--port",
            "0",
            "--db",
            str(db),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    handle: Collector | None = None
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.match(r"listening on (http://[\d.]+:\d+)", first)
        assert match, (
            f"collector did not start: {first!r} {proc.stderr.read() if proc.stderr else ''}"
        )
        handle = Collector(match.group(1), proc)
        yield handle
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        if handle is not None:
            handle.final_output = out


_CONTENT_HEADERS = ("content-type", "content-encoding")


@dataclass
class Collector:
    base: str
    proc: subprocess.Popen[str]
    final_output: str = ""  # what it printed after SIGTERM (the counts)

    @property
    def url(self) -> str:
        return self.base + "/v1/events"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.base + "/stats", timeout=10) as resp:
            return dict(json.loads(resp.read()))

    def relay(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """A ScriptedServer relay: forward the body (and its content headers) here."""
        keep = {k: v for k, v in headers.items() if k.lower() in _CONTENT_HEADERS}
        status, reply = self.post(body, keep)
        return status, json.dumps(reply).encode()

    def post(
        self, body: bytes, headers: dict[str, str], path: str = "/v1/events"
    ) -> tuple[int, Any]:
        req = urllib.request.Request(self.base + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


# -- spool helpers ---------------------------------------------------------------------------
def fill(state_dir: Path, n: int, endpoint: str | None, **policy: Any) -> None:
    """Queue ``n`` valid reference-schema events, then point the spool at ``endpoint``.

    Events are written by a real ``Telemetry`` without an endpoint (so its exit
    trigger does not start an uploader behind the test's back); the endpoint
    and policy go into the meta table exactly as a host with one would write them.
    """
    from spool import Telemetry

    t = Telemetry(app="demo", version="1.0.0", state_dir=state_dir, allow_in_ci=True, **policy)
    # The schema's lifecycle events (first_run, sdk_initialized) count towards n.
    already = int(t.status()["queued"])
    commands = ("eval", "dashboard", "telemetry", "other")
    for i in range(n - already):
        t.track("cli_command", cli_command=commands[i % 4])
    t.close()
    assert queued(state_dir) == n, "fill(n) must queue exactly n events"
    set_endpoint(state_dir, endpoint)


def set_endpoint(state_dir: Path, endpoint: str | None) -> None:
    """Point an existing spool at another endpoint, as a host's config write would."""
    from spool._policy import Policy
    from spool.store._store import Spool

    s = Spool(state_dir, Policy())
    try:
        config = s.get_meta("config")
        config["endpoint"] = endpoint
        s.set_meta("config", config)
    finally:
        s.close()


def queued(state_dir: Path) -> int:
    from spool._policy import Policy
    from spool.store._store import Spool

    s = Spool(state_dir, Policy())
    try:
        return s.queued()[0]
    finally:
        s.close()


def meta(state_dir: Path, key: str) -> Any:
    from spool._policy import Policy
    from spool.store._store import Spool

    s = Spool(state_dir, Policy())
    try:
        return s.get_meta(key)
    finally:
        s.close()


def drops(state_dir: Path) -> dict[str, int]:
    from spool._policy import Policy
    from spool.store._store import Spool

    s = Spool(state_dir, Policy())
    try:
        return s.drops()
    finally:
        s.close()


class Uploader:
    """A running ``python -m uploader --progress`` process (see ``start_uploader``)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def done(self, timeout: float = 60) -> dict[str, Any]:
        """Wait for the process to end; its last progress line, which must be ``done``."""
        out, err = self.proc.communicate(timeout=timeout)
        lines = [json.loads(line) for line in out.splitlines() if line.strip()]
        assert lines and lines[-1]["type"] == "done", (out, err)
        return dict(lines[-1])

    def kill(self) -> int:
        """SIGKILL it (if it still runs) and reap it; its return code."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)
        return self.proc.returncode

    def __enter__(self) -> Uploader:
        return self

    def __exit__(self, *exc: object) -> None:
        # A failing test must not leave an uploader behind (one may be paused for minutes).
        if self.proc.poll() is None:
            self.kill()


def start_uploader(
    state_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    progress: bool = True,
    capture: bool = True,
) -> Uploader:
    """Start the real uploader child on ``state_dir``; the one way tests run it.

    ``env`` defaults to ``host_env()``. ``progress`` adds ``--progress`` so
    ``done()`` can read the result line. ``capture=False`` sends its output to
    /dev/null, for a caller that never reads it (a full pipe would stall the child).
    """
    argv = [sys.executable, "-m", "uploader", "--state-dir", str(state_dir)]
    argv += ["--progress", *args] if progress else list(args)
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    proc = subprocess.Popen(
        argv,
        stdout=out,
        stderr=out,
        text=True,
        env=env if env is not None else host_env(),
    )
    return Uploader(proc)


def run_uploader(
    state_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> dict[str, Any]:
    """Run ``python -m uploader --progress`` to completion; returns its done line."""
    with start_uploader(state_dir, *args, env=env) as uploader:
        return uploader.done(timeout)
