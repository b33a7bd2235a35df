"""The whole local-first promise, step by step, on loopback only.

Run through ``scripts/demo`` (which sets up .venv). Each step prints what it
does and what it saw; the run fails loudly if any promise does not hold.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TELESPOOL = str(Path(PY).with_name("telespool"))


def env() -> dict[str, str]:
    # The demo host must be "on": clear CI/opt-out variables a shell may carry.
    e = {k: v for k, v in os.environ.items() if k not in ("CI", "DO_NOT_TRACK")}
    e = {k: v for k, v in e.items() if not k.startswith("DEMO_TELEMETRY_")}
    e["DEMO_TELEMETRY_ALLOW_CI"] = "1"
    e["PYTHONPATH"] = str(ROOT)
    return e


def step(n: int, text: str) -> None:
    print(f"\n=== {n}. {text}", flush=True)


def show(cmd: list[str], **kw: Any) -> str:
    shown = " ".join(a if " " not in a else repr(a) for a in cmd)
    print(f"$ {shown.replace(str(ROOT) + '/', '')}", flush=True)
    out = subprocess.run(cmd, env=env(), capture_output=True, text=True, check=True, **kw).stdout
    print(out.rstrip(), flush=True)
    return out


def host(state: Path, endpoint: str) -> dict[str, Any]:
    out = show(
        [
            PY,
            str(ROOT / "scripts" / "demo_host.py"),
            "--state-dir",
            str(state),
            "--endpoint",
            endpoint,
        ]
    )
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def queued(state: Path) -> int:
    db = sqlite3.connect(f"file:{state / 'spool.db'}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        db.close()


def stats(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/stats", timeout=5) as r:
        result: dict[str, Any] = json.load(r)
        return result


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo failed: timed out waiting for {what}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="telespool-demo-"))
    state = work / "state"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    endpoint = f"{base}/v1/events"
    collector: subprocess.Popen[str] | None = None
    try:
        step(1, f"Offline: the host runs twice while nothing listens on {endpoint}")
        for _ in range(2):
            host(state, endpoint)
        n_queued = queued(state)
        print(f"-> {n_queued} events queued locally; the host never waited on the network")

        step(2, "The queue is plain SQLite: inspect it with telespool and with sqlite3")
        show([TELESPOOL, "--app", "demo", "--state-dir", str(state), "status"])
        show([TELESPOOL, "--app", "demo", "--state-dir", str(state), "inspect", "--limit", "6"])
        query = "SELECT name, time, props FROM events WHERE name = 'call_completed' LIMIT 2"
        if shutil.which("sqlite3"):
            show(["sqlite3", str(state / "spool.db"), query])

        step(3, "The collector comes up (reference collector, its own SQLite)")
        collector = subprocess.Popen(
            [
                PY,
                str(ROOT / "scripts" / "collector.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--db",
                str(work / "collector.db"),
            ],
            env=env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert collector.stdout is not None
        print(collector.stdout.readline().rstrip())

        step(
            4,
            "A crash at the worst moment: the uploader is SIGKILLed after the "
            "collector accepted a batch, before it deleted the rows",
        )
        crash_env = env() | {"TELESPOOL_TEST_PAUSE_AFTER_POST": "30"}
        victim = subprocess.Popen(
            [PY, "-m", "uploader", "--state-dir", str(state), "--force"],
            env=crash_env,
            stdout=subprocess.DEVNULL,
        )
        wait_for(lambda: stats(base)["events"] > 0, 30, "the first accepted batch")
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        print(
            f"-> collector stored {stats(base)['events']} events; the spool still holds "
            f"{queued(state)} (nothing was deleted before the kill)"
        )

        step(5, "The next host start triggers the detached uploader; it drains the queue")
        time.sleep(2.2)  # the demo host's backoff (2 s max) from the offline runs expires
        host(state, endpoint)
        wait_for(lambda: queued(state) == 0, 60, "the spool to drain")
        final = stats(base)
        print(
            f"-> spool empty. collector: {final['events']} events stored exactly once, "
            f"{final['duplicates']} re-sent duplicates removed, {final['batches']} batches, "
            f"drops reported by clients: {final['dropped_reported']}"
        )
        if final["events"] < n_queued:
            raise SystemExit(f"demo failed: expected at least {n_queued} events, got {final}")

        step(6, "The user opts out: telespool disable purges everything")
        show([TELESPOOL, "--app", "demo", "--state-dir", str(state), "disable"])
        print(f"-> state dir now holds: {sorted(os.listdir(state))}")
        before = stats(base)["events"]
        host(state, endpoint)
        time.sleep(1.0)
        left = sorted(os.listdir(state))
        print(
            f"-> after another host run: state dir holds {left}; "
            f"collector events {before} -> {stats(base)['events']}"
        )
        if left != ["disabled"] or stats(base)["events"] != before:
            raise SystemExit("demo failed: an opted-out host left files or sent events")
    finally:
        if collector is not None:
            collector.send_signal(signal.SIGTERM)
            out, _ = collector.communicate(timeout=10)
            if out.strip():
                print(f"collector final counts: {out.strip().splitlines()[-1]}")
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ndemo finished in {time.monotonic() - started:.1f} s; all promises held.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
