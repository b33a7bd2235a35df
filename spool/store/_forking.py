"""The writer at a fork: quiesce before it, start afresh in the child.

A mixin of ``Writer``. ``os.register_at_fork(before=...)`` (see ``_hooks``)
calls ``before_fork``, so no telespool thread is inside SQLite when the
process forks (a child inheriting a SQLite mutex mid-call hangs in it:
tests/test_host_fork.py); the child drops what belongs to the parent and
opens its own connection, without waiting, on first use.
"""

from __future__ import annotations

from .._policy import FORK_QUIESCE_S
from ._parked import Parked

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from .._losses import Losses
    from .._policy import Policy
    from ._helper import Helper
    from ._store import Spool

__all__ = ["Forking"]


class Forking:
    """``before_fork``, ``after_fork_in_parent`` and ``after_fork_in_child`` of ``Writer``."""

    if TYPE_CHECKING:
        policy: Policy
        losses: Losses
        helper: Helper
        spool: Spool | None
        stuck_at: tuple[int, float] | None
        _lock: Any
        _new_lock: Callable[[], Any]
        _buffer: Parked
        _lock_failures: int
        _helper_drains: bool

        def _new_helper(self) -> Helper: ...

    def before_fork(self) -> tuple[bool, bool]:
        """Quiesce: wait (bounded) until neither an append nor the helper is
        inside SQLite, and keep them out until the fork is done. Never raises."""
        try:
            wrote = self._lock.acquire(timeout=FORK_QUIESCE_S)
            helped = self.helper.before_fork(FORK_QUIESCE_S)
            return wrote, helped
        except Exception:
            self.losses.error("fork")
            return False, False

    def after_fork_in_parent(self, held: tuple[bool, bool]) -> None:
        try:
            wrote, helped = held
            self.helper.after_fork_in_parent(helped)
            if wrote:
                self._lock.release()
            if self._buffer and self._helper_drains:
                self.helper.kick("drain")  # rows parked by other threads during the fork
        except Exception:
            self.losses.error("fork")

    def after_fork_in_child(self) -> None:
        """Called by the facade's at-fork hook in the child process."""
        # Locks held at fork time would never be released in the child; the
        # parent's parked rows and pending counts belong to the parent.
        self._lock = self._new_lock()
        self._buffer = Parked(self.policy.buffer_events)
        self.losses.after_fork_in_child()
        self.helper.abandon_after_fork()
        self.helper = self._new_helper()
        self._lock_failures = 0
        self.stuck_at = None
        if self.spool is not None:
            self.spool.set_busy_ms_for_reopen(0)
        # The spool re-opens its connection lazily, without waiting, on first use.
