"""Start the detached uploader, rarely and only when it has something to do.

Fires when an endpoint is configured, events are queued, no backoff is pending
and ``trigger_interval_s`` passed since the last spawn. The last spawn time and
the backoff live in the spool (meta ``upload``), not in this process: 100 host
runs in a row on an offline machine start only a handful of uploaders.

This module decides *when*; spool/launch/_spawn.py knows *how* (the detached
child, posix_spawn or Popen, frozen apps, reaping).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .._policy import MIN_TRACK_CHECK_S, Policy
from ..install import _serverless
from ..store._rows import UPLOAD_KEY
from ..store._sqlite import transaction
from ..store._store import Spool
from ..store._upload_state import (
    backoff_pending,
    format_time,
    parse_time,
    read_upload_state,
)
from ._spawn import launch_blocker, reap_children, spawn_uploader

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["Trigger", "spawn_veto"]


def spawn_veto(has_events: bool, state: dict[str, Any], now: float, policy: Policy) -> str | None:
    """Why not to spawn now (``empty``, ``backoff``, ``interval``, ``serverless``), or None."""
    if _serverless.platform(os.environ):
        return "serverless"  # a frozen sandbox kills detached work: flush() drains there
    if not has_events:
        return "empty"
    if backoff_pending(state, now, policy.backoff_max_s):
        return "backoff"
    last = parse_time(state.get("last_spawn_at"))
    if last is not None and 0.0 <= now - last < policy.trigger_interval_s:
        return "interval"
    return None


class Trigger:
    """The host's side: decide cheaply, spawn rarely. Not thread-safe (the writer's
    lock serialises ``maybe_spawn``)."""

    def __init__(
        self,
        state_dir: Path,
        policy: Policy,
        note_error: Callable[[str], None] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.policy = policy
        self.spawned = 0
        self.failures = 0
        # Due spawns not attempted, by launch_blocker() reason (e.g. "frozen"),
        # also reported through ``note_error`` so status() and the maintainer see them.
        self.skipped: dict[str, int] = {}
        self._note_error = note_error
        self._tracked = 0
        self._check_every = max(policy.trigger_interval_s, MIN_TRACK_CHECK_S)
        self._next_check = time.monotonic() + self._check_every

    def tick(self) -> bool:
        """Per track(): True when it is time for a real check. A counter and a clock read."""
        self._tracked += 1
        # No reaping here: the helper thread reaps (every second while a
        # child may run), so track() never pays a waitpid.
        return self._tracked >= self.policy.trigger_events or time.monotonic() >= self._next_check

    def maybe_spawn(self, spool: Spool) -> bool:
        """Check the spool and spawn if due; records the spawn before starting it."""
        return self.claim(spool) and self.spawn()

    def due(self, spool: Spool) -> bool:
        """Whether an uploader is due: reads only, and restarts the count to
        the next check. The helper asks this at once and waits for a pause
        in appends only when a spawn is due (most checks end in a veto)."""
        self._tracked = 0
        self._next_check = time.monotonic() + self._check_every
        reap_children()
        return not spawn_veto(
            spool.has_events(), read_upload_state(spool), time.time(), self.policy
        )

    def claim(self, spool: Spool) -> bool:
        """Decide whether an uploader is due and record the spawn; no process yet.

        Separate from ``spawn`` so the host can close its connection first at
        exit: the child's start-up then never competes with the close.
        """
        if not self.due(spool):
            return False
        now = time.time()
        blocker = launch_blocker()
        if blocker is not None:
            # Due, but no process can be started from here (a frozen app that
            # did not call uploader.freeze_support()): counted, never attempted.
            self.skipped[blocker] = self.skipped.get(blocker, 0) + 1
            if self._note_error is not None:
                self._note_error(blocker)
            return False
        # Claim the spawn under SQLite's write lock, so two hosts racing here
        # start one uploader, and a failed write means no spawn (never a storm).
        conn = spool.conn
        with transaction(conn):
            state = read_upload_state(spool)
            if spawn_veto(True, state, now, self.policy):
                return False
            state["last_spawn_at"] = format_time(now)
            spool.set_meta(UPLOAD_KEY, state)
        return True

    def spawn(self) -> bool:
        if spawn_uploader(self.state_dir):
            self.spawned += 1
            return True
        self.failures += 1
        return False
