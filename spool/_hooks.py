"""Process-wide hooks: one atexit and one set of at-fork handlers for every live
``Telemetry``.

Registered once, on the first enabled ``Telemetry``, and holding only weak
references: a facade the host dropped is neither kept alive nor closed twice.
The fork handlers exist because no telespool thread may be inside SQLite when
the process forks: the child would inherit a SQLite mutex held mid-call and
hang in its first statement (4-10% of forks while a thread tracked; pinned by
tests/test_host_fork.py).
"""

from __future__ import annotations

import atexit
import os
import sys
import weakref

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Hooked(Protocol):
        """What the hooks call; ``Telemetry`` implements it. None of these may raise."""

        def _before_fork(self) -> object: ...  # returns what after_fork_in_parent releases
        def _after_fork_in_parent(self, held: object) -> None: ...
        def _after_fork_in_child(self) -> None: ...
        def _at_exit(self) -> None: ...

        def __hash__(self) -> int: ...

    from .store._writer import Writer


__all__ = ["Guard", "orphaned", "register"]

if TYPE_CHECKING:
    Guard = weakref.finalize[..., Hooked]
else:
    Guard = weakref.finalize

_LIVE: weakref.WeakSet[Hooked] = weakref.WeakSet()
_REGISTERED = False
# What each facade's before-fork hook holds, released after the fork in the parent.
_FORK_HELD: list[tuple[Hooked | _Orphan, object]] = []


def register(t: Hooked, writer: Writer) -> Guard:
    """Close ``t`` at exit and quiesce it around forks; should the host drop
    it unclosed, its ``writer`` instead (``detach()`` the guard on close)."""
    global _REGISTERED
    _LIVE.add(t)
    guard = weakref.finalize(t, orphaned, writer)
    guard.atexit = False  # at exit, _close_all closes t itself
    _finalize_in_multiprocessing_child()
    if not _REGISTERED:
        _register_process_hooks()
        _REGISTERED = True
    return guard


def _register_process_hooks() -> None:
    atexit.register(_close_all)
    if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
        os.register_at_fork(
            before=_before_fork_all,
            after_in_parent=_after_fork_in_parent_all,
            after_in_child=_after_fork_in_child_all,
        )


class _MpToken:
    """What ``multiprocessing.util.register_after_fork`` holds (it keeps a weak reference)."""


_MP_TOKEN = _MpToken()
_MP_HOOKED = [False]


def _hook_multiprocessing() -> None:
    # A multiprocessing worker (Pool, Process) ends with os._exit after its
    # own exit function: atexit never runs there, so parked rows and pending
    # counts would vanish. multiprocessing runs its finalizers first; it clears
    # them at the worker's start, so ours is added from its after-fork hook.
    # Only if the host already imported it: telespool never imports it.
    util = sys.modules.get("multiprocessing.util")
    if util is None or _MP_HOOKED[0]:
        return
    util.register_after_fork(_MP_TOKEN, _in_multiprocessing_child)
    _MP_HOOKED[0] = True


def _in_multiprocessing_child(_token: object) -> None:
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        _close_all_at_worker_exit(util)


# The pid whose multiprocessing exit already closes every facade.
_MP_FINALIZED = [0]


def _close_all_at_worker_exit(util: Any) -> None:
    util.Finalize(None, _close_all, exitpriority=10)
    _MP_FINALIZED[0] = os.getpid()


def _finalize_in_multiprocessing_child() -> None:
    # A facade first built inside a worker (forkserver and spawn workers
    # start fresh; a fork worker may build its own): no fork hook ran for it
    # there, and a fork or forkserver worker ends with os._exit, so the
    # finalizer is added now (a forkserver pool lost 13 of 800 parked rows).
    if _MP_FINALIZED[0] == os.getpid():
        return
    process = sys.modules.get("multiprocessing.process")
    util = sys.modules.get("multiprocessing.util")
    if process is None or util is None:
        return
    try:
        in_child = process.parent_process() is not None
    except Exception:
        return
    if in_child:
        _close_all_at_worker_exit(util)


class _Orphan:
    """The writer of a facade the host dropped without ``close()``.

    A host that builds a ``Telemetry`` per task or request and lets it go
    would lose the rows still parked in it (another connection held SQLite's
    lock), uncounted: the writer is kept, quiesced at forks like a live
    facade's, and closed at exit, which writes them or counts them.
    """

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def _before_fork(self) -> object:
        return self.writer.before_fork()

    def _after_fork_in_parent(self, held: object) -> None:
        if isinstance(held, tuple):
            self.writer.after_fork_in_parent(held)

    def _after_fork_in_child(self) -> None:
        self.writer.after_fork_in_child()

    def _at_exit(self) -> None:
        try:
            self.writer.close()
        except Exception:  # pragma: no cover - close counts its own errors
            pass


_ORPHANS: list[_Orphan] = []


def orphaned(writer: Writer) -> None:
    """``weakref.finalize`` callback of a facade collected unclosed."""
    _ORPHANS.append(_Orphan(writer))


def _hooked() -> list[Hooked | _Orphan]:
    return [*_LIVE, *_ORPHANS]


def _before_fork_all() -> None:
    _hook_multiprocessing()
    for t in _hooked():
        _FORK_HELD.append((t, t._before_fork()))


def _after_fork_in_parent_all() -> None:
    while _FORK_HELD:
        t, held = _FORK_HELD.pop()
        t._after_fork_in_parent(held)


def _after_fork_in_child_all() -> None:
    _FORK_HELD.clear()  # the child's writers get fresh locks instead
    for t in _hooked():
        t._after_fork_in_child()


def _close_all() -> None:
    for t in _hooked():
        t._at_exit()
