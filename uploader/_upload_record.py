"""What a pass writes into the spool's ``upload`` state, and reads back from it.

The drain loop decides; this module records the decision where the host's
trigger (and ``status()``) will see it: the backoff after a failed POST, the
outcome of every pass, and the stored failure count the next backoff grows
from. Every write is one read-modify-write transaction
(``update_upload_state``), so the host's ``last_spawn_at`` is never lost.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from spool._losses import ERROR_PREFIX
from spool._policy import ERROR_DETAIL_CHARS
from spool.store._store import Spool
from spool.store._upload_state import format_time, read_upload_state, update_upload_state

from ._backoff import Backoff
from ._result import Retry

__all__ = ["record_backoff", "record_fault", "record_pass", "stored_failures"]


def stored_failures(spool: Spool, state: Mapping[str, Any]) -> int:
    """Consecutive failures so far; a hand-edited count is counted and starts afresh."""
    value = state.get("failures", 0)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    spool.bad_rows += 1
    return 0


def record_backoff(spool: Spool, backoff: Backoff, result: Retry) -> str:
    """Store the wait after a failed POST; returns ``next_attempt_at``."""
    next_at = format_time(time.time() + backoff.delay(result.retry_after_s))
    stored = read_upload_state(spool).get("errors")
    errors = Counter(
        {k: v for k, v in stored.items() if isinstance(v, int)} if isinstance(stored, dict) else {}
    )
    errors[result.error] += 1
    # Reported upstream with the next batch that gets through.
    spool.add_drops({f"{ERROR_PREFIX}upload_{result.error}": 1})
    update_upload_state(
        spool,
        {
            "failures": backoff.failures,
            "next_attempt_at": next_at,
            "last_outcome": "backoff",
            "last_error": result.error,
            "errors": dict(errors),
        },
    )
    return next_at


def record_pass(spool: Spool, outcome: str, sent: int) -> None:
    """A pass that ended without a failed POST: the backoff is over."""
    changes: dict[str, Any] = {"failures": 0, "next_attempt_at": None, "last_outcome": outcome}
    if sent:
        changes["last_upload_at"] = format_time(time.time())
    update_upload_state(spool, changes)


def record_fault(spool: Spool, outcome: str, detail: str) -> None:
    """A pass that failed on its own (not the endpoint's) fault. Never raises."""
    try:
        update_upload_state(
            spool, {"last_outcome": outcome, "last_error": detail[:ERROR_DETAIL_CHARS]}
        )
    except Exception:
        pass  # the outcome still reaches --progress; the spool itself is the fault
