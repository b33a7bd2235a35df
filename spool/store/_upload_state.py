"""The upload state both sides share: meta key ``upload`` in the spool.

``{"last_upload_at", "next_attempt_at", "failures", "last_spawn_at",
"last_outcome", "errors"}``. Times are ISO-8601 UTC strings (readable in the
sqlite3 CLI, JSON-serializable in ``status()``), or null.

The host writes ``last_spawn_at``; the uploader writes the rest. Every change
is a read-modify-write inside one ``BEGIN IMMEDIATE`` transaction, so neither
side loses the other's keys.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._rows import UPLOAD_KEY, iso_time
from ._sqlite import transaction
from ._store import Spool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "backoff_pending",
    "format_time",
    "parse_time",
    "read_upload_state",
    "update_upload_state",
]



def format_time(epoch: float) -> str:
    return iso_time(epoch)


def parse_time(value: object) -> float | None:
    """Epoch seconds from an ISO string (or a number); None when absent or unreadable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or len(value) < 19:
        return None
    try:
        # Fixed-width fields parsed by hand: time.strptime would import
        # _strptime, calendar and locale into every host.
        date, _, clock = value[:19].partition("T")
        year, month, day = (int(x) for x in date.split("-"))
        hour, minute, second = (int(x) for x in clock.split(":"))
        whole = _epoch(year, month, day) + hour * 3600 + minute * 60 + second
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60):
            return None
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


def _epoch(year: int, month: int, day: int) -> int:
    """Seconds since 1970-01-01 at midnight UTC of a proleptic Gregorian date."""
    # Days from civil (H. Hinnant's algorithm): exact, no tables, no imports.
    y = year - (month <= 2)
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return (era * 146097 + doe - 719468) * 86400


def backoff_pending(state: Mapping[str, Any], now: float, backoff_max_s: float) -> bool:
    """True while the stored ``next_attempt_at`` is still ahead of ``now``.

    The one rule for both sides: the host's trigger does not spawn, and the
    uploader does not send (unless forced). A time further ahead than the cap
    can only mean the wall clock jumped back: it is ignored, or one clock
    change could park the queue for good (pinned on both sides:
    test_a_backoff_beyond_the_cap_means_the_clock_jumped_and_is_ignored,
    test_a_next_attempt_beyond_the_cap_is_treated_as_a_clock_jump).
    """
    next_at = parse_time(state.get("next_attempt_at"))
    return next_at is not None and now < next_at <= now + backoff_max_s


def read_upload_state(spool: Spool) -> dict[str, Any]:
    value = spool.get_meta(UPLOAD_KEY)
    return dict(value) if isinstance(value, dict) else {}


def update_upload_state(spool: Spool, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into the stored state atomically; returns the new state."""
    conn = spool.conn
    with transaction(conn):
        state = read_upload_state(spool)
        state.update(changes)
        spool.set_meta(UPLOAD_KEY, state)
    return state
