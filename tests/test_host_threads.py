"""Threads in one host: bursts lose nothing, ids never fail, counters never race.

In-process contention lasts microseconds; only an outside process holding
SQLite's write lock may make ``track()`` park or drop (see test_call_path_faults).
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from spool import Telemetry
from spool._losses import Losses
from spool.install import _ids
from tests.hosts import stored_commands


def _stored(state_dir: Path, name: str) -> int:
    db = sqlite3.connect(state_dir / "spool.db")
    try:
        return int(db.execute("SELECT count(*) FROM events WHERE name = ?", (name,)).fetchone()[0])
    finally:
        db.close()


@pytest.mark.parametrize("threads", [4, 8, 32])
def test_a_burst_of_threads_stores_every_event(state_dir: Path, threads: int) -> None:
    per_thread = 5_000 if threads <= 8 else 1_000
    start = threading.Barrier(threads)
    old = sys.getswitchinterval()
    # A short switch interval makes threads interleave inside track() far more
    # often than the default 5 ms: the contention a busy server sees.
    sys.setswitchinterval(1e-5)
    try:
        with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:

            def work() -> None:
                start.wait()
                for _ in range(per_thread):
                    t.track("cli_command", cli_command="eval")

            pool = [threading.Thread(target=work) for _ in range(threads)]
            for th in pool:
                th.start()
            for th in pool:
                th.join()
            status = t.status()
    finally:
        sys.setswitchinterval(old)
    assert status["dropped"] == {}, status
    assert status["errors"] == {}, status
    assert _stored(state_dir, "cli_command") == threads * per_thread


class _WaitSpy:
    """The writer's thread lock, recording every *blocking* acquire made by
    the thread under test. A spy on telespool's own lock, not on SQLite: it
    is the only way to see a wait without timing one."""

    def __init__(self, lock: Any, watched: threading.Thread) -> None:
        self._lock = lock
        self._watched = watched
        self.blocking_acquires = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if blocking and threading.current_thread() is self._watched:
            self.blocking_acquires += 1
        return bool(self._lock.acquire(blocking, timeout))

    def release(self) -> None:
        self._lock.release()


def test_a_thread_that_finds_another_mid_append_hands_its_row_over_without_waiting(
    state_dir: Path,
) -> None:
    """The holder (here a step on the writer's connection, as the helper's
    eviction slices run) writes the handed-over row before it lets go."""
    with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
        t.track("cli_command", cli_command="eval")  # the spool is open
        writer = t._writer
        assert writer is not None
        spy = _WaitSpy(writer._lock, threading.current_thread())
        writer._lock = spy
        inside, tracked = threading.Event(), threading.Event()

        def hold(_spool: object) -> None:
            inside.set()
            tracked.wait(10)  # until the main thread's track() has returned

        holder = threading.Thread(target=writer.run_locked, args=(hold, 10_000))
        holder.start()
        assert inside.wait(10)
        t.track("cli_command", cli_command="dashboard")
        tracked.set()
        holder.join(10)
        # Written by the holder as it let go: no later append, no helper needed.
        assert stored_commands(state_dir, "dashboard") == 1
        assert spy.blocking_acquires == 0
        writer._lock = spy._lock
        assert t.status()["dropped"] == {}


def test_event_ids_never_fail_when_threads_drain_the_pool_at_once() -> None:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    failures: list[BaseException] = []
    taken: list[list[str]] = []
    try:

        def work() -> None:
            mine: list[str] = []
            try:
                for _ in range(20_000):
                    mine.append(_ids.new_event_id())
            except BaseException as exc:  # what the old refill-then-pop raised
                failures.append(exc)
            taken.append(mine)

        pool = [threading.Thread(target=work) for _ in range(16)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
    finally:
        sys.setswitchinterval(old)
    assert failures == []
    ids = [i for mine in taken for i in mine]
    assert len(ids) == len(set(ids)) == 16 * 20_000


def test_losses_from_many_threads_are_all_counted() -> None:
    losses = Losses()
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:

        def work(i: int) -> None:
            for _ in range(20_000):
                losses.add("locked" if i % 2 else f"reason{i % 5}")

        pool = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for th in pool:
            th.start()
        taken: dict[str, int] = {}
        while any(th.is_alive() for th in pool):
            for reason, n in losses.take().items():  # a writer folding them meanwhile
                taken[reason] = taken.get(reason, 0) + n
        for th in pool:
            th.join()
    finally:
        sys.setswitchinterval(old)
    for reason, n in losses.take().items():
        taken[reason] = taken.get(reason, 0) + n
    assert sum(taken.values()) == 8 * 20_000
