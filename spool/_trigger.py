"""Start the detached uploader, rarely and only when it has something to do.

Fires when an endpoint is configured, events are queued, no backoff is pending
and ``trigger_interval_s`` passed since the last spawn. The last spawn time and
the backoff live in the spool (meta ``upload``), not in this process: 100 host
runs in a row on an offline machine start only a handful of uploaders.

The child is ``python -m uploader --state-dir DIR`` in its own session with
stdio on DEVNULL and no inherited descriptors, so the host can exit at once.
This module never imports ``uploader``; ``subprocess`` loads on first spawn.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ._policy import Policy
from ._store import Spool, _transaction
from ._upload_state import UPLOAD_KEY, format_time, parse_time, read_upload_state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Trigger", "spawn_uploader", "spawn_veto", "uploader_command"]

# track() re-checks at most this often, however small trigger_interval_s is:
# a check is a few SQLite reads, too dear for every call.
_MIN_TRACK_CHECK_S = 1.0
# Finished children are reaped on the next spawn (a long-lived host would
# otherwise collect zombies); running ones stay referenced, never waited for.
_CHILDREN: list[Any] = []


def uploader_command(state_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "uploader", "--state-dir", str(state_dir), *extra]


def spawn_veto(has_events: bool, state: dict[str, Any], now: float, policy: Policy) -> str | None:
    """Why not to spawn now (``empty``, ``backoff``, ``interval``), or None to spawn."""
    if not has_events:
        return "empty"
    next_at = parse_time(state.get("next_attempt_at"))
    # Further ahead than the cap can only mean the wall clock jumped: ignore it.
    if next_at is not None and now < next_at <= now + policy.backoff_max_s:
        return "backoff"
    last = parse_time(state.get("last_spawn_at"))
    if last is not None and 0.0 <= now - last < policy.trigger_interval_s:
        return "interval"
    return None


def spawn_uploader(state_dir: Path) -> bool:
    """Start a detached uploader for ``state_dir``; False if it could not start."""
    if not sys.executable:
        return False  # embedded interpreter: no python to run
    import subprocess

    for child in list(_CHILDREN):
        if child.poll() is not None:
            _CHILDREN.remove(child)
    # env is inherited unchanged: the child sees the same kill switches and CA bundle.
    kwargs: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
        "close_fds": True,
        # Not the host's cwd: a directory named "uploader" there would shadow the package.
        "cwd": str(state_dir),
    }
    if sys.platform == "win32":  # untested branch: CI runs Linux only
        kwargs["creationflags"] = (
            subprocess.DETACHED_PROCESS
            | subprocess.CREATE_NEW_PROCESS_GROUP
            | subprocess.CREATE_NO_WINDOW
        )
    else:
        # Own session: a Ctrl-C or SIGHUP aimed at the host's terminal spares it.
        kwargs["start_new_session"] = True
    try:
        child = subprocess.Popen(uploader_command(state_dir), **kwargs)
    except OSError:
        return False
    _CHILDREN.append(child)
    return True


class Trigger:
    """The host's side: decide cheaply, spawn rarely. Not thread-safe (the writer's
    lock serialises ``maybe_spawn``)."""

    def __init__(self, state_dir: Path, policy: Policy) -> None:
        self.state_dir = state_dir
        self.policy = policy
        self.spawned = 0
        self.failures = 0
        self._tracked = 0
        self._check_every = max(policy.trigger_interval_s, _MIN_TRACK_CHECK_S)
        self._next_check = time.monotonic() + self._check_every

    def tick(self) -> bool:
        """Per track(): True when it is time for a real check. A counter and a clock read."""
        self._tracked += 1
        if self._tracked >= self.policy.trigger_events:
            return True
        return time.monotonic() >= self._next_check

    def maybe_spawn(self, spool: Spool) -> bool:
        """Check the spool and spawn if due; records the spawn before starting it."""
        self._tracked = 0
        self._next_check = time.monotonic() + self._check_every
        now = time.time()
        if spawn_veto(spool.has_events(), read_upload_state(spool), now, self.policy):
            return False
        # Claim the spawn under SQLite's write lock, so two hosts racing here
        # start one uploader, and a failed write means no spawn (never a storm).
        conn = spool.conn
        with _transaction(conn):
            state = read_upload_state(spool)
            if spawn_veto(True, state, now, self.policy):
                return False
            state["last_spawn_at"] = format_time(now)
            spool.set_meta(UPLOAD_KEY, state)
        if spawn_uploader(self.state_dir):
            self.spawned += 1
            return True
        self.failures += 1
        return False
