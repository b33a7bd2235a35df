"""``drops.pending`` and ``events.pending``: what could not reach SQLite at exit.

At exit, a spool locked by another process (a ``sqlite3`` session, say) or
already closed cannot take the last rows and counts. Rather than lose them,
the host appends JSON lines with O_APPEND, which is atomic for one write on
every local filesystem: counts (``{"reason": n, ...}``) to ``drops.pending``,
parked rows (``[uuid, name, time, run_id, props, size]``, exactly as they
would have been inserted: sanitized long before) to ``events.pending``. The
next host that opens the spool folds both in (see ``Writer``). Both files are
0600 in the private state dir and deleted by every clear and purge.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from .._losses import ERROR_PREFIX, Losses
from .._policy import SIDECAR_MAX_LINE
from ._paths import MARKER_NAME, open_private
from ._rows import Row

__all__ = [
    "ROWS_NAME",
    "SIDECAR_NAME",
    "append_losses",
    "append_rows",
    "take_losses",
    "take_pending",
    "take_rows",
]

SIDECAR_NAME = "drops.pending"
ROWS_NAME = "events.pending"
# A row line holds props escaped once more, so it may be a few times the
# event's own bytes; past this it is certainly not ours (a hand edit).
ROWS_MAX_LINE = 64 * 1024


def append_losses(state_dir: Path, counts: Mapping[str, int]) -> bool:
    """Append ``counts`` as one line; False if even that failed. Never raises."""
    clean = {str(k): int(v) for k, v in counts.items() if int(v) > 0}
    if not clean:
        return True
    return _append(state_dir / SIDECAR_NAME, [clean])


def append_rows(state_dir: Path, rows: Sequence[Row]) -> bool:
    """Append ``rows``, one line each, in one write; False if it failed. Never raises.

    Not into a state dir the user has opted out of since (``telespool
    disable`` during this run): nothing of theirs may be kept there.
    """
    if not rows or os.path.lexists(state_dir / MARKER_NAME):
        return True
    return _append(state_dir / ROWS_NAME, [list(r) for r in rows])


def take_losses(state_dir: Path) -> dict[str, int]:
    """Read and remove the counts sidecar; ``{}`` when there is none. Never raises."""
    totals: dict[str, int] = {}
    for item in _take(state_dir, SIDECAR_NAME, SIDECAR_MAX_LINE):
        if not isinstance(item, dict):
            continue
        for reason, n in item.items():
            if isinstance(reason, str) and type(n) is int and 0 < n < 2**40:
                totals[reason] = totals.get(reason, 0) + n
    return totals


def take_rows(state_dir: Path, max_event_bytes: int) -> tuple[list[Row], int]:
    """Read and remove the rows sidecar: (rows, lines that were not a row of ours).

    A line is taken only in the exact shape ``append_rows`` writes, with props a
    JSON object and the size track() gives, at most ``max_event_bytes``: a
    hand edit cannot pass off a row the host's own checks would have refused.
    """
    rows: list[Row] = []
    bad = 0
    for item in _take(state_dir, ROWS_NAME, ROWS_MAX_LINE):
        row = _as_row(item, max_event_bytes)
        if row is None:
            bad += 1
        else:
            rows.append(row)
    return rows, bad


def take_pending(state_dir: Path, max_event_bytes: int, losses: Losses) -> list[Row]:
    """Both sidecars, for a host opening the spool: counts restored into
    ``losses`` (lines not ours counted ``error.bad_row``), the rows returned."""
    losses.restore(take_losses(state_dir))
    rows, bad = take_rows(state_dir, max_event_bytes)
    if bad:
        losses.add(ERROR_PREFIX + "bad_row", bad)
    return rows


def _as_row(item: object, max_event_bytes: int) -> Row | None:
    if not isinstance(item, list) or len(item) != 6:
        return None
    uuid, name, time, run_id, props, size = item
    if not all(isinstance(t, str) for t in (uuid, name, time, run_id, props)):
        return None
    # The size track() gave it (name plus props, in characters), within its cap.
    if type(size) is not int or size != len(name) + len(props) or size > max_event_bytes:
        return None
    try:
        if not isinstance(json.loads(props), dict):
            return None
    except ValueError:
        return None
    return Row(uuid, name, time, run_id, props, size)


def _append(path: Path, items: list[object]) -> bool:
    data = b"".join(
        json.dumps(item, sort_keys=True, separators=(",", ":")).encode() + b"\n" for item in items
    )
    try:
        fd = open_private(path, append=True)
    except OSError:
        return False
    try:
        return os.write(fd, data) == len(data)
    except OSError:
        return False
    finally:
        os.close(fd)


def _take(state_dir: Path, name: str, max_line: int) -> Iterator[object]:
    """Each JSON line of the sidecar ``name``, which is gone afterwards.

    The file is renamed first, so lines appended meanwhile by another process
    land in a new sidecar, not in one being deleted. A crash between folding
    and unlinking would fold those lines twice: a count over-counted, or a row
    stored twice under the same uuid, which the collector keeps once.
    """
    taking = state_dir / f"{name}.{os.getpid()}"
    try:
        os.replace(state_dir / name, taking)
    except OSError:
        return
    try:
        with open(taking, "rb") as f:
            lines = f.readlines()
    except OSError:
        lines = []
    finally:
        try:
            os.unlink(taking)
        except OSError:
            pass
    for raw in lines:
        try:
            # None for a line that is not JSON: the caller counts what it skips.
            yield json.loads(raw) if len(raw) <= max_line else None
        except ValueError:
            yield None
