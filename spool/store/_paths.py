"""Where telespool keeps its files, and whether that place is safe to use.

The state dir holds everything: ``spool.db`` (with ``-wal``/``-shm``),
``upload.lock``, the opt-out marker ``disabled``, ``install.json`` and, after
an exit under another process's lock, ``events.pending``/``drops.pending``.
Directory mode 0700, files 0600. A directory owned by someone else, or one that
group/others can write, is refused: another user could then read or plant data.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from .._errors import ConfigError

__all__ = [
    "DB_NAME",
    "INSTALL_NAME",
    "LOCK_NAME",
    "MARKER_NAME",
    "UnsafeStateDir",
    "check_regular_or_absent",
    "default_state_dir",
    "ensure_state_dir",
    "env_prefix",
    "open_private",
    "secure_create",
    "validate_app",
]

DB_NAME = "spool.db"
LOCK_NAME = "upload.lock"
MARKER_NAME = "disabled"
INSTALL_NAME = "install.json"

_APP_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_IS_WINDOWS = sys.platform == "win32"


class UnsafeStateDir(Exception):
    """The state dir cannot be used; ``reason`` is the drop reason to count."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def validate_app(app: object) -> str:
    if not isinstance(app, str) or not _APP_RE.fullmatch(app):
        raise ConfigError(
            f"app must match [a-z0-9][a-z0-9_-]{{0,63}} (lower-case, e.g. 'my-sdk'), got {app!r}"
        )
    return app


def env_prefix(app: str) -> str:
    """``my-sdk`` -> ``MY_SDK``: the prefix of the app's environment variables."""
    return app.upper().replace("-", "_")


def default_state_dir(
    app: str, prefix: str | None = None, env: Mapping[str, str] | None = None
) -> Path:
    """``{PREFIX}_TELEMETRY_STATE_DIR`` used literally if set, else the platform's state dir."""
    e = os.environ if env is None else env
    override = e.get(f"{prefix or env_prefix(app)}_TELEMETRY_STATE_DIR")
    if override:
        return Path(override)
    # Imported here, not at module import: keeps ``import spool`` stdlib-only.
    import platformdirs

    return Path(platformdirs.user_state_path(app)) / "telemetry"


def ensure_state_dir(path: Path) -> None:
    """Create ``path`` (0700) if needed and refuse it when it is not safe.

    Raises UnsafeStateDir with reason ``unwritable`` or ``insecure_dir``.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise UnsafeStateDir("unwritable", f"cannot create state dir {path}: {exc}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeStateDir("insecure_dir", f"state dir {path} is not a directory")
    check_owner_and_mode(path, st)
    if not os.access(path, os.W_OK | os.X_OK):
        raise UnsafeStateDir("unwritable", f"state dir {path} is not writable")


def check_owner_and_mode(path: Path, st: os.stat_result) -> None:
    # Windows has no POSIX owner/mode bits; its per-user profile ACLs protect
    # %LOCALAPPDATA%. This branch is untested here (only Linux runs CI).
    if _IS_WINDOWS:
        return
    if st.st_uid != os.getuid():
        raise UnsafeStateDir("insecure_dir", f"state dir {path} is owned by uid {st.st_uid}")
    if st.st_mode & 0o022:
        raise UnsafeStateDir(
            "insecure_dir",
            f"state dir {path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})",
        )


def check_regular_or_absent(path: Path) -> bool:
    """True if ``path`` exists as a regular file, False if absent.

    Raises UnsafeStateDir(``unusable_path``) for a directory, FIFO, socket or
    symlink: opening a FIFO would block the host forever, a symlink could point
    anywhere.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise UnsafeStateDir("unwritable", f"cannot stat {path}: {exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeStateDir("unusable_path", f"{path} exists and is not a regular file")
    return True


# Never follow a symlink planted at one of our names, never leak the fd to a child.
# O_BINARY: Windows opens in text mode otherwise, writing CRLF (untested here).
_PRIVATE_FLAGS = (
    os.O_CREAT
    | os.O_WRONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def open_private(path: Path, *, exclusive: bool = False, append: bool = False) -> int:
    """Open (creating with mode 0600) ``path`` for writing; the fd. Raises OSError.

    The one way telespool creates a file: the spool, the opt-out marker, the
    notice claim, the install id's temp file and the two exit sidecars. ``exclusive``
    fails with FileExistsError when it exists. Windows ignores the mode
    (untested here): the per-user state dir's ACL is what protects it there.
    """
    flags = _PRIVATE_FLAGS | (os.O_EXCL if exclusive else 0) | (os.O_APPEND if append else 0)
    return os.open(path, flags, 0o600)


def secure_create(path: Path) -> None:
    """Create an empty private file unless it exists."""
    os.close(open_private(path))
