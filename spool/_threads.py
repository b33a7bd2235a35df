"""Real OS threads and locks, even under gevent or eventlet monkey-patching.

Under ``gevent.monkey.patch_all()`` a ``threading.Thread`` is a greenlet: its
SQLite checkpoints and fsyncs would run on the hub's OS thread and stall every
request greenlet (5-373 ms measured). The helper thread therefore starts with
the *original* ``_thread.start_new_thread`` and synchronises with the original
``allocate_lock``, so it runs beside the hub and releases the GIL in SQLite.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["green_patched", "os_sleep", "os_thread_api", "wait_unlocked"]


def green_patched() -> bool:
    """True when threading has been monkey-patched by gevent or eventlet."""
    gmonkey: Any = sys.modules.get("gevent.monkey")
    if gmonkey is not None:
        try:
            if gmonkey.is_module_patched("threading"):
                return True
        except Exception:  # an unusual gevent: treat as unpatched
            pass
    patcher: Any = sys.modules.get("eventlet.patcher")
    if patcher is not None:
        try:
            return bool(patcher.is_monkey_patched("thread"))  # untested: eventlet not in CI
        except Exception:
            pass
    return False


def os_thread_api() -> tuple[Callable[..., Any], Callable[[], Any]]:
    """``(start_new_thread, allocate_lock)`` that make real OS threads and locks."""
    gmonkey: Any = sys.modules.get("gevent.monkey")
    if gmonkey is not None and green_patched():
        try:
            return (
                gmonkey.get_original("_thread", "start_new_thread"),
                gmonkey.get_original("_thread", "allocate_lock"),
            )
        except Exception:
            pass
    patcher: Any = sys.modules.get("eventlet.patcher")
    if patcher is not None and green_patched():
        try:  # untested: eventlet not in CI
            original = patcher.original("_thread")
            return original.start_new_thread, original.allocate_lock
        except Exception:
            pass
    import _thread

    return _thread.start_new_thread, _thread.allocate_lock


def os_sleep() -> Callable[[float], None]:
    """The real ``time.sleep``: a patched one would run a hub in the helper thread."""
    gmonkey: Any = sys.modules.get("gevent.monkey")
    if gmonkey is not None and green_patched():
        try:
            return gmonkey.get_original("time", "sleep")  # type: ignore[no-any-return]
        except Exception:
            pass
    import time

    return time.sleep


def wait_unlocked(lock: Any, timeout_s: float, look_s: float = 0.001) -> None:
    """Wait (off the call path) until ``lock`` is free or ``timeout_s`` passed,
    without taking it: a taker would make appending threads hand their rows
    over to it, and rows handed to a thread that does not write them stay
    parked past the buffer's limit."""
    import time

    sleep = os_sleep()
    until = time.monotonic() + timeout_s
    while lock.locked() and time.monotonic() < until:
        sleep(look_s)
