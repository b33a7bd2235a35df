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


def _before_fork_all() -> None:
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
