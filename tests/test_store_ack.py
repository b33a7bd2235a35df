"""Acks delete exactly the delivered rows, even when ids were reused meanwhile."""

from __future__ import annotations

import time
from pathlib import Path

from spool._policy import Policy
from spool._store import Row, Spool, iso_time


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
