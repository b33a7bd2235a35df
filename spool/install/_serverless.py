"""Serverless sandboxes (Lambda, Cloud Run, Azure Functions, Vercel...): no detached uploader.

The platform freezes the sandbox between invocations and may destroy it at
any time, so a detached uploader would be frozen mid-POST (peers lose their
background sends exactly there). Detected by the same presence-only probes
as the ``serverless`` event context. There the host drains with
``Telemetry.flush(timeout)`` at the end of each invocation; what it leaves
stays spooled and the next warm invocation's flush sends it.

The home directory is read-only on these platforms, so when the default state
dir cannot be created, a private one under the temp dir is used (``/tmp`` is
the writable, per-sandbox scratch space, kept across warm invocations).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..store import _paths
from ._probes import serverless

__all__ = ["default_state_dir", "existing_state_dir", "platform"]


def platform(env: Mapping[str, str]) -> str | None:
    """The serverless platform this process runs on, or None."""
    try:
        found = serverless(env, Path("/"))
    except Exception:  # a probe never decides more than its own answer
        return None
    return None if found in ("none", "unknown") else found


def default_state_dir(
    app: str, env: Mapping[str, str], *, create: bool, prefix: str | None = None
) -> Path:
    """platformdirs' state dir; on a serverless platform where it cannot be made, a temp one.

    ``create=False`` only looks (opted-out and disabled runs create nothing).
    """
    path = _paths.default_state_dir(app, prefix, env)
    if platform(env) is None or env.get(f"{prefix or _paths.env_prefix(app)}_TELEMETRY_STATE_DIR"):
        return path
    try:
        if create:
            _paths.ensure_state_dir(path)
            return path
        if path.is_dir():
            return path
    except _paths.UnsafeStateDir as exc:
        if exc.reason != "unwritable":
            return path  # an unsafe dir is reported as such, not sidestepped
    except OSError:
        pass
    # Per user: another uid's directory there is refused by ensure_state_dir.
    import tempfile  # only here: it costs ``import spool`` milliseconds otherwise

    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"{app}-telemetry-{uid}"


def existing_state_dir(
    given: Path | None, app: str, env: Mapping[str, str], prefix: str
) -> Path | None:
    """The state dir if it already exists, creating nothing (for opted-out runs). Never raises."""
    path = given
    if path is None:
        try:
            path = default_state_dir(app, env, create=False, prefix=prefix)
        except Exception:  # platformdirs failing is a runtime fault, not a crash
            return None
    try:
        return path if path.is_dir() else None
    except OSError:  # e.g. a parent we may not traverse: treat as absent
        return None
