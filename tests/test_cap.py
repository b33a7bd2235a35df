"""The disk cap and the age limit: bounded bytes, oldest first, every loss counted."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from spool import Telemetry
from spool._policy import Policy
from spool.store._rows import Row, iso_time
from spool.store._store import Spool
from spool.store._writer import Writer

CAP = 512 * 1024


def _disk(state_dir: Path) -> int:
    total = 0
    for name in ("spool.db", "spool.db-wal"):
        try:
            total += os.stat(state_dir / name).st_size
        except FileNotFoundError:
            pass
    return total


def trace_writer(writer: Writer, callback: Callable[[str], object] | None) -> None:
    """Set or clear the writer connection's trace callback under the writer's lock.

    Set from this thread while the helper thread is inside SQLite, it deadlocks
    (seen on 3.13 as a CI run hung for an hour): the helper's statement calls the
    callback, which waits for the GIL this thread holds while it waits for the
    connection's mutex. Under the writer's lock the helper is never on this
    connection (its own connection it uses under its busy lock only).
    """

    def install(spool: Spool) -> bool:
        spool.conn.set_trace_callback(callback)
        return True

    assert writer.run_locked(install, wait_ms=10_000)


def test_database_plus_wal_never_exceed_the_cap_under_a_flood(state_dir: Path) -> None:
    worst = 0
    with Telemetry(
        "demo", "1.0.0", state_dir=state_dir, max_bytes=CAP, size_check_bytes=16 * 1024
    ) as t:
        for i in range(30_000):
            t.track("cli_command", cli_command="eval")
            if i % 100 == 0:
                worst = max(worst, _disk(state_dir))
        status = t.status()
    assert worst <= CAP, f"disk reached {worst} bytes with a cap of {CAP}"
    assert status["dropped"]["evicted"] > 0
    db = sqlite3.connect(state_dir / "spool.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # Read after close: the helper thread may still have been evicting at status().
    kept = db.execute("SELECT count(*) FROM events").fetchone()[0]
    drops = dict(db.execute("SELECT reason, total FROM drops").fetchall())
    # Nothing vanished silently: every event is queued, evicted (oldest first,
    # by the helper) or counted "cap" (newest, while the helper caught up).
    assert kept + drops["evicted"] + drops.get("cap", 0) >= 30_000


def test_eviction_removes_the_oldest_events_first(state_dir: Path) -> None:
    with Telemetry(
        "demo", "1.0.0", state_dir=state_dir, max_bytes=CAP, size_check_bytes=16 * 1024
    ) as t:
        for _ in range(10_000):
            t.track("cli_command", cli_command="eval")
        t.track("cli_command", cli_command="dashboard")
    db = sqlite3.connect(state_dir / "spool.db")
    last = db.execute("SELECT props FROM events ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert '"dashboard"' in last
    ids = [r[0] for r in db.execute("SELECT id FROM events ORDER BY id")]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "survivors are one contiguous tail"


def test_space_returns_to_the_os_after_the_queue_is_emptied(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    spool = Spool(state_dir, Policy())
    rows = [
        Row(f"{i:036d}", "cli_command", iso_time(time.time()), "r" * 36, '{"x":1}', 20)
        for i in range(20_000)
    ]
    spool.append(rows)
    spool.reclaim()
    full = _disk(state_dir)
    spool.clear()
    empty = _disk(state_dir)
    spool.close()
    assert empty < full / 4, (full, empty)


def test_events_older_than_max_age_expire_and_are_counted(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    spool = Spool(state_dir, Policy())
    old = iso_time(time.time() - 40 * 86400)
    spool.append([Row(f"{i:036d}", "cli_command", old, "r" * 36, "{}", 10) for i in range(5)])
    spool.close()
    # The next host start notices the oldest row is too old and expires it.
    with Telemetry("demo", "1.0.0", state_dir=state_dir, max_age_days=30) as t:
        t.track("cli_command", cli_command="eval")
        status = t.status()
    assert status["dropped"]["expired"] == 5
    assert status["queued"] >= 1


def test_an_oversized_event_is_refused_and_counted(state_dir: Path) -> None:
    with Telemetry("demo", "1.0.0", state_dir=state_dir, max_event_bytes=16) as t:
        t.track("cli_command", cli_command="eval")
        status = t.status()
    assert status["dropped"].get("too_large", 0) >= 1


def test_a_flood_at_the_cap_checkpoints_the_wal_under_the_writers_lock_only_when_pinned(
    state_dir: Path,
) -> None:
    # Through a flood the file keeps the pages eviction freed, so file + WAL
    # stays past high water: eviction must be asked on the pages in use. Asked
    # on file + WAL, the helper found nothing to evict every few dozen events
    # and ran a TRUNCATE checkpoint (fsyncs) under the lock the appends wait on.
    with Telemetry("demo", "1.0.0", state_dir=state_dir, max_bytes=CAP) as t:
        writer = t._writer
        assert writer is not None and writer.spool is not None
        on_writer: list[str] = []
        trace_writer(writer, on_writer.append)  # appends and the helper's slices alike
        for _ in range(6_000):  # about 3x what the cap holds; no reader pins the WAL
            t.track("cli_command", cli_command="dashboard")
        trace_writer(writer, None)
        evicted = t.status()["dropped"].get("evicted", 0)
    assert evicted > 0
    truncates = [s for s in on_writer if "wal_checkpoint(TRUNCATE)" in s.replace(" ", "")]
    assert not truncates, f"{len(truncates)} TRUNCATE checkpoints on the writer's connection"


def test_an_eviction_slice_sees_the_wal_restart_even_when_its_size_does_not_shrink(
    state_dir: Path,
) -> None:
    # Near the cap with a short WAL (under journal_size_limit), the checkpoint
    # before a slice lets the slice's commit restart the WAL, but the file
    # keeps its length, or grows to the slice's frames. Judged by size, that
    # restart looked like none, and no more checkpoints ran in the pass: the
    # slices then grew the WAL to its hard share plus one slice at the cap.
    from spool.store._steps import evict_slice_in_share

    state_dir.mkdir(mode=0o700)
    spool = Spool(state_dir, Policy(max_bytes=CAP))
    now = iso_time(time.time())
    i = 0
    while spool.disk_bytes() < CAP - 100_000:
        spool.append(
            [Row(f"{i + k:036d}", "cli_command", now, "r" * 36, '{"x":1}', 20) for k in range(500)]
        )
        i += 500
        assert spool.truncate_wal()
    spool.append([Row(f"{i:036d}", "cli_command", now, "r" * 36, '{"x":1}', 20)])
    salt, wal = spool.wal_salt(), spool.wal_bytes()
    assert 0 < wal < spool.wal_budget
    # [the WAL bytes of the largest slice so far, may checkpoint]: one such
    # slice more would take file + WAL past the cap, the WAL far from its share.
    share = [max(60_000, CAP + 1 - spool.disk_bytes()), 1]
    assert spool.wal_bytes() + share[0] <= spool.wal_hard
    assert evict_slice_in_share(spool, share) > 0
    restarted = spool.wal_salt() != salt
    spool.close()
    assert restarted, "the PASSIVE checkpoint before the slice let its commit restart the WAL"
    assert share[1] == 1, "a restarted WAL was judged unrestarted: no more checkpoints this pass"
