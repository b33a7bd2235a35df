"""Remove everything telespool stored in a state dir."""

from __future__ import annotations

import os
from pathlib import Path

from ._paths import MARKER_NAME

__all__ = ["purge_state_dir"]


def purge_state_dir(state_dir: Path, *, keep_marker: bool) -> list[str]:
    """Delete the spool (with WAL/SHM and corrupt copies), lock and install id.

    Returns the names removed. Keeps the opt-out marker when asked, so an
    opt-out survives its own purge. Never raises; a file that cannot be
    removed is left and reported by omission.
    """
    removed: list[str] = []
    try:
        entries = list(os.scandir(state_dir))
    except OSError:
        return removed
    for entry in entries:
        if keep_marker and entry.name == MARKER_NAME:
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                continue  # never recurse: we only ever create plain files here
            os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            pass
    if not keep_marker:
        try:
            state_dir.rmdir()
        except OSError:
            pass
    return removed
