"""WAL maintenance in a host's pauses: the helper restarts the WAL, no track() does.

SQLite checkpoints inline once the WAL reaches ``wal_hard`` (two fsyncs in
one append), and restarts it in the next append (one more). The helper
avoids both by doing the work itself in a pause, if it is asked early enough
and sees the pause. Two ways that failed, each pinned here:

- the size check counted row bytes only, while a small event writes a whole
  page or two into the WAL: the helper heard of a WAL past its share about
  470 KiB of WAL late (a 4 MiB cap leaves 768 KiB between share and hard);
- a pause had to last ``wal_idle_ms`` from the moment the helper looked, so
  a host tracking in bursts with short sleeps between them (a gevent server,
  a worker loop) almost never showed one, and its WAL reached ``wal_hard``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from spool import Telemetry
from spool.store._store import wal_limits

CAP = 4 * 1024 * 1024


def _wal(state_dir: Path) -> int:
    try:
        return os.stat(state_dir / "spool.db-wal").st_size
    except FileNotFoundError:
        return 0


def test_size_checks_come_at_most_size_check_bytes_of_wal_apart(state_dir: Path) -> None:
    t = Telemetry("demo", "1.0.0", state_dir=state_dir, max_bytes=CAP)
    writer = t._writer
    assert writer is not None
    seen: list[int] = []
    check = writer._check_size

    def spy(spool):  # type: ignore[no-untyped-def]
        seen.append(_wal(state_dir))
        check(spool)

    writer._check_size = spy  # type: ignore[method-assign]
    # Small events, back to back: the WAL grows by about a page per event.
    for _ in range(3_000):
        t.track("cli_command", cli_command="eval")
    t.close()
    growth = [b - a for a, b in zip(seen, seen[1:])]
    assert len(seen) > 10, seen
    step = max(growth)
    # About one interval of size_check_bytes (an append writes one to three
    # frames: a leaf, its parent, page 1); counted in row bytes, ~8 intervals.
    assert step <= 2 * t.policy.size_check_bytes, (step, growth)


def test_bursts_with_short_gaps_get_the_wal_restarted_in_the_gaps(state_dir: Path) -> None:
    t = Telemetry("demo", "1.0.0", state_dir=state_dir, max_bytes=CAP)
    soft, hard = wal_limits(t.policy)
    gap_s = 3 * t.policy.wal_idle_ms / 1000.0
    inline = 0  # times the WAL reached wal_hard: SQLite checkpointed in a track()
    at_hard = False
    # ~6,000 small events: about eight WAL cycles of wal_hard each, if every
    # restart were left to SQLite.
    for _ in range(150):
        for _ in range(40):
            t.track("cli_command", cli_command="eval")
            wal = _wal(state_dir)
            inline += wal >= hard and not at_hard
            at_hard = wal >= hard
        time.sleep(gap_s)  # a pause: the helper's moment
    t.close()
    # The helper missed every gap of a whole cycle (hundreds of events) for
    # each of these. Once is tolerated: on a machine with no CPU to spare the
    # helper thread can go unscheduled that long (1 run in 4 with 3 CPU
    # burners on 2 cores); before the fix most cycles ended so.
    print(f"WAL reached wal_hard {inline} times ({soft=}, {hard=})")
    assert inline <= 1, inline
