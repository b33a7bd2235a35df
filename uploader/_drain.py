"""One drain pass: lock, consent, batches until empty / out of budget / told to wait.

Per batch: re-check consent, read up to N events / B bytes in id order, encode,
gzip, POST, then act on the classified result. Rows are only ever deleted after
the server answered, in one transaction, matched by id range *and* uuid; there
is no "in flight" state, so a crash at any point leaves every unacked row
queued (it is re-sent and the receiver deduplicates on the event id).
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from spool._policy import Policy
from spool.install._consent import kill_switch
from spool.launch._flush import FlushResult
from spool.store._clear import purge_state_dir
from spool.store._paths import DB_NAME, INSTALL_NAME, MARKER_NAME, UnsafeStateDir
from spool.store._sqlite import classify_error
from spool.store._store import Spool
from spool.store._upload_state import (
    format_time,
    parse_time,
    read_upload_state,
    update_upload_state,
)
from spool.store._writer import ERROR_PREFIX

from ._backoff import Backoff
from ._lock import try_lock
from ._result import Ack, Drop, Retry, Split
from .wire._encode import ENCODERS, EnvelopeHeader, encode_json_fragments, gzip_body, missing_extra

__all__ = ["PAUSE_AFTER_POST_ENV", "PassResult", "drain"]

# Test-only hook: sleep this many seconds after the server accepted the pass's
# first batch and before its rows are deleted, so a test can SIGKILL a real
# uploader in that gap (or hold the lock while a second uploader starts).
PAUSE_AFTER_POST_ENV = "TELESPOOL_TEST_PAUSE_AFTER_POST"
# The uploader is off the call path: it may wait for the host's brief writes.
BUSY_MS = 5000

Progress = Callable[[dict[str, Any]], None]


@dataclass
class PassResult:
    """What one pass did. ``outcome`` is one of: empty, budget, backoff, busy,
    opted_out, no_endpoint, corrupt, error."""

    outcome: str
    sent: int = 0
    remaining: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    detail: str = ""
    next_attempt_at: str | None = None

    def as_line(self) -> dict[str, Any]:
        """The protocol's final ``done`` line: the FlushResult the host rebuilds."""
        result = FlushResult(
            self.outcome,
            self.sent,
            self.remaining,
            dict(self.dropped),
            self.detail,
            self.next_attempt_at,
        )
        return {"type": "done", **result.as_dict()}


def drain(
    state_dir: Path,
    budget_s: float | None = None,
    progress: Progress | None = None,
    *,
    force: bool = False,
    lock_wait_s: float = 0.0,
    env: Mapping[str, str] | None = None,
) -> PassResult:
    """Run one pass. Never raises for runtime faults: they become outcome ``error``."""
    env = os.environ if env is None else env
    if (state_dir / MARKER_NAME).exists():
        purge_state_dir(state_dir, keep_marker=True)
        return PassResult("opted_out", detail="opt-out marker present")
    if not (state_dir / DB_NAME).is_file():
        # Never create a spool here: nothing was ever queued.
        return PassResult("empty", detail="no spool")
    try:
        lock = try_lock(state_dir, lock_wait_s)
    except (UnsafeStateDir, OSError) as exc:
        return PassResult("error", detail=f"lock: {exc}")
    if lock is None:
        return PassResult("busy", detail="another uploader holds the lock")
    try:
        return _Pass(state_dir, budget_s, progress, force, env).run()
    finally:
        lock.release()


class _Pass:
    def __init__(
        self,
        state_dir: Path,
        budget_s: float | None,
        progress: Progress | None,
        force: bool,
        env: Mapping[str, str],
    ) -> None:
        self.state_dir = state_dir
        self.budget_s = budget_s
        self.progress = progress
        self.force = force
        self.env = env
        self.result = PassResult("empty")
        self.spool: Spool | None = None
        self.accepted = 0  # events the server acknowledged (deleted a moment later)

    def run(self) -> PassResult:
        try:
            # recover=False: never move a corrupt spool aside from here (see _corrupt).
            self.spool = Spool(self.state_dir, Policy(), busy_ms=BUSY_MS, recover=False)
        except Exception as exc:
            if classify_error(exc) == "corrupt":
                return _corrupt(exc)
            return PassResult("error", detail=f"open spool: {type(exc).__name__}: {exc}")
        try:
            self._run(self.spool)
        except _OptedOut:
            self._close()
            purge_state_dir(self.state_dir, keep_marker=True)
            self.result.outcome = "opted_out"
            self.result.remaining = 0
            return self.result
        except Exception as exc:  # a detached process has nobody to raise to
            if classify_error(exc) == "corrupt":
                # Found mid-pass: report and leave it; nothing can be written to it.
                self._close()
                return _corrupt(exc, self.result)
            self.result.outcome = "error"
            self.result.detail = f"{type(exc).__name__}: {exc}"
            self._record_outcome()
        self._count_bad_rows()
        self._close()
        return self.result

    def _close(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None

    def _count_bad_rows(self) -> None:
        # Hand-edited meta or drop rows were read as absent: counted, reported upstream.
        spool = self.spool
        if spool is None or not spool.bad_rows:
            return
        try:
            spool.add_drops({f"{ERROR_PREFIX}bad_row": spool.bad_rows})
            spool.bad_rows = 0
        except Exception:
            pass  # the pass's own outcome already says what went wrong

    # -- the pass ---------------------------------------------------------------------
    def _run(self, spool: Spool) -> None:
        start = time.monotonic()
        config = spool.get_meta("config")
        if not isinstance(config, dict):
            # Absent, or edited by hand into something else: the next host run rewrites it.
            self.result.outcome = "no_endpoint"
            self.result.detail = (
                "no config written by a host yet"
                if config is None and not spool.bad_rows
                else "the config row is not what a host writes: waiting for a host to rewrite it"
            )
            return
        app = str(config.get("app", ""))
        self.app = app
        self.env_prefix = config.get("env_prefix")  # e.g. PATTER for app getpatter
        self._check_consent()
        endpoint = config.get("endpoint")
        if not endpoint:
            self.result.outcome = "no_endpoint"
            self.result.remaining = spool.queued()[0]
            return
        settings = config.get("policy")
        policy = Policy.from_upload_settings(settings if isinstance(settings, dict) else {})
        budget = policy.pass_budget_s if self.budget_s is None else self.budget_s
        deadline = start + max(budget, 0.0)
        state = read_upload_state(spool)
        now = time.time()
        next_at = parse_time(state.get("next_attempt_at"))
        # A next_attempt_at further ahead than the cap means the clock jumped: ignore it.
        if not self.force and next_at is not None and now < next_at <= now + policy.backoff_max_s:
            self.result.outcome = "backoff"
            self.result.next_attempt_at = state.get("next_attempt_at")
            self.result.remaining = spool.queued()[0]
            return
        expired = spool.expire(policy.max_age_days * 86400.0)
        if expired:
            self.result.dropped["expired"] += expired
        fmt = str(config.get("format") or "json")
        encoder = ENCODERS.get(fmt)
        if encoder is None:
            raise ValueError(f"format {fmt!r} is not supported by this uploader")
        # urllib3 loads only now: a pass that finds nothing to send (backoff,
        # empty queue, lock busy) stays a light process.
        from ._transport import Transport

        transport = Transport(
            str(endpoint),
            connect_timeout_s=policy.connect_timeout_s,
            read_timeout_s=policy.read_timeout_s,
            proxy=policy.proxy,
            env=self.env,
        )
        header = EnvelopeHeader.from_config(config, _install_id(self.state_dir))
        backoff = Backoff(
            policy.backoff_base_s, policy.backoff_max_s, _failures(spool, state)
        )
        missing = missing_extra(fmt)
        if missing is not None:
            # Kept, not dropped: installing the extra makes the next pass send them.
            transport.close()
            self._back_off(spool, backoff.increment(), Retry("missing_extra", detail=missing))
            return
        headers = {"Content-Type": "", "Content-Encoding": "gzip"}
        remaining = spool.queued()[0]
        self._emit(remaining)
        after_id = 0
        limit = policy.batch_events
        pause = float(self.env.get(PAUSE_AFTER_POST_ENV) or 0)
        outcome = "empty"
        # Drop counts ride in one batch at a time: the next batch is encoded
        # before this one's ack commits, and must not report them twice.
        report_drops = True
        acker = _Acker(self.state_dir)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    outcome = "budget"
                    break
                self._check_consent()
                epoch = spool.epoch()
                dropped = spool.unreported_drops() if report_drops else {}
                sent_at = format_time(time.time())
                if fmt == "json":
                    # Fast path: SQLite renders each event object in C.
                    wire = spool.read_wire_batch(after_id, limit, policy.batch_bytes)
                    if wire is None:
                        outcome = "empty"
                        break
                    first, last, uuids = wire.first_id, wire.last_id, wire.uuids
                    encoded = encode_json_fragments(header, wire.fragments, dropped, sent_at)
                else:
                    batch = spool.read_batch(after_id, limit, policy.batch_bytes)
                    if not batch:
                        outcome = "empty"
                        break
                    first, last, uuids = batch[0].id, batch[-1].id, [e.uuid for e in batch]
                    encoded = encoder(header, batch, dropped, sent_at)
                count = len(uuids)
                report_drops = False
                headers["Content-Type"] = encoded.content_type
                if encoded.gzip:
                    headers["Content-Encoding"] = "gzip"
                    body = gzip_body(encoded.body)
                else:
                    headers.pop("Content-Encoding", None)
                    body = encoded.body
                result = transport.post(body, headers, left)
                if isinstance(result, Ack):
                    if pause > 0:
                        time.sleep(pause)
                        pause = 0.0  # once per pass is all a test needs
                    acker.submit(first, last, dropped, uuids, epoch)
                    self.accepted += count
                    backoff = backoff.reset()
                    after_id = last
                    remaining = max(remaining - count, 0)
                    self._emit(remaining)
                    continue
                # Anything but an ack: settle the pending acks first, so the
                # counts and the state below see every delete.
                self.result.sent += acker.wait()
                report_drops = True
                if isinstance(result, Drop):
                    n = spool.drop_range(first, last, result.reason, uuids=uuids)
                    self.result.dropped[result.reason] += n
                    after_id = last
                    remaining = max(remaining - count, 0)
                    self._emit(remaining)
                elif isinstance(result, Split):
                    if count == 1:
                        # One event bigger than the endpoint accepts: it never will be.
                        n = spool.drop_range(first, last, "too_large", uuids=uuids)
                        self.result.dropped["too_large"] += n
                        after_id = last
                    else:
                        limit = max(1, count // 2)
                else:
                    assert isinstance(result, Retry)
                    self._back_off(spool, backoff.increment(), result)
                    return
        finally:
            transport.close()
            self.result.sent += acker.close()
        self.result.outcome = outcome
        if self.result.sent or self.result.dropped:
            spool.reclaim()  # give the space back to the OS (DESIGN: disk targets)
        self.result.remaining = spool.queued()[0]
        changes: dict[str, Any] = {"failures": 0, "next_attempt_at": None, "last_outcome": outcome}
        if self.result.sent:
            changes["last_upload_at"] = format_time(time.time())
        update_upload_state(spool, changes)

    def _back_off(self, spool: Spool, backoff: Backoff, result: Retry) -> None:
        delay = backoff.delay(result.retry_after_s)
        next_at = format_time(time.time() + delay)
        state = read_upload_state(spool)
        stored = state.get("errors")
        errors = Counter(
            {k: v for k, v in stored.items() if isinstance(v, int)}
            if isinstance(stored, dict)
            else {}
        )
        errors[result.error] += 1
        # Reported upstream with the next batch that gets through.
        spool.add_drops({f"{ERROR_PREFIX}upload_{result.error}": 1})
        update_upload_state(
            spool,
            {
                "failures": backoff.failures,
                "next_attempt_at": next_at,
                "last_outcome": "backoff",
                "last_error": result.error,
                "errors": dict(errors),
            },
        )
        self.result.outcome = "backoff"
        self.result.next_attempt_at = next_at
        self.result.detail = result.detail or result.error
        self.result.remaining = spool.queued()[0]

    def _record_outcome(self) -> None:
        if self.spool is None:
            return
        try:
            update_upload_state(
                self.spool,
                {"last_outcome": self.result.outcome, "last_error": self.result.detail[:300]},
            )
        except Exception:
            pass  # the outcome still reaches --progress; the spool itself is the fault

    def _check_consent(self) -> None:
        if (self.state_dir / MARKER_NAME).exists() or kill_switch(
            self.app, self.env, getattr(self, "env_prefix", None)
        ):
            raise _OptedOut()

    def _emit(self, remaining: int) -> None:
        if self.progress is not None:
            self.progress(
                {
                    "type": "progress",
                    "sent": self.accepted,
                    "remaining": remaining,
                    "dropped": dict(self.result.dropped),
                }
            )


class _Acker:
    """Deletes acknowledged batches on a second connection in a worker thread.

    SQLite and zlib release the GIL, so the DELETE of batch k overlaps the
    read, gzip and POST of batch k+1 on the other core: the drain's biggest
    cost stops being serial. Acks stay in order and each is one transaction;
    a crash before one commits leaves its rows queued (re-sent, deduplicated).
    """

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir
        # Bounded: memory stays flat whatever the backlog.
        self._queue: queue.Queue[tuple[int, int, dict[str, int], list[str], int] | None] = (
            queue.Queue(maxsize=2)
        )
        self._thread: threading.Thread | None = None
        self._deleted = 0
        self._error: BaseException | None = None

    def submit(
        self, first: int, last: int, dropped: dict[str, int], uuids: list[str], epoch: int
    ) -> None:
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="telespool-ack", daemon=True)
            self._thread.start()
        self._queue.put((first, last, dropped, uuids, epoch))

    def wait(self) -> int:
        """Block until every submitted ack committed; returns rows deleted since last call."""
        if self._thread is not None:
            self._queue.join()
        if self._error is not None:
            raise self._error
        deleted, self._deleted = self._deleted, 0
        return deleted

    def close(self) -> int:
        deleted = 0
        if self._thread is not None:
            self._queue.join()
            self._queue.put(None)
            self._thread.join()
            self._thread = None
            deleted, self._deleted = self._deleted, 0
        return deleted

    def _work(self) -> None:
        spool: Spool | None = None
        try:
            spool = Spool(self._state_dir, Policy(), busy_ms=BUSY_MS, recover=False)
        except BaseException as exc:
            self._error = exc
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    break
                if spool is not None and self._error is None:
                    first, last, dropped, uuids, epoch = item
                    self._deleted += spool.ack(first, last, dropped, uuids=uuids, epoch=epoch)
            except BaseException as exc:
                self._error = exc
            finally:
                self._queue.task_done()
        if spool is not None:
            spool.close()


def _corrupt(exc: BaseException, result: PassResult | None = None) -> PassResult:
    """Outcome ``corrupt``: counted here, recovered by hosts.

    The uploader never moves a spool aside: hosts that still have the file
    open would keep writing into the renamed copy, neither uploaded nor
    counted. A host's next open (or failing write) moves it aside and counts
    ``corrupt`` in the fresh spool's drops.
    """
    out = result or PassResult("corrupt")
    out.outcome = "corrupt"
    out.detail = f"the spool is corrupt, left for the host to recover: {exc}"
    return out


def _failures(spool: Spool, state: Mapping[str, Any]) -> int:
    value = state.get("failures", 0)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    spool.bad_rows += 1  # a hand-edited backoff count: start the backoff afresh
    return 0


class _OptedOut(Exception):
    """The user opted out while this pass ran."""


def _install_id(state_dir: Path) -> str | None:
    try:
        with open(state_dir / INSTALL_NAME, encoding="utf-8") as f:
            value = json.load(f).get("install_id")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
