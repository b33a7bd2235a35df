#!/usr/bin/env python3
"""Drain benchmark: the real uploader draining a spool into a loopback sink.

    python scripts/bench_drain.py [--quick]

- throughput: 100,000 queued events, ``python -m uploader`` in a child, into
  a minimal keep-alive HTTP sink in another process (so the sink does not share
  the uploader's core or GIL). Counted from the uploader's first progress line
  (start-up excluded; reported separately) to its done line: read, encode, gzip,
  POST, ack-DELETE, and the final space reclaim, all included.
- peak RSS of the uploader process (``ru_maxrss``) with 10,000 and 100,000
  queued: batches are streamed, so it should not grow with the backlog.

``run(quick)`` returns a dict for scripts/bench.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["run"]

# The event scripts/bench.py tracks (call_started with four enum props), so the
# drain figure and the track() figure describe the same events.
_NAME = "call_started"
_PROPS = json.dumps(
    {"engine": "pipeline", "provider": "other", "carrier": "twilio", "direction": "inbound"},
    separators=(",", ":"),
)


# -- the sink (runs in its own process) --------------------------------------------------------
def _serve(conn: socket.socket) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(262144)
                if not chunk:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buf) < length:
                chunk = conn.recv(262144)
                if not chunk:
                    return
                buf += chunk
            buf = buf[length:]
            conn.sendall(reply)
    finally:
        conn.close()


def sink_main() -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    print(srv.getsockname()[1], flush=True)
    while True:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve, args=(conn,), daemon=True).start()


# -- the measurement ---------------------------------------------------------------------------
def _prefill(state_dir: Path, n: int, endpoint: str) -> None:
    from spool import Schema
    from spool._policy import Policy
    from spool._protocol import CONFIG_KEY, UploaderConfig
    from spool.install._ids import new_event_id, new_run_id
    from spool.store._paths import ensure_state_dir
    from spool.store._rows import Row, iso_time
    from spool.store._store import Spool

    ensure_state_dir(state_dir)
    policy = Policy(max_bytes=256 * 1024 * 1024)  # the bench measures draining, not eviction
    spool = Spool(state_dir, policy)
    schema = Schema.reference()
    run_id = new_run_id()
    now = time.time()
    size = len(_NAME) + len(_PROPS)
    for start in range(0, n, 10_000):
        rows = [
            Row(new_event_id(), _NAME, iso_time(now), run_id, _PROPS, size)
            for _ in range(min(10_000, n - start))
        ]
        spool.append(rows)
    config = UploaderConfig(
        app="bench",
        env_prefix=None,
        app_version="1.0.0",
        endpoint=endpoint,
        format="json",
        schema_name=schema.name,
        schema_version=schema.version,
        schema_hash=schema.hash,
        policy=Policy(),
    )
    spool.set_meta(CONFIG_KEY, config.to_row())
    spool.close()


_CHILD = (
    "import json, resource, sys\n"
    "from uploader._cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "print(json.dumps({'type': 'rss', 'maxrss_kb': kb}), flush=True)\n"
    "sys.exit(rc)\n"
)


def _drain_once(n: int, port: int) -> dict[str, Any]:
    from spool._protocol import UploaderArgs

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        _prefill(state, n, f"http://127.0.0.1:{port}/v1/events")
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, *UploaderArgs(state, 600.0, progress=True).to_argv()],
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp,
        )
        assert proc.stdout is not None
        first = done = None
        lines = []
        for raw in proc.stdout:
            line = json.loads(raw)
            lines.append(line)
            if line["type"] == "progress" and first is None:
                first = time.perf_counter()
            if line["type"] == "done":
                done = time.perf_counter()
        proc.wait()
        t_end = time.perf_counter()
        final = next(x for x in lines if x["type"] == "done")
        rss = next(x for x in lines if x["type"] == "rss")
        assert final["outcome"] == "empty" and final["sent"] == n, final
        assert first is not None and done is not None
        return {
            "events": n,
            "drain_s": done - first,
            "events_per_s": n / (done - first),
            "wall_s_including_startup": t_end - t0,
            "peak_rss_mib": rss["maxrss_kb"] / 1024.0,
            "db_bytes_after": os.path.getsize(state / "spool.db"),
        }


def run(quick: bool = False) -> dict[str, Any]:
    sink = subprocess.Popen([sys.executable, __file__, "--sink"], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        port = int(sink.stdout.readline())
        big = 100_000
        throughput = [_drain_once(big, port) for _ in range(1 if quick else 3)]
        best = max(throughput, key=lambda r: r["events_per_s"])
        small = _drain_once(10_000, port)
        return {
            "events": big,
            "events_per_s": round(best["events_per_s"]),
            "runs_events_per_s": [round(r["events_per_s"]) for r in throughput],
            "drain_s": round(best["drain_s"], 3),
            "wall_s_including_startup": round(best["wall_s_including_startup"], 3),
            "peak_rss_mib_10k": round(small["peak_rss_mib"], 1),
            "peak_rss_mib_100k": round(best["peak_rss_mib"], 1),
        }
    finally:
        sink.kill()
        sink.wait()


if __name__ == "__main__":
    if "--sink" in sys.argv:
        sink_main()
    else:
        print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
