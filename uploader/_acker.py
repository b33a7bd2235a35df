"""The ack thread: deletes acknowledged batches on a second connection.

SQLite and zlib release the GIL, so the DELETE of batch k overlaps the read,
gzip and POST of batch k+1 on the other core: the drain's biggest cost stops
being serial. Acks stay in order and each is one transaction; a crash before
one commits leaves its rows queued (re-sent, deduplicated by the receiver).
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

from spool._policy import ACK_QUEUE_DEPTH, UPLOADER_BUSY_MS, Policy
from spool.store._store import Spool

__all__ = ["Acker"]

# first id, last id, the drops the batch reported, its uuids, the epoch it was read in.
_Ack = tuple[int, int, dict[str, int], list[str], int]


class Acker:
    """Submit acks in order; ``wait`` settles them, ``close`` ends the thread.

    An error in the thread (the spool went corrupt, say) is raised from the
    next ``submit`` or ``wait``, so the pass reports it.
    """

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir
        # Bounded: memory stays flat whatever the backlog.
        self._queue: queue.Queue[_Ack | None] = queue.Queue(maxsize=ACK_QUEUE_DEPTH)
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
        """Settle what is pending and stop the thread; returns rows deleted since last call."""
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
            spool = Spool(self._state_dir, Policy(), busy_ms=UPLOADER_BUSY_MS, recover=False)
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
