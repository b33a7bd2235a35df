"""What each control command does, as plain functions returning JSON-ready dicts.

Shared by the ``telespool`` click CLI, the host's click group and the argparse
helpers, so every front end behaves the same. Nothing here constructs a
``Telemetry``: no spool, process or socket comes into being from looking.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .._protocol import CONFIG_KEY
from ..install import _consent
from ..install._identity import read_install_id
from ..store._clear import clear_state_dir, purge_state_dir
from ..store._paths import (
    MARKER_NAME,
    UnsafeStateDir,
    default_state_dir,
    ensure_state_dir,
    env_prefix,
    secure_create,
    validate_app,
)
from ..store._rows import UPLOAD_KEY
from ..store._sidecar import count_rows
from ..store._writer import split_errors
from ._errors import CliError
from ._reader import read_events, read_snapshot

__all__ = [
    "Target",
    "disable",
    "enable",
    "flush",
    "inspect",
    "purge",
    "schema_reference",
    "schema_validate",
    "status",
]


@dataclass(frozen=True)
class Target:
    """Which app's telemetry a command acts on, and where its state lives."""

    app: str
    state_dir: Path

    @classmethod
    def resolve(cls, app: str | None, state_dir: str | os.PathLike[str] | None) -> Target:
        if not app:
            raise CliError("missing --app NAME (the app whose telemetry to act on)", 2)
        try:
            validate_app(app)
        except ValueError as exc:
            raise CliError(str(exc), 2) from exc
        if state_dir is not None:
            return cls(app, Path(state_dir).expanduser().absolute())
        try:
            return cls(app, default_state_dir(app))
        except Exception as exc:  # platformdirs cannot place it: say so in one line
            raise CliError(f"cannot locate the state dir for {app!r}: {exc}") from exc


def _existing_dir(target: Target) -> Path | None:
    try:
        return target.state_dir if target.state_dir.is_dir() else None
    except OSError:
        return None


def _decision(target: Target, env: Mapping[str, str]) -> _consent.Decision:
    # The CLI cannot know a host's in-code flags; it shows what this environment decides.
    return _consent.resolve(
        target.app, enabled=True, state_dir=_existing_dir(target), env=env, allow_in_ci=False
    )


def status(target: Target, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Consent and reason, paths, queue size and age, drops, upload state."""
    env = os.environ if env is None else env
    decision = _decision(target, env)
    existing = _existing_dir(target)
    snap = read_snapshot(existing) if existing is not None else None
    meta = snap.meta if snap is not None else {}
    config = _as_mapping(meta.get(CONFIG_KEY))
    upload = _as_mapping(meta.get(UPLOAD_KEY))
    endpoint = env.get(f"{env_prefix(target.app)}_TELEMETRY_ENDPOINT") or config.get("endpoint")
    oldest = snap.oldest if snap is not None else None
    dropped, errors = split_errors(snap.dropped if snap is not None else {})
    return {
        "app": target.app,
        "enabled": decision.enabled,
        "reason": decision.reason,
        "explanation": _consent.explain(decision, target.app),
        "debug": _consent.debug_mode(target.app, env),
        "state_dir": str(target.state_dir),
        "state_dir_exists": existing is not None,
        "opt_out_marker": existing is not None and (existing / MARKER_NAME).exists(),
        "spool_exists": snap is not None and snap.exists,
        "install_id": _install_id(existing),
        "endpoint": endpoint,
        "format": config.get("format"),
        "app_version": config.get("app_version"),
        "queued": snap.queued if snap is not None else 0,
        # Rows an exit under a lock left for the next host or upload pass.
        "pending": count_rows(existing) if existing is not None else 0,
        "bytes": snap.bytes if snap is not None else 0,
        "disk_bytes": _disk_bytes(existing),
        "oldest": oldest,
        "oldest_age_s": _age_s(oldest),
        # Same split as Telemetry.status(): events lost vs errors swallowed.
        "dropped": dropped,
        "errors": errors,
        "unreported_drops": dict(snap.unreported) if snap is not None else {},
        "last_upload_at": upload.get("last_upload_at"),
        "next_attempt_at": upload.get("next_attempt_at"),
        "last_outcome": upload.get("last_outcome"),
    }


def inspect(target: Target, *, limit: int | None, event: str | None) -> dict[str, Any]:
    """The most recent ``limit`` queued events (oldest first), read-only."""
    if limit is not None and limit < 0:
        raise CliError("--limit must not be negative", 2)
    existing = _existing_dir(target)
    if existing is None:
        return {"state_dir": str(target.state_dir), "total": 0, "events": []}
    events, total = read_events(existing, limit=limit, event=event)
    return {"state_dir": str(target.state_dir), "total": total, "events": events}


def purge(target: Target) -> dict[str, Any]:
    """Delete queued events, drop counts and the install id; keep an opt-out.

    ``failed`` names every file left behind and why; ``ok`` is false then.
    """
    existing = _existing_dir(target)
    if existing is None:
        return {
            "state_dir": str(target.state_dir),
            "removed": [],
            "cleared_events": 0,
            "failed": {},
            "ok": True,
        }
    report = clear_state_dir(existing)
    return {
        "state_dir": str(existing),
        "removed": report.removed,
        "cleared_events": report.cleared,
        "failed": dict(report.failed),
        "ok": report.ok,
    }


def disable(target: Target) -> dict[str, Any]:
    """Write the opt-out marker and delete everything else in the state dir."""
    try:
        ensure_state_dir(target.state_dir)
    except UnsafeStateDir as exc:
        raise CliError(str(exc)) from exc
    marker = target.state_dir / MARKER_NAME
    try:
        secure_create(marker)
    except OSError as exc:
        raise CliError(f"cannot write the opt-out marker {marker}: {exc.strerror or exc}") from exc
    report = purge_state_dir(target.state_dir, keep_marker=True)
    return {
        "state_dir": str(target.state_dir),
        "marker": str(marker),
        "removed": report.removed,
        "cleared_events": report.cleared,
        "failed": dict(report.failed),
        "ok": report.ok,
    }


def enable(target: Target, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Remove the opt-out marker; the next enabled run starts a new install id."""
    env = os.environ if env is None else env
    marker = target.state_dir / MARKER_NAME
    was_disabled = False
    try:
        marker.unlink()
        was_disabled = True
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CliError(f"cannot remove the opt-out marker {marker}: {exc.strerror or exc}") from exc
    if was_disabled:
        try:
            target.state_dir.rmdir()  # only succeeds if the marker was all there was
        except OSError:
            pass
    decision = _decision(target, env)
    return {
        "state_dir": str(target.state_dir),
        "was_disabled": was_disabled,
        "enabled": decision.enabled,
        "reason": decision.reason,
        "explanation": _consent.explain(decision, target.app),
    }


Progress = Callable[[Mapping[str, Any]], None]


def flush(
    target: Target,
    *,
    timeout: float,
    on_progress: Progress | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Drain the spool now through the uploader, bounded by ``timeout`` seconds.

    ``outcome`` is the uploader's (``empty`` means all sent; see
    ``spool.launch._flush.FlushResult``), or ``disabled`` / ``no_spool`` when there
    was nothing to do. ``ok`` is true when nothing is left queued.
    """
    env = os.environ if env is None else env
    if not timeout > 0:
        raise CliError("--timeout must be positive", 2)
    decision = _decision(target, env)
    existing = _existing_dir(target)
    base = {"state_dir": str(target.state_dir), "sent": 0, "remaining": 0, "dropped": {}}
    if not decision.enabled:
        return {**base, "outcome": "disabled", "reason": decision.reason, "ok": True}
    if existing is None or not _has_spool(existing):
        return {**base, "outcome": "no_spool", "ok": True}
    try:
        from ..launch._flush import run_flush
    except ImportError as exc:
        raise CliError(f"flush is not available in this build: {exc}") from exc
    try:
        # A person asked to send now: a pending backoff does not apply (force).
        result = run_flush(existing, timeout, on_progress, force=True)
    except (OSError, ValueError) as exc:
        raise CliError(f"flush failed: {exc}") from exc
    data = {"state_dir": str(existing), **_as_dict(result)}
    data["ok"] = data.get("outcome") == "empty"
    return data


def schema_reference() -> str:
    """The bundled reference schema as JSON text."""
    from .. import Schema

    return Schema.reference().to_json()


def schema_validate(path: str) -> dict[str, Any]:
    """Load and validate a schema file: name, version and hash, or every problem."""
    from .. import Schema, SchemaError

    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read schema file {path}: {exc.strerror or exc}") from exc
    try:
        schema = Schema.loads(text)
    except SchemaError as exc:
        return {"path": path, "valid": False, "problems": list(exc.problems)}
    except ValueError as exc:
        return {"path": path, "valid": False, "problems": [str(exc)]}
    return {
        "path": path,
        "valid": True,
        "problems": [],
        "name": schema.name,
        "version": schema.version,
        "hash": schema.hash,
        "events": sorted(schema.doc.get("events", {})),
    }


# -- helpers -----------------------------------------------------------------------------
def _as_mapping(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _has_spool(state_dir: Path) -> bool:
    return (state_dir / "spool.db").is_file()


def _install_id(state_dir: Path | None) -> str | None:
    # The one reader (validated, refuses links): what the uploader sends is what status shows.
    return None if state_dir is None else read_install_id(state_dir)


def _disk_bytes(state_dir: Path | None) -> int:
    if state_dir is None:
        return 0
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.stat(state_dir / f"spool.db{suffix}").st_size
        except OSError:
            pass
    return total


def _age_s(iso: str | None) -> float | None:
    from ..store._upload_state import parse_time

    then = parse_time(iso)
    return None if then is None else round(max(time.time() - then, 0.0), 3)


def _as_dict(result: object) -> dict[str, Any]:
    if isinstance(result, Mapping):
        return dict(result)
    import dataclasses

    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    keys = ("sent", "remaining", "outcome", "dropped", "batches", "elapsed_s", "detail")
    return {k: getattr(result, k) for k in keys if hasattr(result, k)}
