"""The host's one helper thread: everything a host needs done off the call path.

``track()`` only ever *asks* (``kick``), in a few nanoseconds and without
waiting. The helper then does, on its own SQLite connection:

- ``evict``: the cap was reached. Oldest events go first, in slices of
  ``EVICT_SLICE`` rows, each one short transaction, so an append waits at
  most one slice (and never more than ``lock_wait_ms``); freed pages go
  back to the OS in slices too. This runs at once, not in a pause: a flood
  with no pause must still stay under the cap.
- ``trigger``: enough events queued, or the trigger interval passed: check
  the spool and start the uploader (a spawn costs 0.4-13 ms, never a call's),
  in a pause in appends, after the WAL job, about a second late at most
  (``_pauses``); the read-only check that vetoes most runs goes at once.
- ``wal``: the WAL passed its soft budget. Wait for appends to pause for
  ``wal_idle_ms``, then checkpoint and restart the WAL, so no append pays
  the restart's header fsync (see ``Spool.restart_wal``).
- ``drain``: rows parked because another connection held SQLite's write
  lock: written on this connection, waiting for the lock in slices of
  ``lock_wait_ms`` while other connections commit (``Writer.drain_parked``).
- reaping: finished uploaders are collected within a second, so a
  long-lived host holds no zombie.

It is a real OS thread even under gevent or eventlet (see ``_threads``).
``busy`` is held for every SQLite step, so the at-fork hook can wait for the
helper to be outside SQLite before the process forks.
"""

from __future__ import annotations

from pathlib import Path

from .._losses import Losses
from .._policy import (
    EVICT_MISSES,
    HELPER_BUSY_MS,
    REAP_EVERY_S,
    Policy,
)
from .._threads import os_sleep, os_thread_api
from ..launch import _spawn, _trigger
from . import _steps
from ._pauses import IN_A_PAUSE, JOBS, Pauses
from ._sqlite import classify_error
from ._status import take_bad_rows
from ._store import Spool, wal_limits

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

__all__ = ["Helper"]

# A WAL past its share, with other hosts appending to the spool: it never
# restarts on its own (each PASSIVE checkpoint meets their newer frames), and
# a TRUNCATE checkpoint returns busy at once while one of their inline
# checkpoints holds SQLite's checkpoint lock. One try per eviction pass let
# four hosts flooding one spool grow the WAL to 21 MB, and counted 2,240 of
# 40,000 events "cap" with the data at 14 MB of a 32 MiB cap. So: up to
# PINNED_WAL_TRIES tries, PINNED_WAL_GAP_S apart (the writer's lock let go in
# between), as long as it is their checkpoint lock that answers busy.
PINNED_WAL_TRIES = 50
PINNED_WAL_GAP_S = 0.002


class Helper(Pauses):
    def __init__(
        self,
        state_dir: Path,
        policy: Policy,
        appends: Callable[[], int],
        losses: Losses,
        drain: Callable[[Spool, Callable[[], bool]], None] | None = None,
        on_writer: Callable[[Callable[[Spool], object]], object] | None = None,
    ) -> None:
        self._state_dir = state_dir
        self._policy = policy
        self._appends = appends
        self._losses = losses
        # [the most WAL bytes one eviction slice wrote, may truncate]: kept
        # across passes, or each pass's first slice was unbounded.
        self._evict_share = [0, 1]
        self._drain = drain
        # Runs a step on the writer's own connection under its thread lock
        # (bounded wait): eviction shares the appends' connection, because a
        # second writing connection pins the WAL (a waiting append holds a
        # read snapshot) and lets it grow past the cap during a flood.
        self._on_writer = on_writer
        self._idle_s = policy.wal_idle_ms / 1000.0
        # Past a third of the way from the soft share to the hard one, the WAL
        # job takes any gap in appends: SQLite checkpoints inline, in an append,
        # at the hard share (every ~490 events under gevent's 5 ms pauses).
        soft, hard = wal_limits(policy)
        self._wal_late_at = soft + (hard - soft) // 3
        self._late_missed = False  # the last late checkpoint could not complete
        self._pause_at = -1  # the append count when the last pause was seen
        self._trigger_asked: float | None = None  # when the helper first saw a spawn due
        self._start_thread, allocate_lock = os_thread_api()
        self._sleep = os_sleep()
        self.busy = allocate_lock()  # held for every SQLite step of the helper
        self._wake = allocate_lock()  # a binary semaphore: released = "look at the jobs"
        self._wake.acquire()
        self._running = allocate_lock()  # held while the thread runs: join() waits on it
        self._jobs: dict[str, bool] = {}
        self._stopping = False
        self._started = False
        self._spool: Spool | None = None
        self._vacuum_due = False  # eviction freed pages: give them back in a pause
        self.trigger: _trigger.Trigger | None = None

    # -- the call path's side -------------------------------------------------------
    def kick(self, job: str) -> None:
        """Ask for ``job``; starts the thread on first use. Never blocks, never raises."""
        if self._jobs.get(job):
            return  # already asked: waking the thread again would only cost a GIL switch
        self._jobs[job] = True
        if not self._started and not self._start():
            self._jobs.pop(job, None)
            return
        try:
            self._wake.release()
        except RuntimeError:
            pass  # already released: the thread will look at the jobs anyway

    def pending(self, job: str) -> bool:
        return bool(self._jobs.get(job))

    def _start(self) -> bool:
        if self._stopping:
            return False
        try:
            self._running.acquire()
            self._start_thread(self._loop, ())
        except Exception:  # no threads left, or the interpreter is shutting down
            self._running.release()
            self._losses.error("thread")
            return False
        self._started = True
        return True

    def stop(self, timeout: float) -> bool:
        """End the thread after the step under way; True if it ended within ``timeout``."""
        self._stopping = True
        if not self._started:
            return True
        try:
            self._wake.release()
        except RuntimeError:
            pass
        if self._running.acquire(timeout=max(timeout, 0.0)):
            self._running.release()
            return True
        return False

    # -- fork --------------------------------------------------------------------------
    def before_fork(self, timeout: float) -> bool:
        """Wait until the helper is outside SQLite; it stays out until released."""
        return bool(self.busy.acquire(timeout=timeout))

    def after_fork_in_parent(self, held: bool) -> None:
        if held:
            self.busy.release()

    def abandon_after_fork(self) -> None:
        """In a forked child: the thread is gone; never close the parent's connection."""
        if self._spool is not None:
            self._spool.abandon()
            self._spool = None
        _ABANDONED.append(self)

    # -- the thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while not self._stopping:
                self._wake.acquire(timeout=REAP_EVERY_S if _children_running() else -1)
                _reap_children()
                if self._stopping:
                    return
                self._run_jobs()
        except BaseException as exc:  # counted; the next kick starts a fresh thread
            self._losses.error(classify_error(exc))
        finally:
            self._close_spool()
            self._jobs.clear()
            self._trigger_asked = None
            self._started = False
            self._running.release()

    def _run_jobs(self) -> None:
        while not self._stopping:
            job = next((j for j in JOBS if self._jobs.get(j)), None)
            if job is None:
                return
            if job == "wal" and self._trigger_overdue():
                job = "trigger"
            if job == "trigger" and not self._spawn_due():
                self._trigger_done()  # vetoed (too soon, a backoff, nothing queued)
                continue
            if job in IN_A_PAUSE and not self._wait_for_pause(job):
                continue  # stopping, or a more urgent job came in: that one first
            # Cleared before the work: a kick arriving during it asks again.
            self._jobs[job] = False
            if job == "trigger":
                self._trigger_done()
            try:
                if job == "drain":
                    if self._drain is not None:
                        self._drain_parked(self._drain)
                    continue
                if job == "evict":
                    self._evict()
                    continue
                skip_vacuum = job == "wal" and self._wal_late()  # the restart first
                if job == "wal" and not skip_vacuum and not self._vacuum():
                    self._jobs["wal"] = True  # appends resumed: the rest in the next pause
                    continue
                restart = late = False
                with self.busy:
                    spool = self._open()
                    try:
                        if job == "trigger":
                            if self.trigger is not None:
                                self.trigger.maybe_spawn(spool)
                        else:
                            restart = spool.checkpoint()
                            late = self._wal_late()  # a checkpoint never shrinks the file
                            if restart and late:
                                spool.checkpoint()  # what appends wrote meanwhile, unlocked
                            # Late and incomplete (a reader pins the WAL): back to
                            # real pauses, not a checkpoint at every 1 ms gap.
                            self._late_missed = late and not restart
                    finally:
                        # The trigger reads the upload row on this connection: a
                        # hand-edited one counts here, or the count would be lost
                        # when the spawn claim rewrites the row.
                        take_bad_rows(spool, self._losses)
                if restart:
                    # The restart is a write: on the writer's connection, under
                    # its lock, or this process's threads resuming after the
                    # pause meet it as SQLite's lock (busy 0) and count "locked".
                    # (Otherwise a reader pins part of the WAL, or appends
                    # resumed: a later round restarts it.) Not a checkpoint
                    # there too: its fsyncs under the lock made 32 threads
                    # overflow the buffer (CI: 589 counted "locked"); late, the
                    # second checkpoint above narrows the gap appends can take.
                    self._on_writer_spool(_steps.restart_wal)
                    if skip_vacuum and self._vacuum_due and not self._wal_late():
                        self._jobs["wal"] = True  # restarted: the vacuum in the next pause
            except Exception as exc:  # counted; the spool is re-opened at the next job
                self._losses.error(classify_error(exc))
                self._close_spool()

    def _spawn_due(self) -> bool:
        """The trigger's read-only check, at once (no pause needed to read)."""
        if self.trigger is None:
            return False
        try:
            with self.busy:
                return self.trigger.due(self._open())
        except Exception as exc:  # counted; the spool is re-opened at the next job
            self._losses.error(classify_error(exc))
            self._close_spool()
            return False

    def _trigger_done(self) -> None:
        self._jobs["trigger"] = False
        self._trigger_asked = None  # the next ask waits its own TRIGGER_PAUSE_WAIT_S

    def _drain_parked(self, drain: Callable[[Spool, Callable[[], bool]], None]) -> None:
        with self.busy:
            spool = self._open()
            # Slices of lock_wait_ms: the exit waits for the slice under way
            # (stop), and a slice with no commit by anyone ends the drain.
            spool.set_busy_timeout(self._policy.lock_wait_ms)
            try:
                drain(spool, lambda: self._stopping)
            finally:
                spool.set_busy_timeout(HELPER_BUSY_MS)

    def _open(self) -> Spool:
        if self._spool is None:
            # Never recovers a corrupt file: that is the writer's job, on its own connection.
            self._spool = Spool(self._state_dir, self._policy, busy_ms=HELPER_BUSY_MS)
        return self._spool

    def _close_spool(self) -> None:
        if self._spool is not None:
            try:
                with self.busy:
                    self._spool.close()
            except Exception:
                pass
            self._spool = None

    def _on_writer_spool(self, step: Callable[[Spool], object]) -> object:
        if self._on_writer is None:
            return None
        with self.busy:
            return self._on_writer(step)

    def _evict(self) -> None:
        evicted = 0
        misses = 0
        share = self._evict_share
        share[1] = 1  # a truncate may run again in this pass
        while not self._stopping and misses < EVICT_MISSES:
            n = self._on_writer_spool(lambda spool: _steps.evict_slice_in_share(spool, share))
            if n is None:
                misses += 1  # the writer's lock was busy throughout: try again
            elif n == 0:
                if not evicted:
                    # Asked because the WAL is past its share (a reader pinned
                    # it: appends stop, counted "cap"): a full checkpoint
                    # shrinks it. Only then: it holds the writer's lock for a
                    # few fsyncs (after an eviction the WAL restarts, cut back
                    # to journal_size_limit, at the next complete checkpoint).
                    self._shrink_pinned_wal()
                break
            else:
                evicted += int(n)  # type: ignore[call-overload]
            self._yield()
        if evicted:
            # Freed pages are reused by the next appends, so a flood needs no
            # vacuum; the file shrinks, and the WAL restarts, in the next pause.
            self._vacuum_due = True
            self._jobs["wal"] = True

    def _shrink_pinned_wal(self) -> None:
        for _ in range(PINNED_WAL_TRIES):
            if self._stopping:
                return
            done = self._on_writer_spool(_steps.truncate_if_pinned)
            if done is not None:
                # Done, or a reader pins it: each try would wait the busy
                # timeout holding the writer's lock; the next pass tries again.
                return
            self._sleep(PINNED_WAL_GAP_S)  # another connection checkpointing

    def _vacuum(self) -> bool:
        """Give freed pages back in slices; False if appends resumed first.

        Under CPU contention a descheduled host looks like a pause: slices
        holding the writer's lock then meet a flood, so stop at its first row.
        """
        if not self._vacuum_due:
            return True
        seen = self._appends()
        while not self._stopping and not self._urgent("wal"):
            if self._appends() != seen:
                return False
            if not self._on_writer_spool(_steps.vacuum_slice):
                self._vacuum_due = False
                break
            self._yield()
        return True  # stopped for a more urgent job: the rest in a later pause

    def _yield(self) -> None:
        # Let appends in between slices: the GIL, briefly.
        self._sleep(0)


def _children_running() -> bool:
    return bool(_spawn._CHILDREN)


def _reap_children() -> None:
    _spawn.reap_children()


# Helpers of a parent process, kept alive in a forked child: their
# connections must never be closed there (see Spool.reopen_after_fork).
_ABANDONED: list[Helper] = []
