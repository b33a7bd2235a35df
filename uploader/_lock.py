"""One uploader per state dir: a non-blocking ``FileLock`` on ``upload.lock``."""

from __future__ import annotations

from pathlib import Path

import filelock

from spool._policy import LOCK_POLL_S
from spool.store._paths import LOCK_NAME, check_regular_or_absent

__all__ = ["try_lock"]


def try_lock(state_dir: Path, wait_s: float = 0.0) -> filelock.BaseFileLock | None:
    """The held lock, or None when another uploader holds it (after ``wait_s``).

    ``wait_s=0`` is the detached uploader: a second one exits at once. A flush
    may wait a little for a running drain to finish instead.
    """
    path = state_dir / LOCK_NAME
    # A symlink or FIFO planted here must not be opened (UnsafeStateDir raises).
    check_regular_or_absent(path)
    lock = filelock.FileLock(str(path), mode=0o600)
    try:
        lock.acquire(timeout=max(wait_s, 0.0), poll_interval=LOCK_POLL_S)
    except filelock.Timeout:
        return None
    return lock
