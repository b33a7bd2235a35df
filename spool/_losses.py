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

__all__ = ["ERROR_PREFIX", "Losses", "split_errors"]

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

    def error(self, kind: str) -> None:
        """A swallowed error, stored as ``error.<kind>``."""
        with self._lock:
            key = ERROR_PREFIX + kind
            self._counts[key] = self._counts.get(key, 0) + 1
            self._errors[kind] = self._errors.get(kind, 0) + 1

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
