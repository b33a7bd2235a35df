"""Acks delete exactly the delivered rows, even when ids were reused meanwhile."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from spool._policy import Policy
from spool.store._clear import clear_state_dir, purge_state_dir
from spool.store._rows import Row, iso_time
from spool.store._store import Spool
from tests.hosts import run_host
from tests.loopback import clean_env, telespool
from tests.servers import fill


def _rows(prefix: str, n: int) -> list[Row]:
    now = iso_time(time.time())
    return [Row(f"{prefix}-{i:030d}", "cli_command", now, "r" * 36, "{}", 10) for i in range(n)]


def test_ack_after_a_purge_never_deletes_newer_rows_that_reused_the_ids(tmp_path: Path) -> None:
    spool = Spool(tmp_path, Policy())
    spool.append(_rows("old", 5))
    epoch = spool.epoch()
    batch = spool.read_batch(0, 100, 1 << 20)
    # While the batch is in flight the user purges and the host appends again:
    # without AUTOINCREMENT the new rows take the same ids 1..5.
    spool.clear()
    spool.append(_rows("new", 5))
    assert [e.id for e in spool.read_batch(0, 100, 1 << 20)] == [e.id for e in batch]
    deleted = spool.ack(batch[0].id, batch[-1].id, uuids=[e.uuid for e in batch], epoch=epoch)
    assert deleted == 0
    assert spool.queued()[0] == 5
    spool.close()


def test_ack_with_an_unchanged_epoch_deletes_the_whole_range(tmp_path: Path) -> None:
    spool = Spool(tmp_path, Policy())
    spool.append(_rows("a", 10))
    epoch = spool.epoch()
    batch = spool.read_batch(0, 4, 1 << 20)
    spool.append(_rows("b", 3))
    deleted = spool.ack(batch[0].id, batch[-1].id, uuids=[e.uuid for e in batch], epoch=epoch)
    assert deleted == 4
    assert spool.queued()[0] == 9
    spool.close()


def test_eviction_and_expiry_bump_the_epoch(tmp_path: Path) -> None:
    spool = Spool(tmp_path, Policy())
    spool.append(_rows("a", 3))
    e0 = spool.epoch()
    spool.expire(max_age_s=-60)  # everything is "older" than a minute in the future
    assert spool.epoch() == e0 + 1
    spool.close()


# -- purge during an upload (REVIEW C-3): one clear path, the epoch bumped ---------------------
def _uuids(state_dir: Path) -> set[str]:
    spool = Spool(state_dir, Policy())
    try:
        return {e.uuid for e in spool.read_batch(0, 10_000, 1 << 30)}
    finally:
        spool.close()


@pytest.mark.parametrize("how", ["telespool purge", "Telemetry.purge"])
def test_a_purge_during_an_upload_never_lets_its_ack_delete_events_added_later(
    tmp_path: Path, how: str
) -> None:
    state_dir = tmp_path / "state"
    fill(state_dir, 5, None)
    # 1. The uploader (its own Spool, as uploader/_drain.py uses it) reads the
    #    epoch and a batch, and POSTs it.
    uploader = Spool(state_dir, Policy())
    epoch = uploader.epoch()
    wire = uploader.read_wire_batch(0, 500, 1 << 20)
    assert wire is not None and len(wire.uuids) == 5
    # 2. While the POST is in flight, the user purges.
    if how == "telespool purge":
        proc = telespool(
            "--app",
            "demo",
            "--state-dir",
            str(state_dir),
            "purge",
            "--json",
            env=clean_env(tmp_path),
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["cleared_events"] == 5
    else:
        run_host(
            """
            import sys
            from spool import Telemetry
            Telemetry("demo", "1.0.0", state_dir=sys.argv[1]).purge()
            """,
            str(state_dir),
        )
    # 3. A new host run tracks 5 events: without AUTOINCREMENT they reuse ids 1..5.
    run_host(
        """
        import sys
        from spool import Telemetry
        with Telemetry("demo", "1.0.0", state_dir=sys.argv[1]) as t:
            for _ in range(5):
                t.track("cli_command", cli_command="eval")
        """,
        str(state_dir),
    )
    added = _uuids(state_dir)
    assert len(added) >= 5 and not added & set(wire.uuids)
    # 4. The ack arrives.
    deleted = uploader.ack(wire.first_id, wire.last_id, uuids=wire.uuids, epoch=epoch)
    uploader.close()
    assert deleted == 0
    assert _uuids(state_dir) == added  # every event added after the purge survives


def test_every_clear_bumps_the_epoch_and_never_deletes_its_key(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    fill(state_dir, 3, None)
    spool = Spool(state_dir, Policy())
    e0 = spool.epoch()
    spool.clear()  # the API's path
    assert spool.epoch() == e0 + 1
    spool.close()
    clear_state_dir(state_dir)  # the CLI's `purge`
    with sqlite3.connect(state_dir / "spool.db") as conn:
        rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    assert rows["epoch"] == str(e0 + 2)
    assert "config" in rows  # the host's settings are not data about anyone


def test_the_opt_out_purge_clears_the_spool_in_place_before_unlinking(tmp_path: Path) -> None:
    # A host (here: this process) holds the spool open, as it would on Windows,
    # where the unlink then fails: the events must be gone all the same.
    state_dir = tmp_path / "state"
    fill(state_dir, 4, None)
    held = Spool(state_dir, Policy())
    e0 = held.epoch()
    purge_state_dir(state_dir, keep_marker=False)
    assert not (state_dir / "spool.db").exists()
    # The host's connection still reads the unlinked file: empty, epoch bumped.
    assert held.queued()[0] == 0 and held.epoch() == e0 + 1
    held.close()


def test_a_hand_edited_epoch_never_allows_the_plain_range_delete(tmp_path: Path) -> None:
    spool = Spool(tmp_path, Policy())
    spool.append(_rows("old", 3))
    spool.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', 'abc')")
    epoch = spool.epoch()  # unknown: -1, never trusted
    batch = spool.read_batch(0, 100, 1 << 20)
    spool.conn.execute("DELETE FROM events")  # an id reuse the epoch cannot vouch for
    spool.append(_rows("new", 3))
    assert spool.ack(batch[0].id, batch[-1].id, uuids=[e.uuid for e in batch], epoch=epoch) == 0
    assert spool.queued()[0] == 3
    spool.clear()
    assert spool.epoch() >= 1  # bumped past the unknown value, never back to it
    spool.close()
