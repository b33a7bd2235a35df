"""Rows held in memory while another process holds SQLite's write lock.

Bounded (``buffer_events``): what does not fit is counted ``locked``, never
silently lost. What is still parked when the exit's deadline passes goes to
the ``events.pending`` sidecar, stored by the next host that opens the spool
(tests/test_call_path_faults.py, tests/test_host_exit_and_stalls.py).
A ``deque`` underneath, so the call path's ``if parked:`` and ``extend`` stay
C-speed and atomic under the GIL.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from .._losses import Losses
from .._threads import os_thread_api
from ._rows import Row
from ._sidecar import append_rows
from ._store import Spool

__all__ = ["Parked"]


class Parked(deque[Row]):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        # Rows the helper took out to write on its own connection, while it
        # waits for SQLite's lock: still parked, for the limit and for status().
        # Not in len() or bool(): a Python __len__ on the deque cost every
        # append ~3 us (the call path asks ``if parked:`` twice).
        self.in_flight = 0
        # The helper and a closing/appending thread may both be inside
        # write_to: ``+=`` is several bytecodes, and a lost update would
        # leave status() showing parked rows forever. Off the common path.
        self._count_lock = os_thread_api()[1]()

    def park(self, rows: list[Row], losses: Losses) -> None:
        room = max(self.limit - len(self) - self.in_flight, 0)
        self.extend(rows[:room])  # deque.extend: atomic under the GIL
        if len(rows) > room:
            losses.add("locked", len(rows) - room)

    def take(self) -> list[Row]:
        rows: list[Row] = []
        while self:
            try:
                rows.append(self.popleft())
            except IndexError:  # pragma: no cover - emptied by another thread
                break
        return rows

    def write_to(self, spool: Spool) -> None:
        """Append every parked row; on an error they are put back, in order.

        The helper calls it on its own connection too, while appends go on:
        the rows it took stay counted as parked (``in_flight``) while it
        waits for SQLite's lock.
        """
        if not self:
            return
        rows = self.take()
        self._count(len(rows))
        try:
            spool.append(rows)
        except BaseException:
            self.extendleft(reversed(rows))  # the caller decides whether to retry
            raise
        finally:
            self._count(-len(rows))

    def _count(self, n: int) -> None:
        with self._count_lock:
            self.in_flight += n

    def spill(self, state_dir: Path, losses: Losses, max_file: int) -> None:
        """At the exit's deadline: what SQLite never took goes to ``events.pending``
        (kept under ``max_file`` bytes, the cap) for the next host to store, or
        is counted ``locked`` if even that fails."""
        rows = self.take()
        if rows and not append_rows(state_dir, rows, max_file):
            losses.add("locked", len(rows))
