"""The call path's write side: never raises, never blocks, counts every loss.

Wraps a ``Spool`` with what the host needs around it:
- a non-blocking thread lock: a contended call parks its row in a bounded
  in-memory buffer instead of waiting;
- the same buffer when another process holds SQLite's write lock for longer
  than ``lock_wait_ms``; it is written on the next successful append or at close;
- fork safety: a child re-opens its own connection and gets fresh locks;
- drop counters by reason, kept in memory until the spool can take them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from pathlib import Path

from ._paths import UnsafeStateDir
from ._policy import Policy
from ._store import Row, Spool, classify_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

__all__ = ["ERROR_PREFIX", "Writer", "split_errors"]

# "locked" answers in a row before appends stop waiting for the write lock:
# ~100 ms of failing. Appending processes contend for microseconds at a time
# and never get there; a session holding the lock for minutes does.
_LOCKED_IN_A_ROW = 20
# While not waiting, every this many parked rows one append waits lock_wait_ms.
_WAITED_TRY_EVERY = 64


# Drop-table reasons with this prefix count swallowed errors, not lost events.
ERROR_PREFIX = "error."


def split_errors(counts: Mapping[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """``{reason: n}`` as stored -> (events dropped by reason, errors by kind)."""
    dropped: dict[str, int] = {}
    errors: dict[str, int] = {}
    for reason, n in sorted(counts.items()):
        if n <= 0:
            continue
        if reason.startswith(ERROR_PREFIX):
            errors[reason[len(ERROR_PREFIX) :]] = n
        else:
            dropped[reason] = n
    return dropped, errors


class Writer:
    def __init__(self, state_dir: Path, policy: Policy) -> None:
        self.state_dir = state_dir
        self.policy = policy
        self.pending_drops: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.fault: str | None = None  # why spooling is impossible, if it is
        self.fault_detail = ""
        self._size_check_bytes = policy.size_check_bytes  # read on every append
        self._lock = threading.Lock()
        self._buffer: deque[Row] = deque()
        # After many "locked" answers in a row (another process has held the
        # write lock for > 20 x lock_wait_ms), appends stop waiting (busy
        # timeout 0) until one succeeds: a lock held for minutes then costs each
        # track() one instant try, not lock_wait_ms. Short contention between
        # appending processes never gets there.
        self._contended = False
        self._lock_failures = 0
        self._maintainer = self._new_maintainer()
        self.spool: Spool | None = None
        # A spool that was only locked when we tried (another process holding
        # it through our whole open wait) is opened again later; meanwhile
        # rows wait in the buffer. Any other fault is final for this process.
        self._reopen_at = 0.0
        try:
            self.spool = Spool(state_dir, policy)
        except (UnsafeStateDir, sqlite3.Error, OSError) as exc:
            self._set_fault(exc)

    # -- public -----------------------------------------------------------------------
    def append(self, row: Row) -> None:
        """Durably append one row, or buffer it, or count it; never raises."""
        spool = self.spool
        if spool is None:
            if self.fault == "locked":
                self._append_unopened(row)
            else:
                self.pending_drops[self.fault or "unwritable"] += 1
            return
        if not self._lock.acquire(False):  # positional: cheaper than blocking=False
            # Another thread is mid-append: park the row rather than wait.
            self._park([row])
            return
        try:
            if self._buffer or self._contended or self.pending_drops:
                self._write(row)  # parked rows or counts to write first
                return
            # The common case, kept flat: one committed INSERT.
            try:
                spool.append_one(row)
            except Exception as exc:  # classified and counted, never raised
                self._handle_error(exc, [row])
                return
            self._lock_failures = 0
            if spool.unchecked_bytes >= self._size_check_bytes:
                self._after_append(spool)
        finally:
            self._lock.release()

    def _append_unopened(self, row: Row) -> None:
        """The spool could not be opened because it was locked: park the row,
        and now and then try to open it again, without waiting."""
        if not self._lock.acquire(False):
            self._park([row])
            return
        try:
            self._park([row])
            if time.monotonic() >= self._reopen_at and self._reopen(wait_s=0.0):
                self._write_parked()
        finally:
            self._lock.release()

    def _reopen(self, wait_s: float) -> bool:
        """Try to open a spool that was locked at open; True when it is open."""
        self._reopen_at = time.monotonic() + _REOPEN_EVERY_S
        try:
            self.spool = Spool(self.state_dir, self.policy, open_wait_s=wait_s)
        except (UnsafeStateDir, sqlite3.Error, OSError) as exc:
            if _reason(exc) != "locked":
                self._set_fault(exc)  # final, counted
            return False
        self.fault = None
        self.fault_detail = ""
        return True

    def _write_parked(self) -> None:
        spool = self.spool
        assert spool is not None
        try:
            self._flush_buffer(spool)
            self._flush_drops(spool)
        except Exception as exc:  # classified and counted, never raised
            self._handle_error(exc, [])

    def count_drop(self, reason: str, n: int = 1) -> None:
        self.pending_drops[reason] += n

    def note_error(self, kind: str) -> None:
        """Count a swallowed error. Persisted beside the drops as ``error.<kind>``
        so it reaches the maintainer with the next batch, not just a log."""
        self.errors[kind] += 1
        self.pending_drops[ERROR_PREFIX + kind] += 1

    def sync(self, wait_ms: int | None = None) -> None:
        """Write the buffer and pending drop counts, waiting up to ``wait_ms``.

        Called at close/atexit and before an upload, where a short bounded wait
        for another process's write lock is acceptable.
        """
        wait_s = (self.policy.close_wait_ms if wait_ms is None else wait_ms) / 1000.0
        if self.spool is None and self.fault == "locked":
            # Parked rows from a spool locked at open: one bounded try to open it.
            if not self._lock.acquire(timeout=max(wait_s, 0.001)):
                return
            try:
                self._reopen(wait_s)
            finally:
                self._lock.release()
        spool = self.spool
        if spool is None:
            return
        if not self._lock.acquire(timeout=max(wait_s, 0.001)):
            return
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    self._flush_buffer(spool)
                    self._flush_drops(spool)
                    self._lock_failures = 0
                    if self._contended:
                        self._set_contended(spool, False)
                    return
                except sqlite3.Error as exc:
                    reason = classify_error(exc)
                    if reason != "locked" or time.monotonic() >= deadline:
                        self._handle_error(exc, [])
                        return
                    time.sleep(0.002)
        finally:
            self._lock.release()

    def close(self) -> None:
        self._maintainer.stop(self.policy.close_wait_ms / 1000.0)
        self.sync()
        with self._lock:
            if self._buffer:
                self.pending_drops["locked"] += len(self._buffer)
                self._buffer.clear()
            if self.spool is not None:
                self.spool.close()

    def run_locked(self, fn: Callable[[Spool], object], wait_ms: int = 50) -> object:
        """Run ``fn(spool)`` under the thread lock; None if unavailable. Never raises."""
        spool = self.spool
        if spool is None or not self._lock.acquire(timeout=wait_ms / 1000.0):
            return None
        try:
            return fn(spool)
        except (sqlite3.Error, OSError) as exc:
            self._handle_error(exc, [])
            return None
        finally:
            self._lock.release()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # -- internals --------------------------------------------------------------------
    def _write(self, row: Row) -> None:
        spool = self.spool
        assert spool is not None
        rows = [row]
        if self._buffer:
            if self._contended and len(self._buffer) % _WAITED_TRY_EVERY == 0:
                # Every so many parked rows, one bounded wait for the lock:
                # a few ms now and then beats a full buffer losing events.
                self._set_contended(spool, False)
            rows = self._take_buffer() + rows
        try:
            spool.append(rows)
        except Exception as exc:  # classified and counted, never raised
            self._handle_error(exc, rows)
            return
        self._lock_failures = 0
        if self._contended:
            self._set_contended(spool, False)
        self._after_append(spool)

    def _after_append(self, spool: Spool) -> None:
        try:
            if self.pending_drops:
                self._flush_drops(spool)
            if spool.unchecked_bytes >= self._size_check_bytes:
                self._check_size(spool)
        except Exception as exc:  # classified and counted, never raised
            self._handle_error(exc, [])

    def _new_maintainer(self) -> _Maintainer:
        return _Maintainer(
            self.state_dir,
            self.policy,
            lambda: self.spool.appends if self.spool is not None else 0,
            self.note_error,
        )

    def _check_size(self, spool: Spool) -> None:
        """Two stats on the call path; the WAL checkpoint runs on another thread."""
        spool.unchecked_bytes = 0
        if spool.disk_bytes() > spool.high_water:
            # Rare (the cap reached) and a promise: evict here, oldest first.
            # Not beside a maintainer round: its checkpoint would keep this
            # one from truncating the WAL the eviction just grew.
            busy = self._maintainer.busy
            if busy.acquire(timeout=_INLINE_EVICT_WAIT_S):
                try:
                    spool.enforce_cap()
                finally:
                    busy.release()
        elif spool.wal_bytes() > spool.wal_budget:
            self._maintainer.kick()

    def _handle_error(self, exc: BaseException, rows: list[Row]) -> None:
        reason = _reason(exc)
        self.note_error(reason)
        if reason == "locked":
            self._lock_failures += 1
            if (
                self._lock_failures >= _LOCKED_IN_A_ROW
                and not self._contended
                and self.spool is not None
            ):
                self._set_contended(self.spool, True)
            self._park(rows)
            return
        if reason == "corrupt" and self.spool is not None:
            try:
                self.spool.recover_corrupt()
                if rows:
                    self.spool.append(rows)
                return
            except (sqlite3.Error, OSError, UnsafeStateDir) as again:
                self._set_fault(again)
        if rows:
            self.pending_drops[reason] += len(rows)

    def _set_contended(self, spool: Spool, contended: bool) -> None:
        try:
            spool.set_busy_timeout(0 if contended else self.policy.lock_wait_ms)
            self._contended = contended
        except Exception as exc:  # classified and counted, never raised
            self.note_error(_reason(exc))

    def _park(self, rows: list[Row]) -> None:
        room = self.policy.buffer_events - len(self._buffer)
        for row in rows[: max(room, 0)]:
            self._buffer.append(row)
        lost = len(rows) - max(room, 0)
        if lost > 0:
            self.pending_drops["locked"] += lost

    def _take_buffer(self) -> list[Row]:
        rows: list[Row] = []
        while self._buffer:
            try:
                rows.append(self._buffer.popleft())
            except IndexError:  # pragma: no cover - emptied by another thread
                break
        return rows

    def _flush_buffer(self, spool: Spool) -> None:
        if not self._buffer:
            return
        rows = self._take_buffer()
        try:
            spool.append(rows)
        except sqlite3.Error:
            # Put them back in order; the caller decides whether to retry.
            self._buffer.extendleft(reversed(rows))
            raise

    def _flush_drops(self, spool: Spool) -> None:
        if not self.pending_drops:
            return
        snapshot = dict(self.pending_drops)
        spool.add_drops(snapshot)
        self.pending_drops.subtract(snapshot)
        for reason in [r for r, n in self.pending_drops.items() if n <= 0]:
            del self.pending_drops[reason]

    def _set_fault(self, exc: BaseException) -> None:
        self.fault = _reason(exc)
        self.note_error(self.fault)
        self.fault_detail = str(exc)
        if self.spool is not None:
            self.spool.close()
        self.spool = None

    def after_fork_in_child(self) -> None:
        """Called by the facade's at-fork hook in the child process."""
        # A lock held by another parent thread at fork time would never be
        # released in the child; the parent's buffered rows belong to the parent.
        self._lock = threading.Lock()
        self._buffer = deque()
        self.pending_drops = Counter()
        self._maintainer.abandon_after_fork()
        self._maintainer = self._new_maintainer()
        self._contended = False
        self._lock_failures = 0
        if self.spool is not None:
            self.spool.set_busy_ms_for_reopen(self.policy.lock_wait_ms)
        # The spool re-opens its connection lazily on first use in the child.


class _Maintainer:
    """Checkpoints and restarts the WAL on one helper thread, in a pause.

    SQLite syncs at every WAL cycle: the WAL and the database around a
    checkpoint, and the WAL header when the next write restarts the WAL. Any
    append that meets one of those fsyncs, inline or behind a lock, waits
    milliseconds. So when a size check finds the WAL past its soft budget, it
    kicks this thread, which waits for appends to pause for ``wal_idle_ms``
    and then, on its own connection, runs a PASSIVE checkpoint (it completes:
    nothing is appending) and one small write, which restarts the WAL and
    pays the header sync. Appends then find a fresh WAL and never wait. A
    flood with no pause at all reaches SQLite's inline autocheckpoint at the
    WAL's hard limit instead (see _store.wal_limits). ``busy`` is held for a
    round, so the inline eviction never runs beside it.
    """

    def __init__(
        self,
        state_dir: Path,
        policy: Policy,
        appends: Callable[[], int],
        note_error: Callable[[str], None],
    ) -> None:
        self._state_dir = state_dir
        self._policy = policy
        self._appends = appends
        self._idle_s = policy.wal_idle_ms / 1000.0
        self.busy = threading.Lock()  # held for a round (see _check_size)
        self._note_error = note_error
        self._wake = threading.Event()
        self._stopping = False
        self._pending = False  # a round was asked for and has not run yet
        self._thread: threading.Thread | None = None
        self._spool: Spool | None = None

    def kick(self) -> None:
        """Ask for a round; starts the thread on first use. Never blocks."""
        if self._pending:
            return  # already waiting for a pause: waking it would only cost a GIL switch
        if self._thread is None:
            thread = threading.Thread(target=self._loop, name="telespool-maintain", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # no threads left (or interpreter shutting down)
                return
            self._thread = thread
        self._pending = True
        self._wake.set()

    def stop(self, timeout: float) -> None:
        """End the thread (after any step under way), waiting at most ``timeout``."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout)

    def abandon_after_fork(self) -> None:
        """In a forked child: the thread is gone; never close the parent's connection."""
        if self._spool is not None:
            self._spool.abandon()
        _ABANDONED_MAINTAINERS.append(self)

    def _loop(self) -> None:
        try:
            while not self._stopping:
                self._wake.wait()
                self._wake.clear()
                if not self._wait_for_pause():
                    return
                self._pending = False  # kicks from here on ask for another round
                with self.busy:
                    if self._spool is None:
                        # Opened in the first pause, never beside appends: opening
                        # a connection stalled a concurrent append by milliseconds.
                        self._spool = Spool(
                            self._state_dir, self._policy, busy_ms=_MAINTAIN_BUSY_MS
                        )
                    self._round(self._spool)
        except Exception as exc:
            self._note_error(_reason(exc))
        finally:
            if self._spool is not None:
                self._spool.close()
                self._spool = None
            # After a failure the next kick starts a fresh thread and connection.
            self._pending = False
            self._thread = None

    def _wait_for_pause(self) -> bool:
        """True once no row was appended for ``idle_s``; False when stopping."""
        while not self._stopping:
            seen = self._appends()
            # Interruptible sleeps: stop() sets the event.
            if self._wake.wait(self._idle_s):
                self._wake.clear()
                continue
            if self._appends() == seen:
                return True
            # Appends are flowing: look again later rather than every idle_s;
            # each look costs the appending thread a GIL switch.
            if self._wake.wait(_BUSY_LOOK_S):
                self._wake.clear()
        return False

    @staticmethod
    def _round(spool: Spool) -> None:
        if spool.checkpoint():
            spool.restart_wal()
        # Otherwise a reader (an uploader mid-batch) pins part of the WAL, or
        # appends resumed: a later round restarts it.


# An eviction waits at most this long for a maintainer round (a checkpoint
# and one write) to finish.
_INLINE_EVICT_WAIT_S = 0.05
# While appends flow, the maintainer looks for a pause this often.
_BUSY_LOOK_S = 0.02
# How often appends retry opening a spool that was locked at open.
_REOPEN_EVERY_S = 0.1
# The maintainer is off the call path: it may wait for the host's brief writes.
_MAINTAIN_BUSY_MS = 1000
# Maintainers of a parent process, kept alive in a forked child: their
# connections must never be closed there (see Spool.reopen_after_fork).
_ABANDONED_MAINTAINERS: list[_Maintainer] = []


def _reason(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, UnsafeStateDir) else classify_error(exc)
