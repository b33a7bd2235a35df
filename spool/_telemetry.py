"""``Telemetry``: the one object a host holds.

Programmer errors (bad app name, endpoint, format, policy) raise at
construction. After that nothing raises: ``track()`` sanitizes, appends one
row to the local spool and returns; every fault is counted by reason.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from . import _hooks
from ._args import check_args, valid_prefix
from ._errors import ConfigError
from ._losses import ERROR_PREFIX, Losses
from ._policy import Policy
from ._protocol import CONFIG_KEY, UploaderConfig
from .install import _consent, _ids, _notice, _serverless
from .install._endpoint import validate_endpoint
from .install._env import check_env
from .install._legacy import Legacy
from .install._lifecycle import lifecycle_events
from .install._sampling import keep_run, make_sampler
from .launch._flush import FlushResult, run_flush
from .launch._trigger import Trigger
from .schema._schema import Schema
from .store._clear import clear_for_host, purge_state_dir
from .store._paths import UnsafeStateDir, ensure_state_dir, validate_app
from .store._rows import Row, iso_time
from .store._sidecar import append_losses
from .store._status import status_snapshot, take_bad_rows
from .store._store import Spool
from .store._writer import Writer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Telemetry"]

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
        env_prefix: str | None = None,
        startup_props: Mapping[str, object] | None = None,
        legacy: Legacy | None = None,
        **policy_overrides: Any,
    ) -> None:
        env = os.environ
        self.app = validate_app(app)
        # The environment variables' prefix: getpatter's app is "getpatter", its prefix PATTER.
        self.env_prefix = valid_prefix(env_prefix, self.app)
        self._startup_props = dict(startup_props or {})  # lifecycle props only the host knows
        self._legacy = legacy
        check_args(version, format, enabled, notice)
        self.version = version
        self.format = format
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
        # The argument is the programmer's (a bad one raises); the environment
        # is the user's: a bad value there is ignored and counted (see _env).
        endpoint = validate_endpoint(endpoint)
        prefix = self.env_prefix
        checked = check_env(self.app, env, prefix)
        self.endpoint = checked.endpoint or endpoint
        self.config_errors = checked.problems
        self.run_id = _ids.new_run_id()
        self.debug = _consent.debug_mode(app, env, prefix)
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.decision = _consent.Decision(False, "not_started")
        # The one door for every loss this process records (see _losses).
        self._losses = Losses()
        if checked.problems:
            # In memory until a writer exists (never, when opted out: status() shows it).
            self._losses.add(ERROR_PREFIX + "config", len(checked.problems))
        self._writer: Writer | None = None
        # The writer while track() may use it: None when off, in debug mode or
        # closed, so the hot path tests one attribute.
        self._live_writer: Writer | None = None
        self._closed = False
        self._orphan_guard: _hooks.Guard | None = None  # see _hooks.register
        self._count_fn = self._count  # bound once: track() passes it per call
        self._sampler = make_sampler(self.schema, env, prefix, self.run_id)
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
            prefix=self.env_prefix,
            legacy_markers=self._legacy.markers if self._legacy is not None else (),
        )
        if not self.decision.enabled:
            # Create nothing. A real opt-out also removes whatever an earlier
            # opted-in run left. CI and test-runner auto-disable do not: an SDK's
            # own pytest run must not wipe its developer's real queue.
            existing = self._state_dir_if_exists()
            if existing is not None and self.decision.user_opt_out:
                # Bounded like close(): an inspector's lock must not stall construction.
                report = purge_state_dir(
                    existing, keep_marker=True, busy_s=self.policy.close_wait_ms / 1000.0
                )
                if not report.ok:
                    self._losses.add(ERROR_PREFIX + "purge_incomplete")
            return
        if self.debug:
            return
        self._start()

    # -- construction --------------------------------------------------------------------
    def _state_dir_if_exists(self) -> Path | None:
        return _serverless.existing_state_dir(self.state_dir, self.app, os.environ, self.env_prefix)

    def _start(self) -> None:
        try:
            if self.state_dir is None:
                self.state_dir = _serverless.default_state_dir(
                    self.app, os.environ, create=True, prefix=self.env_prefix
                )
            ensure_state_dir(self.state_dir)
        except UnsafeStateDir as exc:
            self._fault = exc.reason
            self._fault_detail = str(exc)
            return
        except Exception as exc:  # pragma: no cover - platformdirs failure
            self._fault = "unwritable"
            self._fault_detail = str(exc)
            return
        self._writer = Writer(self.state_dir, self.policy, self._losses)
        self._live_writer = self._writer
        self._writer.run_locked(self._write_config)
        policy = self.policy
        self._writer.run_locked(lambda spool: spool.expire_if_due(policy.max_age_days))
        if self.endpoint is not None:
            # "Next start": drain what earlier runs left, if due (see _trigger),
            # after _write_config; the helper spawns: never a call's cost.
            self._trigger = Trigger(self.state_dir, self.policy, note_error=self._writer.note_error)
            self._writer.helper.trigger = self._trigger
            self._writer.helper.kick("trigger")
        self._orphan_guard = _hooks.register(self, self._writer)
        # The schema's lifecycle events; install.json is created here, on enabled runs only.
        startup = lifecycle_events(
            self.schema,
            self.state_dir,
            self.version,
            self._count,
            startup_props=self._startup_props,
            legacy=self._legacy,
        )
        for event, props in startup:
            self.track(event, **props)
        _notice.maybe_show_notice(
            self.state_dir, app=self.app, text=self._notice, env=os.environ, prefix=self.env_prefix
        )

    def _write_config(self, spool: Spool) -> None:
        """Store what the detached uploader needs, so it only needs the state dir."""
        config = UploaderConfig(
            app=self.app,
            env_prefix=self.env_prefix,
            app_version=self.version,
            endpoint=self.endpoint,
            format=self.format,
            schema_name=self.schema.name,
            schema_version=self.schema.version,
            schema_hash=self.schema.hash,
            policy=self.policy,
        ).to_row()
        if spool.get_meta(CONFIG_KEY) != config:  # a hand-edited row reads as None: rewritten
            spool.set_meta(CONFIG_KEY, config)
        take_bad_rows(spool, self._losses)

    def _after_fork_in_child(self) -> None:
        # A forked child is a new run: its events must not share the parent's run id.
        self.run_id = _ids.new_run_id()
        if self._sampler is not None:  # the keep decision is per run
            self._sampler.keep = keep_run(self.run_id, self._sampler.rate)
        if self._writer is not None:
            self._writer.after_fork_in_child()  # resets the shared Losses too
        else:
            self._losses.after_fork_in_child()

    # -- the call path --------------------------------------------------------------------
    def track(self, name: str, **props: Any) -> None:
        """Record one event. Never raises, never does network I/O, never blocks."""
        try:
            sampler = self._sampler  # None unless the rate is below 1
            if (
                sampler is not None
                and name.__class__ is str
                and name in sampler.events
                and not sampler.apply(name, props)
            ):
                self._count("sampled")
                return
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
                # Long-lived host: a counter or one clock read per call; the
                # check and any spawn run on the helper thread.
                writer.helper.kick("trigger")
        except Exception:
            # The last line of defence: count it, never let it reach the host.
            self._count("error")

    def _track_without_spool(self, name: str, props: Mapping[str, Any]) -> None:
        if not self.decision.enabled:
            return
        if self._closed:
            # From an exit hook that ran after ours: the spool is closed, so
            # the loss goes straight to the sidecar (folded in at next start).
            if self.state_dir is None or not append_losses(self.state_dir, {"after_close": 1}):
                self._losses.add("after_close")
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
        self._losses.add(reason, n)

    # -- inspection and control -------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """A JSON-serializable snapshot. Never raises, whatever the spool holds."""
        out = {
            "app": self.app,
            "enabled": self.decision.enabled,
            "reason": self.decision.reason,
            "debug": self.debug,
            "state_dir": str(self.state_dir) if self.state_dir is not None else None,
            "endpoint": self.endpoint,
            "format": self.format,
            "config_errors": dict(self.config_errors),
            "fault": getattr(self, "_fault_detail", None),
        }
        return status_snapshot(out, self._writer, self._losses, self.policy.lock_wait_ms)

    def purge(self) -> None:
        """Delete every queued event, drop count and the install id. Never raises.

        The same clear as ``telespool purge`` (see spool/store/_clear.py); a file
        that could not be deleted is counted as error ``purge_incomplete``.
        """
        try:
            state_dir = self._state_dir_if_exists() if self.state_dir is None else self.state_dir
            self._losses.clear()  # counts not yet written are purged too
            if state_dir is None or not state_dir.is_dir():
                return
            if not clear_for_host(state_dir, self._writer, self.policy.close_wait_ms):
                self._count(ERROR_PREFIX + "purge_incomplete")
        except Exception:
            self._count(ERROR_PREFIX + "purge")

    def close(self) -> None:
        """Write anything buffered and release the spool. Idempotent; never raises."""
        if self._closed:
            return
        self._closed = True
        self._live_writer = None
        if self._orphan_guard is not None:
            self._orphan_guard.detach()
        # One deadline for the whole close: helper, parked rows, claim, release.
        deadline = time.monotonic() + self.policy.close_wait_ms / 1000.0
        try:
            writer = self._writer
            if writer is not None:
                due = False
                if self._trigger is not None:
                    # At exit: write the buffer, claim an uploader run if due,
                    # close the spool, then start the child (never slowing the close).
                    writer.helper.stop(max(deadline - time.monotonic(), 0.0))
                    if writer.sync(deadline=deadline):
                        due = writer.run_locked(self._trigger.claim, wait_ms=0) is True
                writer.close(deadline)
                if due and self._trigger is not None:
                    self._trigger.spawn()
        except Exception:
            self._count("error")

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

    async def aflush(self, timeout: float = 10.0) -> FlushResult:
        """``flush()`` for async hosts: the event loop keeps running meanwhile.

        The blocking wait for the uploader child runs on the loop's default
        executor, so other tasks are served while it drains. Never raises.
        """
        try:
            import asyncio

            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, self.flush, timeout)
        except Exception as exc:
            return FlushResult("error", detail=f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- process hooks (spool/_hooks.py): none of them raises ------------------------------
    def _at_exit(self) -> None:
        self.close()

    def _before_fork(self) -> object:
        writer = self._writer
        return None if writer is None or self._closed else writer.before_fork()

    def _after_fork_in_parent(self, held: object) -> None:
        if self._writer is not None and isinstance(held, tuple):
            self._writer.after_fork_in_parent(held)
