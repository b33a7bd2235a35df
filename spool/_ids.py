"""Random identifiers. Never derived from hardware, hostnames or users."""

from __future__ import annotations

import os
from pathlib import Path

from ._paths import INSTALL_NAME

__all__ = ["forget_install", "new_event_id", "new_run_id"]


def new_event_id() -> str:
    """A random (version 4) UUID string; ~4x cheaper than ``str(uuid.uuid4())``."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_run_id() -> str:
    """Random per process: groups one run's events without identifying anyone."""
    return new_event_id()


def forget_install(state_dir: Path) -> None:
    """Delete the install id, so the next enabled run starts a new one."""
    try:
        (state_dir / INSTALL_NAME).unlink()
    except FileNotFoundError:
        pass
