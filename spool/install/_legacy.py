"""A hand-written client's state, honoured by an SDK that moves onto telespool.

A maintainer migrating must never re-enable telemetry for a user who opted out
with the old client, and must not count the same install twice. ``Legacy``
names the old client's state directories and file names; telespool only ever
reads them (it never writes, moves or deletes the old client's files):

- any of its opt-out markers keeps telemetry off (``Decision.reason ==
  "legacy_marker"``), checked in every directory, whichever the old client
  would have used;
- a new telespool install adopts its install id, install age and last
  version instead of minting a new id, and does not emit ``first_run``;
- its first-run marker alone also means the install has had its first run.

``Legacy.getpatter()`` is the preset for getpatter 0.7.0 (docs/migrating.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .._record import Record

__all__ = ["Legacy", "LegacyInstall", "read_legacy_install"]

_HEX32 = re.compile(r"[0-9a-f]{32}")
# getpatter's install_id._VERSION_RE: what its ``version`` file may hold.
_VERSION = re.compile(r"[0-9][0-9a-z.+-]{0,31}")


class Legacy(Record):
    """Where an earlier client kept its state, first the place it would read first."""

    _fields = ("dirs", "marker", "install_id", "first_run", "version")
    dirs: tuple[Path, ...]
    marker: str  # the opt-out marker's file name in each dir
    install_id: str  # a file holding 32 lowercase hex digits
    first_run: str  # a file whose presence means the first run happened
    version: str  # a file holding the last version the install ran

    @classmethod
    def of(
        cls,
        dirs: Sequence[str | os.PathLike[str]],
        *,
        marker: str = "telemetry-disabled",
        install_id: str = "install-id",
        first_run: str = "first-run",
        version: str = "version",
    ) -> Legacy:
        paths = tuple(Path(d).expanduser() for d in dirs)
        return cls(paths, marker, install_id, first_run, version)

    @classmethod
    def getpatter(cls, env: Mapping[str, str] | None = None) -> Legacy:
        """getpatter 0.7.0's state dirs: every place any of its versions used.

        Its own order: ``PATTER_TELEMETRY_STATE_DIR``, ``$XDG_STATE_HOME/getpatter``,
        the bare ``$XDG_STATE_HOME`` (before 0.6.8), ``~/.getpatter``. It reads
        only one of the last three, depending on ``XDG_STATE_HOME``; telespool
        honours a marker in any of them, so a move of that variable cannot
        undo an opt-out.
        """
        e = os.environ if env is None else env
        dirs: list[str | Path] = []
        if e.get("PATTER_TELEMETRY_STATE_DIR"):
            dirs.append(e["PATTER_TELEMETRY_STATE_DIR"])
        xdg = e.get("XDG_STATE_HOME")
        if xdg:
            dirs += [Path(xdg) / "getpatter", xdg]
        dirs.append(Path("~/.getpatter"))
        return cls.of(dirs)

    @property
    def markers(self) -> tuple[Path, ...]:
        return tuple(d / self.marker for d in self.dirs)


class LegacyInstall(Record):
    """What the old client knew about this install (``None``: nothing)."""

    _fields = ("install_id", "created_at", "last_version", "had_first_run")
    install_id: str | None
    created_at: float | None  # the install-id file's mtime: the seed's install age
    last_version: str | None
    had_first_run: bool


def _read_small(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(256).strip()
    except (OSError, ValueError):
        return None


def read_legacy_install(legacy: Legacy) -> LegacyInstall:
    """The old client's install state, first valid id in ``dirs`` order. Never raises."""
    install_id = created = version = None
    had_first_run = False
    for d in legacy.dirs:
        try:
            if install_id is None:
                text = _read_small(d / legacy.install_id)
                if text is not None and _HEX32.fullmatch(text):
                    install_id = text
                    created = (d / legacy.install_id).stat().st_mtime
            if version is None:
                text = _read_small(d / legacy.version)
                if text and _VERSION.fullmatch(text):
                    version = text
            had_first_run = had_first_run or (d / legacy.first_run).exists()
        except OSError:
            continue
    return LegacyInstall(install_id, created, version, had_first_run or install_id is not None)
