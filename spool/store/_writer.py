"""The call path's write side: never raises, never waits past lock_wait_ms, counts every loss.

Wraps a ``Spool`` with what the host needs around it:
- threads: a thread that finds another mid-append (or the helper's slice)
  hands its row over and returns; the holder writes it before letting go.
  Only when many rows wait does it wait, at most ``lock_wait_ms`` (at the
  cap, that wait is what lets eviction keep up with a flood). Contention
  never drops a row (tests/test_host_threads.py);
- SQLite's write lock, held by another connection (an uploader's ack, the
  helper, another host, a ``sqlite3`` session): the call path never waits
  for it (busy timeout 0). The row is parked in the same bounded buffer and
  goes with the next append; the helper thread waits for the lock off the
  call path (``drain_parked``). Only a buffer overflowing may drop rows
  (``locked``);
- the cap: past ``evict_at`` the helper thread evicts, off the call path;
  past ``full_at`` or with file + WAL at the cap (the helper fell behind a
  flood, a reader pins the WAL) rows are counted under ``cap`` instead of
  written, so db + WAL never pass the cap;
- fork safety: an at-fork hook quiesces the writer and its helper, so no
  telespool thread is inside SQLite when the process forks; the child opens
  its own connection, without waiting, on first use;
- losses through one door (``Losses``), written to the spool when it can
  take them, to the ``drops.pending`` sidecar when it cannot (at exit), as
  parked rows go to ``events.pending``.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from .._losses import ERROR_PREFIX, Losses, split_errors
from .._policy import HANDOFF_ROUNDS, HANDOFF_ROWS, OWN_HOLDER_WAIT_S, REOPEN_EVERY_S, Policy
from .._threads import green_patched, os_thread_api, wait_unlocked
from ._closing import Closing, version_or_none
from ._forking import Forking
from ._helper import Helper
from ._parked import Parked
from ._paths import UnsafeStateDir
from ._rows import Row
from ._sqlite import classify_error
from ._store import Spool, check_every

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

__all__ = ["ERROR_PREFIX", "Writer", "split_errors"]


class Writer(Closing, Forking):
    def __init__(self, state_dir: Path, policy: Policy, losses: Losses | None = None) -> None:
        self.state_dir = state_dir
        self.policy = policy
        self.losses = losses if losses is not None else Losses()
        self.fault: str | None = None  # why spooling is impossible, if it is
        self.fault_detail = ""
        self._size_check_bytes = check_every(policy)  # read on every append
        # A real OS lock even under gevent: the helper (an OS thread) takes it.
        self._new_lock = os_thread_api()[1]
        self._lock = self._new_lock()
        self._lock_wait_s = policy.lock_wait_ms / 1000.0  # when handing over is not enough
        self._buffer = Parked(policy.buffer_events)
        # SQLite "locked" answers to the call path since its last write.
        self._lock_failures = 0
        # (PRAGMA data_version, since when) while waits for SQLite's lock see no
        # other connection commit (a session holding it; see Closing.sync).
        self.stuck_at: tuple[int, float] | None = None
        self._full = False  # past full_at: rows are counted "cap" until the helper made room
        # Under gevent there is no thread contention to mop up (greenlets do
        # not switch inside an append), and a green lock must not be taken
        # from the helper's real OS thread.
        self._helper_drains = not green_patched()
        self.helper = self._new_helper()
        self.spool: Spool | None = None
        # A spool locked through our whole open wait is opened again later (rows
        # wait in the buffer meanwhile). Any other fault is final for this process.
        self._reopen_at = 0.0
        try:
            self.spool = Spool(state_dir, policy, busy_ms=0)  # the call path never waits
        except (UnsafeStateDir, sqlite3.Error, OSError) as exc:
            self._set_fault(exc)
        self.fold_pending()

    # -- public -----------------------------------------------------------------------
    def append(self, row: Row) -> None:
        """Durably append one row, or park it, or count it; never raises, never waits."""
        spool = self.spool
        if spool is None:
            if self.fault == "locked":
                self._append_unopened(row)
            else:
                self.losses.add(self.fault or "unwritable")
            return
        lock = self._lock
        handed_over = False
        if not lock.acquire(False):
            # Another thread is mid-append (microseconds), or the helper runs a
            # slice on this connection: hand the row over rather than wait.
            # The holder writes it before it lets go (_take_handed_over), so the burst
            # of threads costs each call no lock wait (tests/test_host_threads.py).
            buffer = self._buffer
            if len(buffer) < HANDOFF_ROWS:
                buffer.append(row)  # deque.append: atomic under the GIL
                if not lock.acquire(False):
                    return  # the holder has not let go yet: it writes the row
                handed_over = True  # the holder let go meanwhile: write the buffer ourselves
            elif not lock.acquire(True, self._lock_wait_s):
                # Many rows handed over and the holder still busy: it waits on
                # another *process's* SQLite lock (or appending threads starve
                # it of the GIL; this wait gives it back). Park the row; it
                # goes with the next append, or the helper writes it.
                buffer.park([row], self.losses)
                if self._helper_drains:
                    self.helper.kick("drain")
                return
        try:
            if handed_over:
                self._write_parked()
            elif self._buffer or self.losses or self._full:
                self._write(row)  # parked rows or counts to write first
            else:
                # The common case, kept flat: one committed INSERT.
                try:
                    spool.append_one(row)
                except Exception as exc:  # classified and counted, never raised
                    self._handle_error(exc, [row])
                else:
                    if self._lock_failures:
                        self._written()
                    if spool.unchecked_bytes >= self._size_check_bytes:
                        self._after_append(spool)
        finally:
            self._unlock()

    def _unlock(self) -> None:
        self._lock.release()
        if self._buffer:
            self._take_handed_over()

    def _take_handed_over(self) -> None:
        """Write rows other threads handed over while we held the lock.

        A thread that handed a row over found the lock held, then tried it
        once more: if that failed too, we were still inside, so the row is in
        the buffer before our release and this look sees it (a new holder looks
        in turn). Not while SQLite refuses our writes: those stay parked.
        """
        lock = self._lock
        for _ in range(HANDOFF_ROUNDS):
            if not self._buffer or self._lock_failures or self.spool is None:
                return
            if not lock.acquire(False):
                return  # the new holder looks after it lets go
            try:
                self._write_parked()
            finally:
                lock.release()
        if self._buffer and self._helper_drains:
            self.helper.kick("drain")  # threads kept handing rows over: the backstop

    def drain_parked(self, spool: Spool, stopping: Callable[[], bool]) -> None:
        """The helper's side: write parked rows on its own connection (``spool``),
        waiting for SQLite's lock off the call path.

        No thread lock is held meanwhile, so appends go on (parking). Slices of
        ``lock_wait_ms`` while other connections commit in between; one in which
        none did means a session holds the lock: it stops (``stuck_at``).
        """
        while self._buffer and not stopping():
            before = version_or_none(spool)
            began = time.monotonic()
            try:
                self._buffer.write_to(spool)
            except Exception as exc:  # classified and counted, never raised
                reason = _reason(exc)
                if reason != "locked":
                    self.note_error(reason)
                    return
                wait_unlocked(self._lock, OWN_HOLDER_WAIT_S)  # our own holder, mid-commit?
                after = version_or_none(spool)
                if after is not None and after == before:
                    # A full lock_wait_ms with no commit by anyone: counted,
                    # so a held lock reaches status() and the maintainer even
                    # when nothing is lost (the rows stay parked). The exit
                    # decides later whether it still has not moved (sync).
                    self.note_unmoved(after, began)
                    self.note_error("locked")
                    return
                continue  # other connections committed: not a session's lock
            self._written()

    def _append_unopened(self, row: Row) -> None:
        """The spool could not be opened because it was locked: park the row,
        and now and then try to open it again, without waiting."""
        if not self._lock.acquire(False):
            self._buffer.park([row], self.losses)
            return
        try:
            self._buffer.park([row], self.losses)
            if time.monotonic() >= self._reopen_at and self._reopen(wait_s=0.0):
                self._write_parked()
        finally:
            self._lock.release()

    def _reopen(self, wait_s: float) -> bool:
        """Try to open a spool that was locked at open; True when it is open."""
        self._reopen_at = time.monotonic() + REOPEN_EVERY_S
        try:
            self.spool = Spool(self.state_dir, self.policy, busy_ms=0, open_wait_s=wait_s)
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
            if self._full:
                self._check_size(spool)  # room made since? If not, as in _write the
            if self._full:  # newest rows (handed over during a slice, say) are lost
                self.losses.add("cap", len(self._buffer.take()))
                return
            self._buffer.write_to(spool)
            self._flush_drops(spool)
            self._written()
            if spool.unchecked_bytes >= self._size_check_bytes:
                self._check_size(spool)
        except Exception as exc:  # classified and counted, never raised
            if _reason(exc) == "locked" and self._buffer:
                self._parked_for_lock()  # write_to put the rows back
            else:
                self._handle_error(exc, [])

    def note_error(self, kind: str) -> None:
        """Count a swallowed error. Persisted beside the drops as ``error.<kind>``
        so it reaches the maintainer with the next batch, not just a log."""
        self.losses.error(kind)

    @property
    def errors(self) -> dict[str, int]:
        return self.losses.errors_seen()

    def run_locked(self, fn: Callable[[Spool], object], wait_ms: int = 50) -> object:
        """Run ``fn(spool)`` under the thread lock; None if unavailable. Never raises.

        Off the call path (status, purge, the helper's eviction slices): ``fn``
        may wait up to ``lock_wait_ms`` for SQLite's lock.
        """
        spool = self.spool
        if spool is None or not self._lock.acquire(timeout=wait_ms / 1000.0):
            return None
        try:
            spool.set_busy_timeout(self.policy.lock_wait_ms)
            try:
                return fn(spool)
            finally:
                spool.set_busy_timeout(0)
        except Exception as exc:
            self._handle_error(exc, [])
            return None
        finally:
            self._unlock()  # rows handed over meanwhile (an eviction slice, say)

    @property
    def buffered(self) -> int:
        return len(self._buffer) + self._buffer.in_flight

    # -- internals --------------------------------------------------------------------
    def _write(self, row: Row) -> None:
        spool = self.spool
        assert spool is not None
        if self._full:
            # The helper is evicting behind a flood: unless a size check now
            # finds room, the newest row is the one lost, counted "cap".
            spool.unchecked_bytes += row[5]
            if spool.unchecked_bytes >= self._size_check_bytes:
                self._after_append(spool)
            if self._full:
                self.losses.add("cap")
                return
        rows = [*self._buffer.take(), row] if self._buffer else [row]
        try:
            spool.append(rows)
        except Exception as exc:  # classified and counted, never raised
            self._handle_error(exc, rows)
            return
        self._written()
        self._after_append(spool)

    def note_unmoved(self, version: int, since: float) -> float:
        """A wait for SQLite's lock that began at ``since`` saw ``version``;
        returns since when ``version`` has been seen unmoved."""
        if self.stuck_at is None or self.stuck_at[0] != version:
            self.stuck_at = (version, since)
        return self.stuck_at[1]

    def _written(self) -> None:
        # SQLite took a write: whatever held its lock has let go.
        self._lock_failures = 0
        self.stuck_at = None

    def _after_append(self, spool: Spool) -> None:
        try:
            if spool.unchecked_bytes >= self._size_check_bytes:
                self._check_size(spool)
            # Not while full: each flush of the "cap" counts is a commit; they grew
            # the WAL past the cap (CI: 527,496 B on 512 KiB). Room or exit writes them.
            if self.losses and not self._full:
                self._flush_drops(spool)
        except Exception as exc:  # classified and counted, never raised
            self._handle_error(exc, [])

    def _new_helper(self) -> Helper:
        return Helper(
            self.state_dir,
            self.policy,
            lambda: self.spool.appends if self.spool is not None else 0,
            self.losses,
            self.drain_parked if self._helper_drains else None,
            lambda step: self.run_locked(step, wait_ms=self.policy.lock_wait_ms),
        )

    def _check_size(self, spool: Spool) -> None:
        """Two stats on the call path (two PRAGMAs more near the cap); eviction
        and WAL work run on the helper."""
        spool.unchecked_bytes = 0
        disk = spool.disk_bytes()
        if disk > spool.evict_at:
            # Pages in use, not file + WAL: through a flood the file keeps the
            # pages eviction freed (appends reuse them) and the WAL has its own
            # share, so file + WAL stays past the mark after every eviction
            # (asked on that, the helper had nothing to evict every ~25 events).
            used = spool.used_bytes()
            # Full when the data is at the cap, or when file + WAL are: a WAL
            # a reader pinned past its share is the checkpoint's to shrink
            # (the helper runs one), but until then it grows with every append
            # (709 KiB on a 512 KiB cap in CI under load).
            self._full = used > spool.full_at or disk > spool.disk_full_at
            if used > spool.evict_at or spool.wal_over_share():
                self.helper.kick("evict")
            elif spool.wal_bytes() > spool.wal_budget:
                self.helper.kick("wal")  # often what put file + WAL past the mark
            # Near the cap, look every few events: each rewrites a page or two into
            # the WAL (~12x its bytes); an eighth of the interval let it pass 24 KiB.
            self._size_check_bytes = max(self.policy.size_check_bytes // 64, 1)
            return
        # file + WAL bounds the pages in use from above: two stats suffice.
        self._full = False
        self._size_check_bytes = check_every(self.policy)
        if spool.wal_bytes() > spool.wal_budget:
            self.helper.kick("wal")

    def _handle_error(self, exc: BaseException, rows: list[Row]) -> None:
        reason = _reason(exc)
        if reason == "locked" and rows:
            # The call path met another connection's write lock, without
            # waiting: park; the next append or the helper writes the rows.
            # Not an error (nothing is lost): the helper counts a lock that
            # does not move (drain_parked), and a full buffer counts "locked".
            self._buffer.park(rows, self.losses)
            self._parked_for_lock()
            return
        self.note_error(reason)
        if reason == "locked":
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
            self.losses.add(reason, len(rows))

    def _parked_for_lock(self) -> None:
        self._lock_failures += 1
        if self._helper_drains:
            self.helper.kick("drain")

    def _set_fault(self, exc: BaseException) -> None:
        self.fault = _reason(exc)
        self.note_error(self.fault)
        self.fault_detail = str(exc)
        if self.spool is not None:
            self.spool.close()
        self.spool = None


def _reason(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, UnsafeStateDir) else classify_error(exc)
