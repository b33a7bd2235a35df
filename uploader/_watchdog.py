"""A per-request deadline that works on any thread and platform: a watchdog thread.

urllib3's timeouts bound each ``recv``/``send``, not the request: a server that
drips a byte per second holds a POST forever. At the deadline the watchdog
shuts the connection's socket down (what urllib3 2.3's
``BaseHTTPResponse.shutdown()`` does, but from connect on, before any
response exists), so the blocked call in the uploading thread returns at once
with an error. No signal is used: a host calling ``uploader.drain`` keeps its
own ``SIGALRM`` handler and ``setitimer`` timers.

The socket is watched through a ``dup`` of its descriptor taken when the
connection opens: ``shutdown`` acts on the socket, whichever descriptor names
it, and the dup stays valid while ``ssl`` wraps (and detaches) the original.
On Windows ``socket.dup`` duplicates the handle the same way (untested here).
"""

from __future__ import annotations

import socket
import threading
import time

__all__ = ["Watchdog"]


class Watchdog:
    """Arm before a request, disarm after; one request at a time per watchdog."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._sock: socket.socket | None = None
        self._fired = False
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- the connection's side ------------------------------------------------------------
    def watch(self, sock: socket.socket) -> None:
        """Watch ``sock`` (a fresh connection's socket) until the next ``watch``."""
        try:
            dup = sock.dup()
        except OSError:
            return  # unwatched: the per-recv timeouts still bound it
        with self._cond:
            old, self._sock = self._sock, dup
            fire_now = self._fired
        if old is not None:
            old.close()
        if fire_now:
            _shutdown(dup)

    # -- the request's side ---------------------------------------------------------------
    def arm(self, seconds: float) -> None:
        with self._cond:
            self._deadline = time.monotonic() + seconds
            self._fired = False
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="telespool-deadline", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def disarm(self) -> bool:
        """Stop watching this request; True if its deadline had passed."""
        with self._cond:
            self._deadline = None
            fired, self._fired = self._fired, False
            self._cond.notify()
        return fired

    def close(self) -> None:
        with self._cond:
            self._closed = True
            sock, self._sock = self._sock, None
            self._cond.notify()
        if sock is not None:
            sock.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._deadline = None
                self._fired = True
                if self._sock is not None:
                    _shutdown(self._sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer or by us: nothing left to interrupt
