"""The first-run notice: a short disclosure on stderr, once per install.

Shown only when telemetry is on, stderr is a terminal, and the process is not
under CI or a test runner: a notice nobody reads (a log file, a CI job) is
noise. That it was shown is remembered by ``notice.json`` (mode 0600) in the
state dir, created with O_EXCL so that of two processes starting at once
exactly one prints it. Opting out deletes it with everything else, so opting
back in shows the notice again for the new install.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ..store._paths import env_prefix, open_private
from . import _consent

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

__all__ = [
    "NOTICE_NAME",
    "default_notice",
    "maybe_show_notice",
    "notice_shown",
    "render_notice",
]

NOTICE_NAME = "notice.json"

_DEFAULT = (
    "{app} collects anonymous usage telemetry: which commands and features are used,\n"
    "never your data, arguments or paths. Events are kept locally first in\n"
    "{state_dir}.\n"
    "{opt_out}"
)


def default_notice() -> str:
    """The notice used when the host gives none (placeholders filled by ``render_notice``)."""
    return _DEFAULT


def render_notice(text: str, *, app: str, state_dir: Path, prefix: str | None = None) -> str:
    """Fill ``{app}``, ``{prefix}``, ``{state_dir}`` and ``{opt_out}`` in ``text``.

    Plain replacement, not ``str.format``: a host's text may contain other braces.
    """
    prefix = prefix or env_prefix(app)
    opt_out = (
        f"To opt out: set DO_NOT_TRACK=1 or {prefix}_TELEMETRY_DISABLED=1, "
        f"or run `telespool --app {app} disable`."
    )
    values = {"app": app, "prefix": prefix, "state_dir": str(state_dir), "opt_out": opt_out}
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text.rstrip("\n") + "\n"


def maybe_show_notice(
    state_dir: Path,
    *,
    app: str,
    text: str | None,
    env: Mapping[str, str],
    stream: TextIO | None = None,
    prefix: str | None = None,
) -> bool:
    """Print the notice if this install has not shown it yet; True if printed.

    ``text=None`` uses the default; ``text=""`` means the host shows its own
    disclosure. Never raises: a notice must not break the host.
    """
    try:
        out = sys.stderr if stream is None else stream
        if text == "" or out is None or not out.isatty():
            return False
        if _consent.ci_vendor(env) is not None or _consent.under_test_runner(env, prefix):
            return False
        if not _claim(state_dir / NOTICE_NAME):
            return False
        out.write(
            render_notice(
                default_notice() if text is None else text,
                app=app,
                state_dir=state_dir,
                prefix=prefix,
            )
        )
        out.flush()
        return True
    except Exception:
        return False


def notice_shown(state_dir: Path) -> bool:
    """True if this state dir has already shown the notice."""
    return (state_dir / NOTICE_NAME).exists()


def _claim(path: Path) -> bool:
    try:
        fd = open_private(path, exclusive=True)
    except OSError:
        # Exists (shown before, or another process is showing it now), or the
        # dir is unusable: either way, do not show it (again).
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps({"shown_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
    return True
