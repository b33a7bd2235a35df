"""Start the detached uploader, rarely and only when it has something to do.

Fires when an endpoint is configured, events are queued, no backoff is pending
and ``trigger_interval_s`` passed since the last spawn. The last spawn time and
the backoff live in the spool (meta ``upload``), not in this process: 100 host
runs in a row on an offline machine start only a handful of uploaders.

The child is ``python -m uploader --state-dir DIR`` in its own session with
stdio on DEVNULL and no inherited descriptors, so the host can exit at once.
This module never imports ``uploader``; it spawns with ``os.posix_spawn``
where it can, so ``subprocess`` never loads into the host on POSIX.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from . import _serverless
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
# posix_spawn with setsid and "-P" (Python 3.11+); elsewhere (Windows,
# older Pythons) subprocess.Popen.
_CAN_POSIX_SPAWN = (
    hasattr(os, "posix_spawn") and sys.version_info >= (3, 11) and sys.platform != "win32"
)
# Finished children are reaped on the next spawn (a long-lived host would
# otherwise collect zombies); running ones stay referenced, never waited for.
_CHILDREN: list[Any] = []


def uploader_command(state_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "uploader", "--state-dir", str(state_dir), *extra]


def spawn_veto(has_events: bool, state: dict[str, Any], now: float, policy: Policy) -> str | None:
    """Why not to spawn now (``empty``, ``backoff``, ``interval``, ``serverless``), or None."""
    if _serverless.platform(os.environ):
        return "serverless"  # a frozen sandbox kills detached work: flush() drains there
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
    _reap()
    if _CAN_POSIX_SPAWN:
        try:
            _CHILDREN.append(_Spawned(_posix_spawn(state_dir)))
            return True
        except (OSError, NotImplementedError, ValueError):
            pass  # fall back to subprocess below
    return _popen(state_dir)


def _posix_spawn(state_dir: Path) -> int:
    """posix_spawn: a ~1 ms start, without loading subprocess into the host.

    ``subprocess`` costs the host ~5 ms to import and as much to tear down at
    exit, the very moment telespool promises not to delay. ``-P`` keeps the
    host's cwd off ``sys.path`` (a directory named "uploader" there must not
    shadow the package), which is what ``cwd=state_dir`` does for Popen.
    """
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        actions: list[tuple[Any, ...]] = [
            (os.POSIX_SPAWN_DUP2, devnull, 0),
            (os.POSIX_SPAWN_DUP2, devnull, 1),
            (os.POSIX_SPAWN_DUP2, devnull, 2),
        ]
        # Like close_fds=True: no descriptor the host made inheritable (a pipe
        # its parent waits on, say) may be held open by the uploader.
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds(devnull)]
        argv = uploader_command(state_dir)
        argv.insert(1, "-P")
        return os.posix_spawn(
            sys.executable,
            argv,
            os.environ,
            file_actions=actions,
            # Own session: a Ctrl-C or SIGHUP aimed at the host's terminal spares it.
            setsid=True,
            # What subprocess's restore_signals does: default SIGPIPE/SIGXFSZ.
            setsigdef=_default_signals(),
        )
    finally:
        os.close(devnull)


def _default_signals() -> tuple[int, ...]:
    # The C module, not ``signal``: that one builds enums (~2 ms) at import.
    try:
        sig: Any = __import__("_signal")
    except ImportError:  # pragma: no cover - non-CPython
        import signal as sig
    return (int(sig.SIGPIPE), int(sig.SIGXFSZ))


def _inheritable_fds(keep: int) -> list[int]:
    fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    fds = []
    for name in os.listdir(fd_dir):
        fd = int(name)
        if fd <= 2 or fd == keep:
            continue
        try:
            if os.get_inheritable(fd):
                fds.append(fd)
        except OSError:  # the listing's own descriptor, closed by now
            pass
    return fds


def _popen(state_dir: Path) -> bool:
    import subprocess

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
        kwargs["start_new_session"] = True
    try:
        child = subprocess.Popen(uploader_command(state_dir), **kwargs)
    except OSError:
        return False
    _CHILDREN.append(child)
    return True


class _Spawned:
    """A posix_spawn child with the bit of Popen's interface the trigger uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = 0  # reaped elsewhere
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"uploader {self.pid} still running")
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            os.kill(self.pid, 9)


def _reap() -> None:
    """Collect finished children, so a long-lived host gathers no zombies."""
    for child in list(_CHILDREN):
        if child.poll() is not None:
            _CHILDREN.remove(child)


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
        return self.claim(spool) and self.spawn()

    def claim(self, spool: Spool) -> bool:
        """Decide whether an uploader is due and record the spawn; no process yet.

        Separate from ``spawn`` so the host can close its connection first at
        exit: the child's start-up then never competes with the close.
        """
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
        return True

    def spawn(self) -> bool:
        if spawn_uploader(self.state_dir):
            self.spawned += 1
            return True
        self.failures += 1
        return False
