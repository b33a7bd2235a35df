"""The one door through which every loss is recorded: ``Losses.add(reason, n)``.

Like Sentry's ``record_lost_event``: every dropped event and every swallowed
error, from any thread, goes through one lock-protected counter. The writer
folds the counts into the spool's ``drops`` table, which the uploader reports
upstream with the next batch. Errors share the table under ``error.<kind>``,
so they reach the maintainer too; ``split_errors`` tells the two apart.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._threads import os_thread_api

__all__ = ["DROP_REASONS", "ERROR_KINDS", "ERROR_PREFIX", "Losses", "split_errors"]

# Drop-table reasons with this prefix count swallowed errors, not lost events.
ERROR_PREFIX = "error."

# Every reason a loss is counted under: the drops table, status()["dropped"] and
# the envelope's "dropped" all use these names, and nothing else
# (tests/test_layout.py finds every reason the code counts and checks it is here).
DROP_REASONS = {
    # A value, not an event: the property is removed or clamped, the event kept.
    "unknown_property": "a property the event does not declare: removed",
    "invalid_value": "a value off its allowlist or shape: removed (or set to 'other')",
    "out_of_range": "a number outside its declared range: clamped to it",
    # The host's call path: the event was not stored.
    "unknown_event": "an event name the schema does not declare",
    "too_large": "an event over max_event_bytes (or one the endpoint refused as too large)",
    "sampled": "left out by client-side sampling (kept events carry the rate)",
    "locked": "another process held SQLite's write lock for longer than the buffer lasted",
    "cap": "the spool was at its cap and eviction had not caught up yet",
    "after_close": "tracked after close(), e.g. from an exit hook that ran after ours",
    "identity_error": "install.json could not be read or written: the lifecycle events",
    "disk_full": "the disk (or a file-size limit) refused the write",
    "unwritable": "the state dir or spool cannot be written (permissions, read-only)",
    "insecure_dir": "the state dir is not a private directory of this user",
    "unusable_path": "a spool file's name is taken by something that is not a file",
    "io_error": "the OS failed the write",
    "corrupt": "the spool file was corrupt (a host moves it aside and starts afresh)",
    "error": "an unexpected exception in track(), counted instead of raised",
    # Housekeeping: queued events deleted unsent.
    "evicted": "the oldest events, deleted to keep the spool under max_bytes",
    "expired": "older than max_age_days",
    # The uploader.
    "rejected": "the endpoint refused the batch (a 4xx other than 408/413/429)",
}
# What ``classify_error`` and the state-dir checks name a SQLite/OS fault.
STORAGE_FAULTS = (
    "locked", "disk_full", "unwritable", "insecure_dir", "unusable_path", "io_error", "corrupt",
    "error",
)
# Swallowed errors, stored as ``error.<kind>``. ``upload_<why>`` kinds are the
# uploader's failed attempts (``upload_http_503``, ``upload_timeout``...).
ERROR_KINDS = {
    "config": "a bad {PREFIX}_TELEMETRY_* or consent variable: ignored",
    "bad_row": "a spool row that telespool never wrote (edited by hand): skipped",
    "purge": "purge() failed",
    "purge_incomplete": "a purge left a file behind",
    "status": "status() met an unexpected error (what it had read is returned)",
    "thread": "no helper thread could be started",
    "fork": "quiescing the writer around a fork failed",
    "frozen": "a frozen app without uploader.freeze_support(): no uploader started",
    "no_python": "no interpreter to start the uploader with",
    "spawn": "starting the uploader failed",
    # Storage faults met off the call path (helper thread, close): as in DROP_REASONS.
    **{k: DROP_REASONS[k] for k in STORAGE_FAULTS},
}
UPLOAD_ERROR_PREFIX = "upload_"


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


class Losses:
    """Counts not yet written to the spool, by reason. Thread-safe.

    The lock is held for one dict update (well under a microsecond), never
    around I/O, so recording a loss never waits in any real sense.
    """

    def __init__(self) -> None:
        # A real OS lock even under gevent: the helper thread records losses too.
        self._new_lock = os_thread_api()[1]
        self._lock = self._new_lock()
        self._counts: dict[str, int] = {}
        # Every error seen by this process, kept for status() after the
        # pending counts were written (and taken) away.
        self._errors: dict[str, int] = {}

    def add(self, reason: str, n: int = 1) -> None:
        if n <= 0:
            return
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + n

    def error(self, kind: str, n: int = 1) -> None:
        """``n`` swallowed errors, stored as ``error.<kind>``."""
        if n <= 0:
            return
        with self._lock:
            key = ERROR_PREFIX + kind
            self._counts[key] = self._counts.get(key, 0) + n
            self._errors[kind] = self._errors.get(kind, 0) + n

    def take(self) -> dict[str, int]:
        """Everything pending, atomically emptied (give it back with ``restore``)."""
        with self._lock:
            counts, self._counts = self._counts, {}
        return counts

    def restore(self, counts: Mapping[str, int]) -> None:
        """Put back counts that could not be written."""
        with self._lock:
            for reason, n in counts.items():
                self._counts[reason] = self._counts.get(reason, 0) + n

    def pending(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def errors_seen(self) -> dict[str, int]:
        with self._lock:
            return dict(self._errors)

    def clear(self) -> None:
        with self._lock:
            self._counts = {}

    def __bool__(self) -> bool:
        # Unlocked on purpose: the call path's cheap "anything to write?" hint.
        return bool(self._counts)

    def after_fork_in_child(self) -> None:
        """The parent's pending counts are the parent's to write; fresh lock."""
        self._lock = self._new_lock()
        self._counts = {}
        self._errors = {}
