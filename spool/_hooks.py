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
    from typing import Protocol

    class Hooked(Protocol):
        """What the hooks call; ``Telemetry`` implements it. None of these may raise."""

        def _before_fork(self) -> object: ...  # returns what after_fork_in_parent releases
        def _after_fork_in_parent(self, held: object) -> None: ...
        def _after_fork_in_child(self) -> None: ...
        def _at_exit(self) -> None: ...

        def __hash__(self) -> int: ...


__all__ = ["register"]

_LIVE: weakref.WeakSet[Hooked] = weakref.WeakSet()
_REGISTERED = False
# What each facade's before-fork hook holds, released after the fork in the parent.
_FORK_HELD: list[tuple[Hooked, object]] = []


def register(t: Hooked) -> None:
    """Close ``t`` at exit and quiesce it around forks."""
    global _REGISTERED
    _LIVE.add(t)
    if _REGISTERED:
        return
    atexit.register(_close_all)
    if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
        os.register_at_fork(
            before=_before_fork_all,
            after_in_parent=_after_fork_in_parent_all,
            after_in_child=_after_fork_in_child_all,
        )
    _REGISTERED = True


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
        util.Finalize(None, _close_all, exitpriority=10)


def _before_fork_all() -> None:
    _hook_multiprocessing()
    for t in list(_LIVE):
        _FORK_HELD.append((t, t._before_fork()))


def _after_fork_in_parent_all() -> None:
    while _FORK_HELD:
        t, held = _FORK_HELD.pop()
        t._after_fork_in_parent(held)


def _after_fork_in_child_all() -> None:
    _FORK_HELD.clear()  # the child's writers get fresh locks instead
    for t in list(_LIVE):
        t._after_fork_in_child()


def _close_all() -> None:
    for t in list(_LIVE):
        t._at_exit()
