"""Finished uploaders are reaped promptly, and the shared child list is locked
(issue 11 Deliver 8, REVIEW C-12). Linux: reads /proc."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from spool import Telemetry
from spool.launch import _spawn, _trigger
from tests.servers import meta, refused_port, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


pytestmark = pytest.mark.usefixtures("no_uploader_left")


def proc_state(pid: int) -> str | None:
    """The kernel's one-letter state of ``pid`` (``Z`` for a zombie), or None once reaped."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):  # reaped between open and read
        return None
    for line in text.splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    return "?"


def test_a_finished_uploader_is_reaped_while_a_backoff_is_pending(state_dir: Path) -> None:
    # This test process is the long-lived host; its endpoint refuses connections.
    endpoint = f"http://127.0.0.1:{refused_port()}/v1/events"
    t = Telemetry(
        app="demo",
        version="1.0.0",
        endpoint=endpoint,
        state_dir=state_dir,
        trigger_events=5,
        trigger_interval_s=0.0,
    )
    for _ in range(10):
        t.track("cli_command", cli_command="eval")
        if _spawn._CHILDREN:
            break

    def spawned_one() -> bool:
        t.track("cli_command", cli_command="eval")
        return bool(_spawn._CHILDREN)

    wait_for(spawned_one)
    pid = _spawn._CHILDREN[-1].pid
    # The drain failed: a backoff is stored, which vetoes every further spawn.
    wait_for(lambda: (meta(state_dir, "upload") or {}).get("next_attempt_at"))
    spawned = t._trigger.spawned if t._trigger is not None else 0

    def reaped() -> bool:
        t.track("cli_command", cli_command="eval")  # the host keeps working as usual
        return proc_state(pid) is None

    wait_for(reaped)  # not left a zombie for the host's lifetime
    assert t._trigger is not None and t._trigger.spawned == spawned  # no new spawn did it
    t.close()


def test_reaping_from_many_threads_at_once_never_raises() -> None:
    # Real finished children, waited for without reaping (WNOWAIT), then
    # reaped by 8 threads at once: each exactly once, and no thread raises.
    reap = getattr(_trigger, "reap_children", None) or getattr(_trigger, "_reap")  # noqa: B009
    true = "/bin/true" if os.path.exists("/bin/true") else "/usr/bin/true"
    pids = [os.posix_spawn(true, [true], os.environ) for _ in range(60)]
    for pid in pids:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    for _round in range(5):
        _spawn._CHILDREN.extend(_spawn._Spawned(pid) for pid in pids[_round::5])
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        try:
            for _ in range(20):
                reap()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    reap()
    assert errors == []
    assert _spawn._CHILDREN == []
    assert all(proc_state(pid) is None for pid in pids)
