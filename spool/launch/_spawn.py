"""Start the detached uploader process, and reap it: the OS mechanics of a launch.

The child is ``python -m uploader --state-dir DIR`` in its own session with
stdio on DEVNULL and no inherited descriptors, so the host can exit at once.
This module never imports ``uploader``; it spawns with ``os.posix_spawn``
where it can, so ``subprocess`` never loads into the host on POSIX.

A frozen app (PyInstaller, Nuitka, briefcase) has no ``python`` to run: its
``sys.executable`` is the app. Nothing is spawned there (counted as
``frozen``) unless the app called ``uploader.freeze_support()`` at the top
of main; then the app itself is started with ``FROZEN_UPLOADER_ARG``
(tests/test_frozen.py builds a real PyInstaller app).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from .._protocol import UploaderArgs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "FROZEN_UPLOADER_ARG",
    "launch_blocker",
    "neutral_cwd",
    "reap_children",
    "register_frozen_entry",
    "spawn_uploader",
    "uploader_command",
]

# posix_spawn with setsid and "-P" (Python 3.11+); elsewhere (Windows,
# older Pythons) subprocess.Popen.
_CAN_POSIX_SPAWN = (
    hasattr(os, "posix_spawn") and sys.version_info >= (3, 11) and sys.platform != "win32"
)
# How much lower the uploader's CPU priority is than the host's (Linux): it
# waits for the host, never the host for it.
UPLOADER_NICE = 10
# argv[1] of a frozen app started as the uploader: ``uploader.freeze_support()``,
# called at the top of the app's main, sees it and runs the uploader instead.
FROZEN_UPLOADER_ARG = "--telespool-uploader"
# Set by ``uploader.freeze_support()`` in a frozen app (the arrow stays
# uploader -> spool: this module never imports uploader, even lazily).
_FROZEN_ENTRY = [False]
# Running children, kept so they can be reaped (polled, never waited for):
# a long-lived host would otherwise collect zombies. Shared by every
# Telemetry in the process, so guarded; reaping never waits for the lock.
_CHILDREN: list[Any] = []
_CHILDREN_LOCK = threading.Lock()


def register_frozen_entry() -> None:
    """Say this frozen app runs the uploader when started with ``FROZEN_UPLOADER_ARG``."""
    _FROZEN_ENTRY[0] = True


def launch_blocker() -> str | None:
    """Why no uploader process can be started from here, or None.

    ``frozen``: under PyInstaller, Nuitka or briefcase ``sys.executable`` is
    the app itself, which would relaunch the host as "the uploader", unless
    the app called ``uploader.freeze_support()``. ``no_python``: an embedded
    interpreter with no executable to run.
    """
    if getattr(sys, "frozen", False):
        return None if _FROZEN_ENTRY[0] and sys.executable else "frozen"
    if not sys.executable:
        return "no_python"
    return None


def uploader_command(uploader_args: UploaderArgs) -> list[str] | None:
    """The uploader's argv, or None when ``launch_blocker()`` forbids starting one."""
    if launch_blocker() is not None:
        return None
    args = uploader_args.to_argv()
    if getattr(sys, "frozen", False):
        return [sys.executable, FROZEN_UPLOADER_ARG, *args]
    # -P (3.11+): the cwd is never on sys.path, so a directory named
    # "uploader" there cannot shadow the package; older Pythons rely on
    # the neutral cwd the child is started in (see neutral_cwd).
    flags = ["-P"] if sys.version_info >= (3, 11) else []
    return [sys.executable, *flags, "-m", "uploader", *args]


def neutral_cwd() -> str:
    """The filesystem root: a cwd no one deletes, and never inside the state dir.

    On Windows a process's cwd cannot be removed, so a child started in the
    state dir made purge's rmdir fail while it ran (untested here: CI is Linux).
    """
    return Path(sys.executable).anchor or os.sep


def spawn_uploader(state_dir: Path) -> bool:
    """Start a detached uploader for ``state_dir``; False if it could not start."""
    argv = uploader_command(UploaderArgs(state_dir))
    if argv is None:
        return False
    reap_children()
    if _CAN_POSIX_SPAWN:
        try:
            _remember(_Spawned(_spawn_niced(argv)))
            return True
        except (OSError, NotImplementedError, ValueError):
            pass  # fall back to subprocess below
    return _popen(argv)


def reap_children() -> int:
    """Collect finished uploaders (no zombies); returns how many. Never blocks.

    Called at every spawn, by ``Trigger.tick``/``claim`` and periodically by
    the host's helper thread, so a finished child is reaped promptly even
    while a backoff vetoes every further spawn. If another thread is reaping
    right now this returns 0 at once: that thread does the work.
    """
    if not _CHILDREN or not _CHILDREN_LOCK.acquire(False):
        return 0
    try:
        finished = [child for child in _CHILDREN if child.poll() is not None]
        for child in finished:
            _CHILDREN.remove(child)
        return len(finished)
    finally:
        _CHILDREN_LOCK.release()


def _remember(child: Any) -> None:
    with _CHILDREN_LOCK:  # held only for a poll loop over a handful of children
        _CHILDREN.append(child)


def _forget_children_after_fork() -> None:
    # A forked child is not the parent of these processes, and the lock may
    # have been held by a thread that does not exist in the child.
    global _CHILDREN_LOCK
    _CHILDREN_LOCK = threading.Lock()
    _CHILDREN.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_children_after_fork)


def _spawn_niced(argv: list[str]) -> int:
    """posix_spawn the uploader at a lower CPU priority than the host (Linux).

    The uploader's Python start-up (tens of ms of CPU) competed with the host
    for the cores: a long-lived host spawning every ~60 ms saw its thread
    descheduled for whole scheduler ticks (4-40 ms stalls, ~100 per 20 s of
    spawns on 2 cores). On Linux a nice value belongs to a thread and a child
    inherits its spawning thread's, so a short-lived thread lowers its own
    and spawns; the host's threads keep theirs. The child's session
    (autogroup) is lowered as well. Elsewhere (macOS: the nice
    value is the whole process's) the child starts at the host's priority.
    """
    if sys.platform != "linux":
        return _posix_spawn(argv)
    from .._threads import os_thread_api  # a real OS thread even under gevent

    start, allocate_lock = os_thread_api()
    done = allocate_lock()
    done.acquire()
    out: list[Any] = []

    def run() -> None:
        try:
            tid = threading.get_native_id()
            nice = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(nice + UPLOADER_NICE, 19))
        except OSError:
            pass  # spawned at the host's priority
        try:
            pid = _posix_spawn(argv)
            out.append(pid)
            _lower_autogroup(pid)
        except BaseException as exc:
            out.append(exc)
        finally:
            done.release()

    try:
        start(run, ())
    except RuntimeError:  # no new threads at interpreter shutdown (an exit's spawn)
        return _posix_spawn(argv)
    done.acquire()
    if isinstance(out[0], BaseException):
        raise out[0]
    return int(out[0])


def _lower_autogroup(pid: int) -> None:
    """With autogroup scheduling (most desktop kernels, and this CI machine),
    CPU is shared between sessions first, so the child's own session (setsid)
    would get as much CPU as the host's whatever its nice value: lower its
    session's share too. Best effort: a kernel without autogroups has no file."""
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(UPLOADER_NICE))
    except OSError:
        pass


def _posix_spawn(argv: list[str]) -> int:
    """posix_spawn: a ~1 ms start, without loading subprocess into the host.

    ``subprocess`` costs the host ~5 ms to import and as much to tear down at
    exit, the very moment telespool promises not to delay. The child inherits
    the host's cwd (posix_spawn cannot change it); the uploader moves to a
    neutral one first thing, and ``-P`` keeps it off ``sys.path``.
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
        return os.posix_spawn(
            argv[0],
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


# Windows: CreateProcess fails with ERROR_ACCESS_DENIED when the host's job
# object forbids breakaway (JOB_OBJECT_LIMIT_BREAKAWAY_OK unset).
_ERROR_ACCESS_DENIED = 5


def _popen(argv: list[str]) -> bool:
    import subprocess

    # env is inherited unchanged: the child sees the same kill switches and CA bundle.
    kwargs: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
        "close_fds": True,
        "cwd": neutral_cwd(),
    }
    if sys.platform == "win32":  # untested branch: CI runs Linux only
        # DETACHED_PROCESS already means no console, so CREATE_NO_WINDOW (which
        # Windows ignores beside it) is not passed. CREATE_BREAKAWAY_FROM_JOB:
        # a host inside a job object (CI runner, IDE terminal, service) would
        # otherwise take the uploader down with it when the job closes at exit.
        detached = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
        try:
            child = subprocess.Popen(
                argv, creationflags=detached | subprocess.CREATE_BREAKAWAY_FROM_JOB, **kwargs
            )
        except OSError as exc:
            if getattr(exc, "winerror", None) != _ERROR_ACCESS_DENIED:
                return False
            # The job forbids breakaway: start inside it (it may end with the host).
            try:
                child = subprocess.Popen(argv, creationflags=detached, **kwargs)
            except OSError:
                return False
    else:
        try:
            child = subprocess.Popen(argv, start_new_session=True, **kwargs)
        except OSError:
            return False
    _remember(child)
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
                self.returncode = 0  # reaped elsewhere (a host's own SIGCHLD reaper)
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
