"""What ``status()`` reads from the spool, whatever its rows contain.

The docs invite users to open the spool with ``sqlite3``, so a ``meta`` row may
hold anything: a value that is not what telespool writes is shown as unknown
and counted ``error.bad_row``, never raised (tests/test_never_raises.py).
"""

from __future__ import annotations

from .._losses import ERROR_PREFIX, Losses, split_errors
from ._rows import UPLOAD_KEY
from ._sidecar import count_rows
from ._store import Spool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._writer import Writer

__all__ = ["status_snapshot", "take_bad_rows"]

# The facade's own facts, first in the snapshot (its key order is what
# ``telespool status --json`` prints).
_FACTS_FIRST = ("app", "enabled", "reason", "debug", "state_dir", "endpoint", "format")


def take_bad_rows(spool: Spool, losses: Losses) -> None:
    """Count the rows ``spool`` read that were not what telespool writes (hand-edited)."""
    n, spool.bad_rows = spool.bad_rows, 0
    if n:
        losses.add(ERROR_PREFIX + "bad_row", n)


def status_snapshot(
    facts: dict[str, Any], writer: Writer | None, losses: Losses, wait_ms: int
) -> dict[str, Any]:
    """``Telemetry.status()``: the facade's ``facts`` plus what the spool holds. Never raises."""
    dropped, errors = split_errors(losses.pending())
    out: dict[str, Any] = {
        **{k: facts[k] for k in _FACTS_FIRST},
        "queued": 0,
        "pending": 0,  # rows an exit left in events.pending, not in SQLite yet
        "bytes": 0,
        "disk_bytes": 0,
        "oldest": None,
        "buffered": 0,
        "dropped": dropped,
        "errors": errors,
        "config_errors": facts["config_errors"],
        "fault": facts["fault"],
        "last_upload_at": None,
        "next_attempt_at": None,
    }
    if writer is None:
        return out
    try:
        _read_spool(writer, losses, wait_ms, out)
    except Exception as exc:
        # The last line of defence: what was read so far, and the error counted.
        losses.add(ERROR_PREFIX + "status")
        out["fault"] = out["fault"] or f"status: {type(exc).__name__}"
    return out


def _read_spool(writer: Writer, losses: Losses, wait_ms: int, out: dict[str, Any]) -> None:
    """Fill ``out``'s spool fields: queue, sizes, drops and errors, upload times."""
    writer.sync(wait_ms=wait_ms)
    out["buffered"] = writer.buffered
    out["pending"] = count_rows(writer.state_dir)
    if writer.fault:
        out["fault"] = writer.fault_detail or writer.fault
    stored: dict[str, int] = {}

    def read(spool: Spool) -> None:
        out["queued"], out["bytes"] = spool.queued()
        out["disk_bytes"] = spool.disk_bytes()
        out["oldest"] = spool.oldest_time()
        stored.update(spool.drops())
        upload = spool.get_meta(UPLOAD_KEY)
        if upload is not None and not isinstance(upload, dict):
            spool.bad_rows += 1  # valid JSON, but not what telespool writes
            upload = None
        upload = upload or {}
        out["last_upload_at"] = _time_or_none(spool, upload.get("last_upload_at"))
        out["next_attempt_at"] = _time_or_none(spool, upload.get("next_attempt_at"))
        take_bad_rows(spool, losses)

    writer.run_locked(read)
    dropped = losses.pending()  # including what reading just counted
    for reason, n in stored.items():
        dropped[reason] = dropped.get(reason, 0) + n
    out["dropped"], out["errors"] = split_errors(dropped)


def _time_or_none(spool: Spool, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    spool.bad_rows += 1  # a hand-edited upload state: shown as unknown, counted
    return None
