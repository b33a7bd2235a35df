"""The per-request deadline: a watchdog thread, no signals.

``uploader.drain`` is public and runs inside hosts. Its deadline must not
touch the host's SIGALRM handler or interval timer, and must hold on any
thread: a server that drips its reply a byte at a time (every recv succeeds,
so no socket timeout ever fires) is cut off at the deadline.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Reply, ScriptedServer, fill, meta, queued
from uploader import drain

# connect + read = 2 s: the deadline; the drip (about 40 bytes at 0.2 s) takes 8 s.
FAST = {"connect_timeout_s": 1.0, "read_timeout_s": 1.0}


def _drip(envelope: dict[str, Any]) -> Reply:
    return Reply(200, drip_s=0.2)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timers on Windows")
def test_a_hosts_interval_timer_and_alarm_handler_survive_drain(state_dir: Path) -> None:
    fired: list[int] = []
    handlers_during_request: list[Any] = []

    def host_handler(signum: int, frame: object) -> None:
        fired.append(signum)

    def drip_and_look(envelope: dict[str, Any]) -> Reply:
        handlers_during_request.append(signal.getsignal(signal.SIGALRM))
        return _drip(envelope)

    previous = signal.signal(signal.SIGALRM, host_handler)
    signal.setitimer(signal.ITIMER_REAL, 3600.0)
    try:
        with ScriptedServer(drip_and_look) as server:
            fill(state_dir, 5, server.url, **FAST)
            result = drain(state_dir)
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        handler = signal.getsignal(signal.SIGALRM)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert result.outcome == "backoff" and meta(state_dir, "upload")["last_error"] == "timeout"
    assert remaining > 0, "drain cancelled the host's interval timer"
    assert handler is host_handler
    assert handlers_during_request == [host_handler]
    assert fired == []


def test_a_dripping_server_is_cut_off_at_the_deadline_off_the_main_thread(
    state_dir: Path,
) -> None:
    results: list[Any] = []
    with ScriptedServer(_drip) as server:
        fill(state_dir, 5, server.url, **FAST)
        worker = threading.Thread(target=lambda: results.append(drain(state_dir)))
        worker.start()
        worker.join()
    (result,) = results
    assert result.outcome == "backoff", result
    upload = meta(state_dir, "upload")
    assert upload["last_error"] == "timeout" and "exceeded" in result.detail
    assert queued(state_dir) == 5
