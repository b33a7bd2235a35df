"""The upload state both sides share: meta key ``upload`` in the spool.

``{"last_upload_at", "next_attempt_at", "failures", "last_spawn_at",
"last_outcome", "errors"}``. Times are ISO-8601 UTC strings (readable in the
sqlite3 CLI, JSON-serializable in ``status()``), or null.

The host writes ``last_spawn_at``; the uploader writes the rest. Every change
is a read-modify-write inside one ``BEGIN IMMEDIATE`` transaction, so neither
side loses the other's keys.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping
from typing import Any

from ._store import Spool, _transaction, iso_time

__all__ = ["UPLOAD_KEY", "format_time", "parse_time", "read_upload_state", "update_upload_state"]

UPLOAD_KEY = "upload"


def format_time(epoch: float) -> str:
    return iso_time(epoch)


def parse_time(value: object) -> float | None:
    """Epoch seconds from an ISO string (or a number); None when absent or unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or len(value) < 19:
        return None
    try:
        whole = calendar.timegm(time.strptime(value[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    frac = 0.0
    rest = value[19:].rstrip("Z")
    if rest.startswith("."):
        try:
            frac = float("0" + rest)
        except ValueError:
            frac = 0.0
    return whole + frac


def read_upload_state(spool: Spool) -> dict[str, Any]:
    value = spool.get_meta(UPLOAD_KEY)
    return dict(value) if isinstance(value, dict) else {}


def update_upload_state(spool: Spool, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into the stored state atomically; returns the new state."""
    conn = spool.conn
    with _transaction(conn):
        state = read_upload_state(spool)
        state.update(changes)
        spool.set_meta(UPLOAD_KEY, state)
    return state
