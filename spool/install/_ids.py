"""Random identifiers. Never derived from hardware, hostnames or users."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

from .._policy import EVENT_ID_POOL
from ..store._paths import INSTALL_NAME

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

__all__ = ["forget_install", "new_event_id", "new_run_id"]

# Event ids come from a pool of random hex filled by one os.urandom() call per
# EVENT_ID_POOL ids: a getrandom() syscall per event was a third of the id's
# cost. A refill only draws the bytes (no slicing: each id is cut and
# formatted when taken), and comes in 1 of 256 calls, so it stays out of
# track()'s p99; at 1 in 64 it was 1.6% of calls at 10-24 us each, half of
# the calls past the p99 (docs/performance.md). The pool is one (hex, counter)
# pair read in one step: next() on an itertools.count is atomic under the
# GIL, so two threads never take the same slot, and threads that both find
# it used up each refill (any pair's ids are as random). A free-threaded
# build (3.13t) makes no such promise for count, so there every id draws its
# own 16 bytes (untested, like that build). A forked child drops its copy
# (see below), so it never repeats its parent's ids.
_SHARED_POOL = getattr(sys, "_is_gil_enabled", lambda: True)()
_USED_UP: tuple[str, Iterator[int]] = ("", itertools.count(EVENT_ID_POOL))
_POOL: list[tuple[str, Iterator[int]]] = [_USED_UP]
# The variant nibble (RFC 4122: binary 10xx) for each random hex digit.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def new_event_id() -> str:
    """A random (version 4) UUID string, about 4x cheaper than ``str(uuid.uuid4())``."""
    if not _SHARED_POOL:
        return _format(os.urandom(16).hex())
    while True:
        pool, slots = _POOL[0]
        i = next(slots)
        if i < EVENT_ID_POOL:
            break
        # Other threads may take every id of this refill before us: then
        # we refill again rather than fail (tests/test_host_threads.py).
        _POOL[0] = (os.urandom(16 * EVENT_ID_POOL).hex(), itertools.count())
    return _format(pool[32 * i : 32 * i + 32])


def _format(h: str) -> str:
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
    os.register_at_fork(after_in_child=lambda: _POOL.__setitem__(0, _USED_UP))
