"""Under gevent the helper thread is a real OS thread, never a greenlet on the hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hosts import run_host

pytest.importorskip("gevent")


def test_wal_maintenance_under_gevent_runs_on_a_real_os_thread(state_dir: Path) -> None:
    proc = run_host(
        f"""
        from gevent import monkey
        monkey.patch_all()
        import json, os, threading, time
        import gevent
        from spool import Telemetry

        worst = [0.0]
        def ticker():
            # How long the hub ever went without running this greenlet.
            last = time.perf_counter()
            while True:
                gevent.sleep(0.001)  # yields to the hub: measures stalls, proves no absence
                now = time.perf_counter()
                worst[0] = max(worst[0], now - last)
                last = now

        gevent.spawn(ticker)
        t = Telemetry("demo", "1.0.0", state_dir={str(state_dir)!r}, max_bytes=512 * 1024)
        tasks = 0
        for _ in range(40):
            for _ in range(100):
                t.track("cli_command", cli_command="eval")
            gevent.sleep(0.02)  # a pause: the helper checkpoints and restarts the WAL
            tasks = max(tasks, len(os.listdir("/proc/self/task")))
        spool = t._writer.spool
        restarted = spool.get_meta("wal_restarted_at")
        t.close()
        print(json.dumps({{"os_threads": tasks, "restarted": restarted,
                          "worst_stall_ms": worst[0] * 1000}}))
        """
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(result)
    assert result["restarted"], result  # the helper did run its WAL rounds
    assert result["os_threads"] >= 2, result  # ...beside the hub, on a thread of its own
