"""Crash torture: appenders and uploaders SIGKILLed at random, nothing lost or doubled.

Real processes throughout: several host processes append reference events to
one spool, uploader passes (``python -m uploader --force``) drain it into the
reference collector (a subprocess), and the test SIGKILLs appenders and
uploaders at random moments, restarting them each time.

An appender reports an event id only after ``track()`` returned *and* the row
is in SQLite (``track()`` may park a row in its bounded memory buffer while an
uploader holds the write lock; a SIGKILL loses what is parked, so such ids are
reported separately and counted, never claimed as durable). The id is taken
from the host's own ``spool.install._ids.new_event_id``, wrapped inside the appender
process to record what it returned: the spool and SQLite are untouched.

Afterwards every durable id is in the collector (exactly once: its events
table is keyed by the id, and every re-sent copy shows up in its duplicate
count) or still in the spool; ``PRAGMA integrity_check`` is ok; and one clean
uploader pass drains everything, so no row is stuck.

Bounded in CI (``TORTURE_S`` seconds); ``pytest --long`` or
``TELESPOOL_TORTURE_SECONDS=N`` runs it longer.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from spool._policy import Policy
from spool.store._store import Spool
from spool.store._upload_state import format_time, update_upload_state
from tests.hosts import host_env
from tests.servers import collector, queued, run_uploader, start_uploader
from uploader._drain import PAUSE_AFTER_POST_ENV

TORTURE_S = 20.0
LONG_S = 600.0
APPENDERS = 3

# One appender: tracks forever, writing "<uuid> d" once the row is durable and
# "<uuid> b" while it is parked in the memory buffer.
APPENDER = """
import os, random, sys, time
from spool import Telemetry
from spool.install import _ids

state_dir, ids_path, seed, endpoint = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rng = random.Random(seed)
t = Telemetry("demo", "1.0.0", state_dir=state_dir, endpoint=endpoint,
              trigger_interval_s=1e9, batch_events=100, max_bytes=64 * 1024 * 1024)
made = []
real_new_event_id = _ids.new_event_id

def recording_new_event_id():
    u = real_new_event_id()
    made.append(u)
    return u

_ids.new_event_id = recording_new_event_id
fd = os.open(ids_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
writer = t._writer
pending = []
commands = ("eval", "dashboard", "telemetry", "other")
print("ready", flush=True)
while True:
    bad = sum(n for r, n in writer.errors.items() if r != "locked")
    t.track("cli_command", command=rng.choice(commands))
    pending.append(made.pop())
    if sum(n for r, n in writer.errors.items() if r != "locked") != bad:
        pending.clear()  # a fault dropped rows (counted): claim nothing for them
    elif writer.buffered == 0:
        os.write(fd, "".join(u + " d\\n" for u in pending).encode())
        pending.clear()
    else:
        os.write(fd, (pending[-1] + " b\\n").encode())
    time.sleep(0.001)  # paces the appender so kills land mid-write; no absence proof
"""

_LINE = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) ([db])")


@dataclass
class Tally:
    appender_kills: int = 0
    uploader_kills: int = 0
    uploader_passes: Counter[int] = field(default_factory=Counter)  # by exit status
    appender_starts: int = 0
    appender_exits: int = 0  # appenders that ended without our SIGKILL


def _torture_seconds(request: pytest.FixtureRequest) -> float:
    env = os.environ.get("TELESPOOL_TORTURE_SECONDS")
    if env:
        return float(env)
    return LONG_S if request.config.getoption("--long") else TORTURE_S


def _kill(proc: subprocess.Popen[Any]) -> bool:
    """SIGKILL ``proc`` if it still runs; True if the signal is what ended it."""
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return proc.returncode == -signal.SIGKILL


def _read_ids(paths: list[Path]) -> tuple[set[str], set[str]]:
    """(durable ids, ids only ever reported as buffered in memory)."""
    durable: set[str] = set()
    buffered: set[str] = set()
    for path in paths:
        if not path.exists():
            continue
        for match in _LINE.finditer(path.read_text()):
            (durable if match.group(2) == "d" else buffered).add(match.group(1))
    return durable, buffered - durable


def _uuids(db: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return {row[0] for row in conn.execute("SELECT uuid FROM events")}
    finally:
        conn.close()


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_random_sigkills_lose_nothing_and_duplicate_nothing(
    tmp_path: Path, state_dir: Path, request: pytest.FixtureRequest
) -> None:
    seconds = _torture_seconds(request)
    seed = int(os.environ.get("TELESPOOL_TORTURE_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    logs = tmp_path / "logs"
    logs.mkdir()
    id_files: list[Path] = []
    tally = Tally()
    env = host_env()

    with collector(tmp_path / "collector.db") as c:
        # The spool exists before the appenders; a recent last_spawn_at (with a
        # huge trigger interval) keeps every appender from starting its own
        # detached uploader: the test owns all uploader passes, so it can kill them.
        state_dir.mkdir(mode=0o700)
        spool = Spool(state_dir, Policy())
        update_upload_state(spool, {"last_spawn_at": format_time(time.time())})
        spool.close()

        def start_appender() -> subprocess.Popen[bytes]:
            tally.appender_starts += 1
            ids = logs / f"ids-{tally.appender_starts}.txt"
            id_files.append(ids)
            err = open(logs / f"appender-{tally.appender_starts}.err", "wb")  # noqa: SIM115
            with err:
                args = [str(state_dir), str(ids), str(rng.randrange(2**32)), c.url]
                return subprocess.Popen(
                    [sys.executable, "-c", APPENDER, *args],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )

        def start_pass() -> subprocess.Popen[str]:
            extra = {}
            if rng.random() < 0.3:
                # Widen the gap between "server accepted" and "rows deleted".
                extra[PAUSE_AFTER_POST_ENV] = f"{rng.uniform(0.05, 0.5):.3f}"
            env = host_env(**extra)
            args = ("--force", "--budget", "3")
            return start_uploader(state_dir, *args, env=env, progress=False, capture=False).proc

        appenders = [start_appender() for _ in range(APPENDERS)]
        uploader: subprocess.Popen[str] | None = None
        uploader_kill_at: float | None = None
        next_appender_kill = time.monotonic() + rng.uniform(0.2, 0.8)
        started = time.monotonic()
        deadline = started + seconds
        while time.monotonic() < deadline:
            now = time.monotonic()
            if uploader is None or uploader.poll() is not None:
                if uploader is not None:
                    tally.uploader_passes[uploader.returncode] += 1
                uploader = start_pass()
                # Most passes die at a random moment; some run to their end.
                uploader_kill_at = now + rng.uniform(0.02, 0.8) if rng.random() < 0.8 else None
            elif uploader_kill_at is not None and now >= uploader_kill_at:
                if _kill(uploader):
                    tally.uploader_kills += 1
                uploader = None
            if now >= next_appender_kill:
                i = rng.randrange(len(appenders))
                if _kill(appenders[i]):
                    tally.appender_kills += 1
                else:  # it exited by itself: a crash, shown by the assertion below
                    tally.appender_exits += 1
                appenders[i] = start_appender()
                next_appender_kill = now + rng.uniform(0.1, 0.8)
            time.sleep(0.01)  # the chaos loop's tick (kill/restart schedule); no absence proof

        # The end: every appender dies by SIGKILL too; the last uploader finishes.
        for proc in appenders:
            if _kill(proc):
                tally.appender_kills += 1
        if uploader is not None:
            uploader.wait(timeout=120)
            tally.uploader_passes[uploader.returncode] += 1
        torture_s = time.monotonic() - started

        durable, only_buffered = _read_ids(id_files)
        spool_db = state_dir / "spool.db"
        assert _integrity(spool_db) == "ok"
        in_collector = _uuids(tmp_path / "collector.db")
        in_spool = _uuids(spool_db)
        lost = durable - in_collector - in_spool
        assert not lost, f"{len(lost)} durable events neither delivered nor queued (seed {seed})"
        queued_before_final = queued(state_dir)

        # One clean pass (two if the first ran out of budget) drains everything.
        done = run_uploader(state_dir, "--force", timeout=300)
        if done["outcome"] == "budget":
            done = run_uploader(state_dir, "--force", timeout=300)
        assert done["outcome"] == "empty", done
        assert queued(state_dir) == 0, "a row is stuck in the spool"
        assert _integrity(spool_db) == "ok"
        in_collector = _uuids(tmp_path / "collector.db")
        stats = c.stats()

    assert durable <= in_collector, f"seed {seed}"
    assert _integrity(tmp_path / "collector.db") == "ok"
    # Exactly once: one row per id (the key), and every copy beyond it was counted.
    assert stats["events"] == len(in_collector)
    assert tally.appender_exits == 0
    for err in logs.glob("appender-*.err"):
        assert "Traceback" not in err.read_text(), err.read_text()
    report = (
        f"torture: {torture_s:.1f}s seed={seed}: survived {tally.appender_kills} appender "
        f"and {tally.uploader_kills} uploader SIGKILLs "
        f"({tally.appender_kills + tally.uploader_kills} kills; "
        f"{tally.appender_starts} appender processes, uploader pass exits "
        f"{dict(tally.uploader_passes)}); {len(durable)} durable events checked, all "
        f"delivered exactly once ({stats['duplicates']} re-sent copies deduplicated, "
        f"{queued_before_final} still queued before the final pass); "
        f"{len(only_buffered)} ids were still in a killed appender's memory buffer"
    )
    print(report)
    (tmp_path.parent / "torture-report.txt").write_text(report + "\n")
