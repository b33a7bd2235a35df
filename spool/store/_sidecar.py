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

from .._losses import Losses
from .._policy import SIDECAR_MAX_LINE
from ._paths import MARKER_NAME, open_private
from ._rows import Row

__all__ = [
    "ROWS_NAME",
    "SIDECAR_NAME",
    "append_losses",
    "append_rows",
    "count_rows",
    "take_losses",
    "take_pending",
    "take_rows",
    "take_some_rows",
]

SIDECAR_NAME = "drops.pending"
ROWS_NAME = "events.pending"
# Writes of one batch of lines, if hosts keep taking the file under it.
APPEND_TRIES = 3
# A row line holds props escaped once more (a non-ASCII character becomes a
# 12-byte \\uXXXX pair), so a line can be ~12x the event's characters; past
# this it is certainly not ours. Not tied to max_event_bytes: the host that
# reads the file may run a smaller one than the host that wrote it.
ROWS_MAX_LINE = 4 * 1024 * 1024


def append_losses(state_dir: Path, counts: Mapping[str, int]) -> bool:
    """Append ``counts`` as one line; False if even that failed. Never raises.

    Like rows, not into a state dir the user has opted out of (``_append``).
    """
    clean = {str(k): int(v) for k, v in counts.items() if int(v) > 0}
    if not clean:
        return True
    return _append(state_dir / SIDECAR_NAME, [clean])


def append_rows(state_dir: Path, rows: Sequence[Row], max_file: int | None = None) -> bool:
    """Append ``rows``, one line each, in one write; False if it failed. Never raises.

    Not into a state dir the user has opted out of since (``telespool
    disable`` during this run): nothing of theirs may be kept there. With
    ``max_file`` (an exit passes its cap), False rather than grow the file
    past it: exits under a lock held for days must not fill the disk.
    """
    if not rows:
        return True
    return _append(state_dir / ROWS_NAME, [list(r) for r in rows], max_file)


def count_rows(state_dir: Path) -> int:
    """Rows waiting in ``events.pending`` (lines, read in chunks); 0 without one.

    For ``status()``: they are queued too, just not in SQLite yet (an exit
    under a lock left them, and no host or uploader pass has folded them in).
    Never raises. A line torn or not ours counts too (the fold counts those
    ``error.bad_row``); a host or pass taking the file meanwhile may make one
    look miss or see it twice.
    """
    n = 0
    try:
        with open(state_dir / ROWS_NAME, "rb") as f:
            while chunk := f.read(1 << 20):
                n += chunk.count(b"\n")
    except OSError:
        return 0
    return n


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


def take_rows(state_dir: Path) -> tuple[list[Row], int]:
    """Read and remove the rows sidecar: (rows, lines that were not a row of ours).

    A line is taken only in the shape ``append_rows`` writes (six fields, props
    a JSON object, the size track() gives). That catches torn and mangled
    lines; it is no schema check: like the spool itself, the file is trusted
    as far as its 0600 private directory is (docs/reliability.md).
    """
    rows: list[Row] = []
    bad = 0
    for item in _take(state_dir, ROWS_NAME, ROWS_MAX_LINE):
        row = _as_row(item)
        if row is None:
            bad += 1
        else:
            rows.append(row)
    return rows, bad


def take_some_rows(state_dir: Path, limit: int, max_bytes: int) -> tuple[list[Row], int, int]:
    """A slice of the rows sidecar: (rows, lines not ours, rows lost).

    At most ``limit`` rows of at most ``max_bytes`` (one row at least), so
    what a host or an uploader pass stores at once stays within one size
    check of the cap. The rest go back to the file for the next host or
    pass; "lost" counts them only if even that failed.
    """
    rows, bad = take_rows(state_dir)
    n = used = 0
    while n < min(limit, len(rows)) and (n == 0 or used + rows[n].size <= max_bytes):
        used += rows[n].size
        n += 1
    rest = rows[n:]
    lost = len(rest) if rest and not append_rows(state_dir, rest) else 0
    return rows[:n], bad, lost


def take_pending(state_dir: Path, limit: int, max_bytes: int, losses: Losses) -> list[Row]:
    """Both sidecars, for a host that opened the spool: counts restored into
    ``losses`` (lines not ours counted ``error.bad_row``) and a slice of the
    rows (``take_some_rows``) to park."""
    losses.restore(take_losses(state_dir))
    rows, bad, lost = take_some_rows(state_dir, limit, max_bytes)
    losses.error("bad_row", bad)  # both doors ignore a count of 0
    losses.add("locked", lost)
    return rows


def _as_row(item: object) -> Row | None:
    if not isinstance(item, list) or len(item) != 6:
        return None
    uuid, name, time, run_id, props, size = item
    if not all(isinstance(t, str) for t in (uuid, name, time, run_id, props)):
        return None
    # The size track() gave it: name plus props, in characters.
    if type(size) is not int or size != len(name) + len(props):
        return None
    try:
        if not isinstance(json.loads(props), dict):
            return None
    except ValueError:
        return None
    return Row(uuid, name, time, run_id, props, size)


def _append(path: Path, items: list[object], max_file: int | None = None) -> bool:
    if os.path.lexists(path.parent / MARKER_NAME):
        return True  # opted out since this run began: nothing of theirs is kept
    data = b"".join(
        json.dumps(item, sort_keys=True, separators=(",", ":")).encode() + b"\n" for item in items
    )
    for _ in range(APPEND_TRIES):
        try:
            fd = open_private(path, append=True)
        except OSError:
            return False
        try:
            if max_file is not None and os.fstat(fd).st_size + len(data) > max_file:
                return False
            if os.write(fd, data) != len(data):
                return False
            # A host taking the file renamed it between our open and our
            # write, and may have read it already: write again into the new
            # file. At worst the rows are stored twice under the same uuids,
            # which the collector keeps once; never lost.
            if _same_file(fd, path):
                return True
        except OSError:
            return False
        finally:
            os.close(fd)
    return False


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, now = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)


def _take(state_dir: Path, name: str, max_line: int) -> Iterator[object]:
    """Each JSON line of the sidecar ``name``, which is gone afterwards.

    The file is renamed first, so lines appended meanwhile by another process
    land in a new sidecar, not in one being deleted (an appender that opened
    it before the rename writes again, see ``_append``). It is unlinked once
    read: a crash of this host before it stores what it took loses those
    rows, as it would lose any row parked in its memory.
    """
    # A random suffix: pids repeat across containers sharing a state dir.
    taking = state_dir / f"{name}.{os.urandom(8).hex()}"
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
