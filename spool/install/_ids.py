"""Random identifiers. Never derived from hardware, hostnames or users."""

from __future__ import annotations

import os
from pathlib import Path

from .._policy import EVENT_ID_POOL
from ..store._paths import INSTALL_NAME

__all__ = ["forget_install", "new_event_id", "new_run_id"]

# Event ids come from a pool of random hex filled by one os.urandom() call per
# 64 ids: a getrandom() syscall per event was a third of the id's cost. Only
# the raw hex is pooled; each id is formatted when taken, so a refill costs a
# few microseconds, not the 30 us that formatting 64 ids at once did (1.6% of
# track() calls). list.pop() is atomic under the GIL, so two threads never
# take the same hex; a pop that finds the pool empty refills and retries. A
# forked child empties its copy (see below), so it never repeats its parent's ids.
_POOL: list[str] = []
# The variant nibble (RFC 4122: binary 10xx) for each random hex digit.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def _refill() -> None:
    h = os.urandom(16 * EVENT_ID_POOL).hex()
    _POOL.extend([h[i : i + 32] for i in range(0, len(h), 32)])


def new_event_id() -> str:
    """A random (version 4) UUID string, about 4x cheaper than ``str(uuid.uuid4())``."""
    while True:
        try:
            h = _POOL.pop()
            break
        except IndexError:
            # Other threads may take every id of this refill before our pop:
            # refill again rather than fail (tests/test_host_threads.py).
            _refill()
    # Version nibble forced to 4, variant nibble to 8-b: a valid UUID v4
    # carrying 122 random bits, as uuid.uuid4() does.
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def new_run_id() -> str:
    """Random per process: groups one run's events without identifying anyone."""
    return new_event_id()


def forget_install(state_dir: Path) -> None:
    """Delete the install id, so the next enabled run starts a new one."""
    try:
        (state_dir / INSTALL_NAME).unlink()
    except FileNotFoundError:
        pass


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_POOL.clear)
