"""The install identity: a random id, first run, upgrade funnel, install age.

``<state_dir>/install.json`` (mode 0600) holds a random UUID (never derived
from hardware, hostnames or users), the day it was created (days since the
epoch: the install age needs no finer clock), the app version the install ran
last and the one before it. It is created only by an enabled run, and
``first_run`` is true for exactly one run per install: creation is an atomic
exclusive link, so of two processes racing to create it exactly one wins.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import namedtuple
from pathlib import Path

from ..store._paths import INSTALL_NAME, check_regular_or_absent, open_private
from ._ids import new_run_id
from ._legacy import Legacy, read_legacy_install

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple

__all__ = ["Identity", "load_identity", "read_install_id"]

# A random UUID; or 32 hex digits, an id adopted verbatim from a legacy client
# (so the install keeps counting as one, see _legacy).
_UUID_PATTERN = (
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}|[0-9a-f]{32}"
)
_IS_WINDOWS = sys.platform == "win32"
_DAY = 86400


if TYPE_CHECKING:

    class Identity(NamedTuple):
        install_id: str
        first_run: bool  # true for exactly one run of each install
        days_since_install: int
        version: str
        previous_version: str | None  # the version this install ran before ``version``
        last_version: str | None  # the version the previous run reported (None: no run before)

else:
    Identity = namedtuple(
        "Identity",
        "install_id first_run days_since_install version previous_version last_version",
    )


def load_identity(
    state_dir: Path, app_version: str, now: float | None = None, legacy: Legacy | None = None
) -> Identity:
    """Read (or create) the install identity and record ``app_version``.

    A new install adopts ``legacy``'s id, age and last version when the old
    client left them, and is then not a first run. Call only on enabled runs.
    Raises OSError / UnsafeStateDir when the state dir cannot be used; the
    facade counts that and carries on without events.
    """
    path = state_dir / INSTALL_NAME
    clock = time.time() if now is None else now
    today = int(clock // _DAY)
    state = _read(path)
    first_run = False
    last_version: str | None = None
    if state is None:
        state = {
            "install_id": new_run_id(),
            "created_day": today,
            "version": app_version,
            "previous_version": None,
        }
        adopted = read_legacy_install(legacy) if legacy is not None else None
        if adopted is not None:
            if adopted.install_id is not None:
                state["install_id"] = adopted.install_id
            if adopted.created_at is not None:
                # The seed's install age is elapsed time since the id file's mtime.
                state["created_day"] = today - max(0, int((clock - adopted.created_at) // _DAY))
            if adopted.last_version is not None:
                state["version"] = last_version = adopted.last_version
        if _create_exclusive(path, state):
            first_run = adopted is None or not adopted.had_first_run
        else:  # another process created it first: theirs is the install
            state = _read(path) or state
            last_version = state["version"]
    else:
        last_version = state["version"]
    if state["version"] != app_version:
        state["previous_version"] = state["version"]
        state["version"] = app_version
        _replace(path, state)
    return Identity(
        install_id=state["install_id"],
        first_run=first_run,
        days_since_install=max(0, today - state["created_day"]),
        version=app_version,
        previous_version=state["previous_version"],
        last_version=last_version,
    )


def read_install_id(state_dir: Path) -> str | None:
    """The install id, or None if there is none (or it is unreadable). Never raises."""
    try:
        state = _read(state_dir / INSTALL_NAME)
    except Exception:
        return None
    return None if state is None else str(state["install_id"])


def _read(path: Path) -> dict[str, Any] | None:
    """The valid install state, or None when absent or corrupt."""
    if not check_regular_or_absent(path):  # refuses symlinks, FIFOs, directories
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        raw = f.read(4096)
    try:
        state = json.loads(raw)
    except ValueError:
        return None
    ok = (
        isinstance(state, dict)
        and isinstance(state.get("install_id"), str)
        and re.fullmatch(_UUID_PATTERN, state["install_id"]) is not None
        and isinstance(state.get("created_day"), int)
        and isinstance(state.get("version"), str)
        and (state.get("previous_version") is None or isinstance(state["previous_version"], str))
    )
    return state if ok else None


def _write_temp(path: Path, state: dict[str, Any]) -> Path:
    tmp = path.with_name(f"{path.name}.{new_run_id()[:8]}.tmp")
    fd = open_private(tmp, exclusive=True)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(state, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _create_exclusive(path: Path, state: dict[str, Any]) -> bool:
    """Publish ``state`` at ``path`` only if nothing is there; True if we did.

    A hard link fails when the target exists, atomically, so readers see
    either no file or a complete one. Windows (untested here): ``os.rename``
    also refuses an existing target there.
    """
    tmp = _write_temp(path, state)
    try:
        if _IS_WINDOWS:
            os.rename(tmp, path)
        else:
            os.link(tmp, path)
        return True
    except FileExistsError:
        # Decided only now, from what is there: checking for a leftover before
        # linking let a process that lost the race take the winner's fresh file
        # for a corrupt one and replace it (two first runs, seen in
        # test_racing_processes_agree_on_exactly_one_first_run under load).
        if _read(path) is not None:
            return False
        # Unreadable leftovers are replaced: the install starts over. (Two
        # processes racing over a corrupt file may both count a first run.)
        os.replace(tmp, path)
        return True
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _replace(path: Path, state: dict[str, Any]) -> None:
    tmp = _write_temp(path, state)
    try:
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise
