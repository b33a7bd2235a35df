"""When the helper's unhurried jobs run: in a pause in appends.

A mixin of ``Helper``. The WAL job and the uploader's spawn wait for no row
to be appended for ``wal_idle_ms`` (any 1 ms gap once the WAL is late), so
neither competes with a burst; eviction and draining parked rows never wait.
A spawn waits at most ``TRIGGER_PAUSE_WAIT_S``, then goes before the WAL job.
"""

from __future__ import annotations

import os
import time

from .._policy import BUSY_LOOK_S, LATE_IDLE_S, TRIGGER_PAUSE_WAIT_S
from ..launch import _spawn
from ._paths import DB_NAME

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Callable

__all__ = ["IN_A_PAUSE", "JOBS", "Pauses"]

# In order of precedence. The last two wait for a pause in appends; the WAL
# job goes first in one, then the spawn: a spawn asked for mid-burst had its
# claim (a write) wait out the burst, then ran in the pause, and the WAL's
# checkpoint fell into the next burst (a spawning host's slowest calls).
JOBS = ("evict", "drain", "wal", "trigger")
IN_A_PAUSE = ("wal", "trigger")


class Pauses:
    """Waiting for a pause, and which job may not wait for one."""

    if TYPE_CHECKING:
        _state_dir: Path
        _appends: Callable[[], int]
        _jobs: dict[str, bool]
        _stopping: bool
        _idle_s: float
        _wal_late_at: int
        _late_missed: bool
        _pause_at: int
        _trigger_asked: float | None

        _wake: Any  # a lock used as a binary semaphore (see Helper)

    def _urgent(self, job: str) -> bool:
        """True when a job that must not wait for ``job``'s pause was asked for."""
        if job == "wal" and self._trigger_overdue():
            return True
        # For the spawn that includes the WAL job: it goes first in the pause.
        return any(self._jobs.get(j) for j in JOBS[: JOBS.index(job)])

    def _wal_late(self) -> bool:
        try:
            return os.stat(self._state_dir / (DB_NAME + "-wal")).st_size > self._wal_late_at
        except OSError:
            return False

    def _wait_for_pause(self, job: str) -> bool:
        """True once no row was appended for ``idle_s``; False when stopping or
        when a more urgent job (eviction in a flood, say) must not wait for a
        pause. A spawn waits at most TRIGGER_PAUSE_WAIT_S: a host that never
        pauses still gets its uploader."""
        if self._appends() == self._pause_at or (job == "trigger" and self._trigger_overdue()):
            return True  # no row since the last pause began (still in it), or waited enough
        while not self._stopping and not self._urgent(job):
            # Past the late mark any gap will do (a checkpoint and the restart
            # take ~2 ms): looking every idle_s + BUSY_LOOK_S missed gevent's 5 ms
            # pauses, and SQLite checkpointed inline in an append instead.
            # (The WAL job's alone: a spawn, 0.4-13 ms, never takes a 1 ms gap.)
            late = job == "wal" and self._wal_late() and not self._late_missed
            seen = self._appends()
            if self._wake.acquire(timeout=LATE_IDLE_S if late else self._idle_s):
                continue  # kicked again (or stopping): look again
            if self._appends() == seen:
                if not late:
                    self._pause_at = seen  # a real pause, which the spawn may share
                return True
            if job == "trigger" and self._trigger_overdue():
                return True
            if not late:  # appends are flowing: look again later rather than every idle_s
                self._wake.acquire(timeout=BUSY_LOOK_S)
                _spawn.reap_children()  # within a second, even while no pause comes
        return False

    def _trigger_overdue(self) -> bool:
        """True once a spawn waited TRIGGER_PAUSE_WAIT_S: then it goes before the WAL job."""
        if not self._jobs.get("trigger"):
            self._trigger_asked = None
            return False
        now = time.monotonic()
        if self._trigger_asked is None:
            self._trigger_asked = now
        return now - self._trigger_asked >= TRIGGER_PAUSE_WAIT_S
