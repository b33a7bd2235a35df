"""One drain pass: lock, consent, batches until empty / out of budget / told to wait.

Per batch: re-check consent, read up to N events / B bytes in id order, encode,
gzip, POST, then act on the classified result. Rows are only ever deleted after
the server answered, in one transaction, matched by id range *and* uuid; there
is no "in flight" state, so a crash at any point leaves every unacked row
queued (it is re-sent and the receiver deduplicates on the event id).

Around the loop: ``_batch`` reads and encodes each batch, ``_acker`` runs the
deletes on a second thread, ``_upload_record`` writes what the pass decided
into the spool's upload state.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from spool._losses import ERROR_PREFIX
from spool._policy import UPLOADER_BUSY_MS, Policy
from spool._protocol import CONFIG_KEY, FlushResult, UploaderConfig, progress_line
from spool.install._consent import kill_switch
from spool.install._identity import read_install_id
from spool.store._clear import purge_state_dir
from spool.store._paths import DB_NAME, MARKER_NAME, UnsafeStateDir
from spool.store._sidecar import append_losses, append_rows, take_some_rows
from spool.store._sqlite import classify_error
from spool.store._store import Spool
from spool.store._upload_state import backoff_pending, format_time, read_upload_state

from ._acker import Acker
from ._backoff import Backoff
from ._batch import Batches
from ._lock import try_lock
from ._result import Ack, Drop, Retry, Split
from ._upload_record import record_backoff, record_fault, record_pass, stored_failures
from .wire._envelope import EnvelopeHeader
from .wire._formats import ENCODERS, missing_extra

__all__ = ["PAUSE_AFTER_POST_ENV", "PassResult", "drain"]

# Test-only hook: sleep this many seconds after the server accepted the pass's
# first batch and before its rows are deleted, so a test can SIGKILL a real
# uploader in that gap (or hold the lock while a second uploader starts).
PAUSE_AFTER_POST_ENV = "TELESPOOL_TEST_PAUSE_AFTER_POST"

# What one pass did is what a flush reports: one type (the old name stays importable).
PassResult = FlushResult

Progress = Callable[[dict[str, Any]], None]


def drain(
    state_dir: Path,
    budget_s: float | None = None,
    progress: Progress | None = None,
    *,
    force: bool = False,
    lock_wait_s: float = 0.0,
    env: Mapping[str, str] | None = None,
) -> FlushResult:
    """Run one pass. Never raises for runtime faults: they become outcome ``error``."""
    env = os.environ if env is None else env
    if (state_dir / MARKER_NAME).exists():
        purge_state_dir(state_dir, keep_marker=True)
        return FlushResult("opted_out", detail="opt-out marker present")
    if not (state_dir / DB_NAME).is_file():
        # Never create a spool here: nothing was ever queued.
        return FlushResult("empty", detail="no spool")
    try:
        lock = try_lock(state_dir, lock_wait_s)
    except (UnsafeStateDir, OSError) as exc:
        return FlushResult("error", detail=f"lock: {exc}")
    if lock is None:
        return FlushResult("busy", detail="another uploader holds the lock")
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
        self.spool: Spool | None = None
        self.config: UploaderConfig | None = None
        # The FlushResult's fields, gathered as the pass goes.
        self.outcome = "empty"
        self.sent = 0  # rows the ack thread deleted
        self.remaining = 0
        self.dropped: Counter[str] = Counter()
        self.detail = ""
        self.next_attempt_at: str | None = None
        self.accepted = 0  # events the server acknowledged (deleted a moment later)

    def result(self) -> FlushResult:
        return FlushResult(
            self.outcome,
            self.sent,
            self.remaining,
            dict(self.dropped),
            self.detail,
            self.next_attempt_at,
        )

    def run(self) -> FlushResult:
        try:
            # recover=False: never move a corrupt spool aside from here (see _corrupt).
            self.spool = Spool(self.state_dir, Policy(), busy_ms=UPLOADER_BUSY_MS, recover=False)
        except Exception as exc:
            if classify_error(exc) == "corrupt":
                self._corrupt(exc)
                return self.result()
            return FlushResult("error", detail=f"open spool: {type(exc).__name__}: {exc}")
        try:
            self._run(self.spool)
        except _OptedOut:
            self._close()
            purge_state_dir(self.state_dir, keep_marker=True)
            self.outcome = "opted_out"
            self.remaining = 0
            return self.result()
        except Exception as exc:  # a detached process has nobody to raise to
            if classify_error(exc) == "corrupt":
                # Found mid-pass: report and leave it; nothing can be written to it.
                self._close()
                self._corrupt(exc)
                return self.result()
            self.outcome = "error"
            self.detail = f"{type(exc).__name__}: {exc}"
            if self.spool is not None:
                record_fault(self.spool, self.outcome, self.detail)
        self._count_bad_rows()
        self._close()
        return self.result()

    def _corrupt(self, exc: BaseException) -> None:
        """Outcome ``corrupt``: counted here, recovered by hosts.

        The uploader never moves a spool aside: hosts that still have the file
        open would keep writing into the renamed copy, neither uploaded nor
        counted. A host's next open (or failing write) moves it aside and counts
        ``corrupt`` in the fresh spool's drops.
        """
        self.outcome = "corrupt"
        self.detail = f"the spool is corrupt, left for the host to recover: {exc}"

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

    def _fold_pending_rows(self, spool: Spool) -> None:
        """Store the rows a host's exit left in ``events.pending`` (its spool was
        locked then), so they go out with this pass, not after the next host
        start: a host's slice (see take_some_rows), so the fold cannot carry the
        spool far past its cap; the rest wait for the next pass or host. Put
        back if SQLite still refuses them; counted if even that fails."""
        policy = spool.policy
        rows, bad, lost = take_some_rows(
            self.state_dir, policy.buffer_events, policy.size_check_bytes
        )
        spool.bad_rows += bad
        if lost:
            append_losses(self.state_dir, {"locked": lost})
        if not rows:
            return
        try:
            spool.append(rows)
        except Exception:
            if not append_rows(self.state_dir, rows):
                append_losses(self.state_dir, {"locked": len(rows)})

    # -- the pass ---------------------------------------------------------------------
    def _run(self, spool: Spool) -> None:
        start = time.monotonic()
        row = spool.get_meta(CONFIG_KEY)
        config = UploaderConfig.from_row(row)
        if config is None:
            # Absent, or edited by hand into something else: the next host run rewrites it.
            self.outcome = "no_endpoint"
            if row is None and not spool.bad_rows:
                self.detail = "no config written by a host yet"
            else:
                if row is not None:
                    spool.bad_rows += 1  # a row no host writes: counted like any bad meta row
                self.detail = (
                    "the config row is not what a host writes: waiting for a host to rewrite it"
                )
            return
        self.config = config
        self._check_consent()
        self._fold_pending_rows(spool)
        if not config.endpoint:
            self.outcome = "no_endpoint"
            self.remaining = spool.queued()[0]
            return
        policy = config.policy
        budget = policy.pass_budget_s if self.budget_s is None else self.budget_s
        deadline = start + max(budget, 0.0)
        state = read_upload_state(spool)
        if not self.force and backoff_pending(state, time.time(), policy.backoff_max_s):
            self.outcome = "backoff"
            self.next_attempt_at = state.get("next_attempt_at")
            self.remaining = spool.queued()[0]
            return
        expired = spool.expire(policy.max_age_days * 86400.0)
        if expired:
            self.dropped["expired"] += expired
        fmt = config.format
        encoder = ENCODERS.get(fmt)
        if encoder is None:
            raise ValueError(f"format {fmt!r} is not supported by this uploader")
        # urllib3 loads only now: a pass that finds nothing to send (backoff,
        # empty queue, lock busy) stays a light process.
        from ._transport import Transport

        transport = Transport(
            config.endpoint,
            connect_timeout_s=policy.connect_timeout_s,
            read_timeout_s=policy.read_timeout_s,
            proxy=policy.proxy,
            env=self.env,
        )
        header = EnvelopeHeader.from_config(config, read_install_id(self.state_dir))
        failures = stored_failures(spool, state)
        backoff = Backoff(policy.backoff_base_s, policy.backoff_max_s, failures)
        missing = missing_extra(fmt)
        if missing is not None:
            # Kept, not dropped: installing the extra makes the next pass send them.
            transport.close()
            self._back_off(spool, backoff.increment(), Retry("missing_extra", detail=missing))
            return
        remaining = spool.queued()[0]
        self._emit(remaining)
        after_id = 0
        limit = policy.batch_events
        pause = float(self.env.get(PAUSE_AFTER_POST_ENV) or 0)
        outcome = "empty"
        # Drop counts ride in one batch at a time: the next batch is encoded
        # before this one's ack commits, and must not report them twice.
        report_drops = True
        batches = Batches(spool, fmt, encoder, header, policy.batch_bytes)
        acker = Acker(self.state_dir)
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
                batch = batches.after(after_id, limit, dropped, sent_at)
                if batch is None:
                    outcome = "empty"
                    break
                first, last, uuids = batch.first, batch.last, batch.uuids
                count = len(uuids)
                report_drops = False
                result = transport.post(batch.body, batch.headers, left)
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
                self.sent += acker.wait()
                report_drops = True
                if isinstance(result, Drop):
                    n = spool.drop_range(first, last, result.reason, uuids=uuids)
                    self.dropped[result.reason] += n
                    after_id = last
                    remaining = max(remaining - count, 0)
                    self._emit(remaining)
                elif isinstance(result, Split):
                    if count == 1:
                        # One event bigger than the endpoint accepts: it never will be.
                        n = spool.drop_range(first, last, "too_large", uuids=uuids)
                        self.dropped["too_large"] += n
                        after_id = last
                    else:
                        limit = max(1, count // 2)
                else:
                    assert isinstance(result, Retry)
                    self._back_off(spool, backoff.increment(), result)
                    return
        finally:
            transport.close()
            self.sent += acker.close()
        self.outcome = outcome
        if self.sent or self.dropped:
            spool.reclaim()  # give the space back to the OS (DESIGN: disk targets)
        self.remaining = spool.queued()[0]
        record_pass(spool, outcome, self.sent)

    def _back_off(self, spool: Spool, backoff: Backoff, result: Retry) -> None:
        self.next_attempt_at = record_backoff(spool, backoff, result)
        self.outcome = "backoff"
        self.detail = result.detail or result.error
        self.remaining = spool.queued()[0]

    def _check_consent(self) -> None:
        config = self.config
        assert config is not None
        if (self.state_dir / MARKER_NAME).exists() or kill_switch(
            config.app, self.env, config.env_prefix
        ):
            raise _OptedOut()

    def _emit(self, remaining: int) -> None:
        if self.progress is not None:
            self.progress(progress_line(self.accepted, remaining, self.dropped))


class _OptedOut(Exception):
    """The user opted out while this pass ran."""
