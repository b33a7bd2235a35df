"""``drops.pending``: loss counts that could not reach SQLite, kept on disk.

At exit, a spool locked by another process (a ``sqlite3`` session, say) or
already closed cannot take the last counts. Rather than lose them, the host
appends one JSON line (``{"reason": n, ...}``) to this file with O_APPEND,
which is atomic for a short line on every local filesystem; the next host
that opens the spool folds the file into the ``drops`` table (see
``Writer``). Only counts are written here, never events.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from .._policy import SIDECAR_MAX_LINE
from ._paths import open_private

__all__ = ["SIDECAR_NAME", "append_losses", "take_losses"]

SIDECAR_NAME = "drops.pending"


def append_losses(state_dir: Path, counts: Mapping[str, int]) -> bool:
    """Append ``counts`` as one line; False if even that failed. Never raises."""
    clean = {str(k): int(v) for k, v in counts.items() if int(v) > 0}
    if not clean:
        return True
    line = (json.dumps(clean, sort_keys=True, separators=(",", ":")) + "\n").encode()
    try:
        fd = open_private(state_dir / SIDECAR_NAME, append=True)
    except OSError:
        return False
    try:
        return os.write(fd, line) == len(line)
    except OSError:
        return False
    finally:
        os.close(fd)


def take_losses(state_dir: Path) -> dict[str, int]:
    """Read and remove the sidecar; ``{}`` when there is none. Never raises.

    The file is renamed first, so lines appended meanwhile by another process
    land in a new sidecar, not in one being deleted. A crash between folding
    and unlinking would count those lines twice: over-counting a loss is the
    safe side.
    """
    path = state_dir / SIDECAR_NAME
    taking = state_dir / f"{SIDECAR_NAME}.{os.getpid()}"
    try:
        os.replace(path, taking)
    except OSError:
        return {}
    totals: dict[str, int] = {}
    try:
        with open(taking, "rb") as f:
            for raw in f:
                if len(raw) > SIDECAR_MAX_LINE:
                    continue
                try:
                    item = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(item, dict):
                    continue
                for reason, n in item.items():
                    if isinstance(reason, str) and type(n) is int and 0 < n < 2**40:
                        totals[reason] = totals.get(reason, 0) + n
    except OSError:
        return totals
    finally:
        try:
            os.unlink(taking)
        except OSError:
            pass
    return totals
