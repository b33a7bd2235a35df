"""``Telemetry``: the one object a host holds.

Programmer errors (bad app name, endpoint, format, policy) raise at
construction. After that nothing raises: ``track()`` sanitizes, appends one
row to the local spool and returns; every fault is counted by reason.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
import weakref
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from . import _consent, _ids, _notice, _serverless
from ._endpoint import validate_endpoint
from ._errors import ConfigError
from ._flush import FlushResult, run_flush
from ._lifecycle import lifecycle_events
from ._paths import UnsafeStateDir, ensure_state_dir, env_prefix, validate_app
from ._policy import Policy
from ._purge import purge_state_dir
from ._schema import Schema
from ._store import Row, Spool, iso_time
from ._trigger import Trigger
from ._writer import Writer, split_errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Telemetry"]

FORMATS = ("json", "otlp", "otlp-proto")
# A row without namedtuple's Python-level __new__ (a fifth of a microsecond).
_new_row = tuple.__new__


class Telemetry:
    """Local-first usage telemetry for one app.

    ``track()`` never raises, never touches the network and never waits more
    than ``lock_wait_ms``; ``flush()`` is the only call that may block, and only
    for its ``timeout``.
    """

    _trigger: Trigger | None = None  # set in _start() when an endpoint is configured

    def __init__(
        self,
        app: str,
        version: str,
        schema: Schema | None = None,
        endpoint: str | None = None,
        enabled: bool = True,
        state_dir: str | os.PathLike[str] | None = None,
        format: str = "json",
        notice: str | None = None,
        **policy_overrides: Any,
    ) -> None:
        env = os.environ
        self.app = validate_app(app)
        if not isinstance(version, str) or not version or len(version) > 64:
            raise ConfigError(
                f"version must be a non-empty string of at most 64 chars, got {version!r}"
            )
        if format not in FORMATS:
            raise ConfigError(f"format must be one of {FORMATS}, got {format!r}")
        if not isinstance(enabled, bool):
            raise ConfigError(f"enabled must be a bool, got {enabled!r}")
        self.version = version
        self.format = format
        if notice is not None and not isinstance(notice, str):
            raise ConfigError(f"notice must be a string or None, got {type(notice).__name__}")
        self._notice = notice  # None: the default first-run notice; "": the host shows its own
        self.policy = Policy.from_overrides(policy_overrides)
        self._max_event_bytes = self.policy.max_event_bytes  # read on every track()
        self.schema = schema if schema is not None else Schema.reference()
        if not isinstance(self.schema, Schema):
            raise ConfigError(f"schema must be a spool.Schema, got {type(schema).__name__}")
        self._sanitize_json = self.schema.sanitize_json  # bound once, for track()
        # Allowlisted context (ctx_* keys, reserved by the schema) for every event,
        # precomputed once as a JSON fragment so track() pays one string concat.
        self._context = self.schema.context(version)
        context_json = json.dumps(self._context, separators=(",", ":"), ensure_ascii=False)
        self._context_json = context_json[1:-1]
        prefix = env_prefix(app)
        self.endpoint = validate_endpoint(env.get(f"{prefix}_TELEMETRY_ENDPOINT") or endpoint)
        self.run_id = _ids.new_run_id()
        self.debug = _consent.debug_mode(app, env)
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.decision = _consent.Decision(False, "not_started")
        self._drops: Counter[str] = Counter()  # losses before any writer exists
        self._writer: Writer | None = None
        # The writer while track() may use it: None when off, in debug mode or
        # closed, so the hot path tests one attribute.
        self._live_writer: Writer | None = None
        self._closed = False
        self._count_fn = self._count  # bound once: track() passes it per call
        try:
            self._init_runtime(enabled)
        except Exception as exc:
            # Runtime faults at construction (unreadable home, broken platformdirs...)
            # never reach the host: count them and run as a no-op.
            self._fault = "error"
            self._fault_detail = f"construction failed: {type(exc).__name__}: {exc}"
            self._count("error")

    def _init_runtime(self, enabled: bool) -> None:
        env = os.environ
        self.decision = _consent.resolve(
            self.app,
            enabled=enabled,
            state_dir=self._state_dir_if_exists(),
            env=env,
            allow_in_ci=self.policy.allow_in_ci,
        )
        if not self.decision.enabled:
            # Create nothing. A real opt-out also removes whatever an earlier
            # opted-in run left. CI and test-runner auto-disable do not: an SDK's
            # own pytest run must not wipe its developer's real queue.
            existing = self._state_dir_if_exists()
            if existing is not None and self.decision.user_opt_out:
                purge_state_dir(existing, keep_marker=True)
            return
        if self.debug:
            return
        self._start()

    # -- construction --------------------------------------------------------------------
    def _state_dir_if_exists(self) -> Path | None:
        path = self.state_dir
        if path is None:
            try:
                path = _serverless.default_state_dir(self.app, os.environ, create=False)
            except Exception:  # platformdirs failing is a runtime fault, not a crash
                return None
        try:
            return path if path.is_dir() else None
        except OSError:  # e.g. a parent we may not traverse: treat as absent
            return None

    def _start(self) -> None:
        try:
            if self.state_dir is None:
                self.state_dir = _serverless.default_state_dir(self.app, os.environ, create=True)
            ensure_state_dir(self.state_dir)
        except UnsafeStateDir as exc:
            self._fault = exc.reason
            self._fault_detail = str(exc)
            return
        except Exception as exc:  # pragma: no cover - platformdirs failure
            self._fault = "unwritable"
            self._fault_detail = str(exc)
            return
        self._writer = Writer(self.state_dir, self.policy)
        self._live_writer = self._writer
        self._writer.run_locked(self._write_config)
        self._writer.run_locked(self._expire_if_due)
        if self.endpoint is not None:
            # "Next start": drain what earlier runs left, if due (see _trigger);
            # after _write_config, so the child reads this run's endpoint.
            self._trigger = Trigger(self.state_dir, self.policy)
            self._writer.run_locked(self._trigger.maybe_spawn)
        _register_exit(self)
        # The schema's lifecycle events; install.json is created here, on enabled runs only.
        startup = lifecycle_events(self.schema, self.state_dir, self.version, self._count)
        for event, props in startup:
            self.track(event, **props)
        _notice.maybe_show_notice(self.state_dir, app=self.app, text=self._notice, env=os.environ)

    def _write_config(self, spool: Spool) -> None:
        """Store what the detached uploader needs, so it only needs the state dir."""
        config = {
            "app": self.app,
            "app_version": self.version,
            "endpoint": self.endpoint,
            "format": self.format,
            "schema": {
                "name": self.schema.name,
                "version": self.schema.version,
                "hash": self.schema.hash,
            },
            "policy": self.policy.upload_settings(),
        }
        if spool.get_meta("config") != config:
            spool.set_meta("config", config)

    def _expire_if_due(self, spool: Spool) -> None:
        # One indexed lookup of the oldest row; the full expiry scan runs only
        # when something really is too old (and in every uploader pass).
        oldest = spool.oldest_time()
        max_age_s = self.policy.max_age_days * 86400.0
        if oldest is not None and oldest < iso_time(time.time() - max_age_s):
            spool.expire(max_age_s)

    def _after_fork_in_child(self) -> None:
        # A forked child is a new run: its events must not share the parent's run id.
        self.run_id = _ids.new_run_id()
        if self._writer is not None:
            self._writer.after_fork_in_child()

    # -- the call path --------------------------------------------------------------------
    def track(self, name: str, **props: Any) -> None:
        """Record one event. Never raises, never does network I/O, never blocks."""
        try:
            writer = self._live_writer
            if writer is None:
                # Off, debug, closed, or no usable spool: the rare paths.
                self._track_without_spool(name, props)
                return
            # Sanitized and encoded in one pass, the context appended.
            props_json = self._sanitize_json(name, props, self._count_fn, self._context_json)
            if props_json is None:
                return
            size = len(name) + len(props_json)
            if size > self._max_event_bytes:
                self._count("too_large")
                return
            row = (_ids.new_event_id(), name, iso_time(time.time()), self.run_id, props_json, size)
            writer.append(_new_row(Row, row))
            trigger = self._trigger
            if trigger is not None and trigger.tick():
                # Long-lived host: a counter or one clock read per call; rarely a spawn.
                writer.run_locked(trigger.maybe_spawn, wait_ms=0)
        except Exception:
            # The last line of defence: count it, never let it reach the host.
            self._count("error")

    def _track_without_spool(self, name: str, props: Mapping[str, Any]) -> None:
        if not self.decision.enabled or self._closed:
            return
        clean = self.schema.sanitize(name, props, self._count)
        if clean is None:
            return
        if self.debug:
            clean.update(self._context)
            line = {"name": name, "time": iso_time(time.time()), "props": clean}
            print(json.dumps(line, separators=(",", ":")), file=sys.stderr)
            return
        self._count(getattr(self, "_fault", "unwritable"))

    def _count(self, reason: str, n: int = 1) -> None:
        writer = self._writer
        if writer is not None:
            writer.count_drop(reason, n)
        else:
            self._drops[reason] += n

    # -- inspection and control -------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """A JSON-serializable snapshot. Never raises."""
        out: dict[str, Any] = {
            "app": self.app,
            "enabled": self.decision.enabled,
            "reason": self.decision.reason,
            "debug": self.debug,
            "state_dir": str(self.state_dir) if self.state_dir is not None else None,
            "endpoint": self.endpoint,
            "format": self.format,
            "queued": 0,
            "bytes": 0,
            "disk_bytes": 0,
            "oldest": None,
            "buffered": 0,
            "dropped": dict(self._drops),
            "errors": {},
            "fault": getattr(self, "_fault_detail", None),
            "last_upload_at": None,
            "next_attempt_at": None,
        }
        writer = self._writer
        if writer is None:
            return out
        writer.sync(wait_ms=self.policy.lock_wait_ms)
        out["buffered"] = writer.buffered
        out["errors"] = dict(writer.errors)
        if writer.fault:
            out["fault"] = writer.fault_detail or writer.fault
        dropped = Counter(self._drops)
        dropped.update(writer.pending_drops)

        def read(spool: Spool) -> None:
            out["queued"], out["bytes"] = spool.queued()
            out["disk_bytes"] = spool.disk_bytes()
            out["oldest"] = spool.oldest_time()
            dropped.update(spool.drops())
            upload = spool.get_meta("upload") or {}
            out["last_upload_at"] = upload.get("last_upload_at")
            out["next_attempt_at"] = upload.get("next_attempt_at")

        writer.run_locked(read)
        out["dropped"], out["errors"] = split_errors(dropped)
        return out

    def purge(self) -> None:
        """Delete every queued event, drop count and the install id. Never raises."""
        try:
            writer = self._writer
            if writer is not None:
                writer.pending_drops.clear()  # counts not yet written are purged too
                writer.run_locked(lambda spool: spool.clear(), wait_ms=self.policy.close_wait_ms)
            self._drops.clear()
            if self.state_dir is not None:
                _ids.forget_install(self.state_dir)
        except Exception:
            self._count("error")

    def close(self) -> None:
        """Write anything buffered and release the spool. Idempotent; never raises."""
        if self._closed:
            return
        self._closed = True
        self._live_writer = None
        try:
            if self._writer is not None:
                due = False
                if self._trigger is not None:
                    # At exit (atexit calls close): write the buffer and claim an
                    # uploader run if one is due; close the spool first, then
                    # start the child, so its start-up never slows the close.
                    self._writer.sync()
                    due = self._writer.run_locked(self._trigger.claim) is True
                self._writer.close()
                if due and self._trigger is not None:
                    self._trigger.spawn()
        except Exception:
            pass

    def flush(self, timeout: float = 10.0) -> FlushResult:
        """Drain the queue now, blocking for about ``timeout`` seconds at most.

        Runs the uploader as a child process (urllib3 never loads in the host)
        and waits for its result. Never raises: outcome ``disabled`` or
        ``no_endpoint`` says when nothing could be done.
        """
        try:
            if not self.decision.enabled or self.debug:
                reason = "debug" if self.decision.enabled else self.decision.reason
                return FlushResult("disabled", detail=reason)
            if self.endpoint is None:
                return FlushResult("no_endpoint", detail="no endpoint configured")
            writer = self._writer
            if writer is None or self.state_dir is None:
                return FlushResult("error", detail=getattr(self, "_fault_detail", "no spool"))
            if not self._closed:
                writer.sync()
            return run_flush(self.state_dir, timeout)
        except Exception as exc:
            return FlushResult("error", detail=f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _at_exit(self) -> None:
        self.close()


# atexit holds only weak references: a Telemetry the host dropped is not kept alive.
_LIVE: weakref.WeakSet[Telemetry] = weakref.WeakSet()
_EXIT_REGISTERED = False


def _register_exit(t: Telemetry) -> None:
    global _EXIT_REGISTERED
    _LIVE.add(t)
    if not _EXIT_REGISTERED:
        atexit.register(_close_all)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_all)
        _EXIT_REGISTERED = True


def _after_fork_all() -> None:
    for t in list(_LIVE):
        t._after_fork_in_child()


def _close_all() -> None:
    for t in list(_LIVE):
        t._at_exit()
