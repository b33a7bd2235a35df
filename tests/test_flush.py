"""Telemetry.flush / run_flush: bounded, blocking, and urllib3 stays out of the host."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from spool import FlushResult, Telemetry
from spool.launch._flush import run_flush
from tests.hosts import host_env
from tests.servers import Blackhole, ScriptedServer, collector, fill, fixed, queued


def test_flush_sends_everything_and_reports_progress(tmp_path: Path, state_dir: Path) -> None:
    with collector(tmp_path / "c.db") as c:
        fill(state_dir, 1200, c.url, batch_events=500)
        lines: list[dict[str, Any]] = []
        result = run_flush(state_dir, timeout=30, on_progress=lines.append)
        assert c.stats()["events"] == 1200
    assert isinstance(result, FlushResult)
    assert result.outcome == "empty" and result.ok
    assert result.sent == 1200 and result.remaining == 0
    assert [line["type"] for line in lines] == ["progress"] * 4 + ["done"]
    assert [line["remaining"] for line in lines[:4]] == [1200, 700, 200, 0]
    assert queued(state_dir) == 0


def test_telemetry_flush_delivers_what_the_host_tracked(tmp_path: Path, state_dir: Path) -> None:
    with collector(tmp_path / "c.db") as c:
        t = Telemetry(app="demo", version="1.0.0", endpoint=c.url, state_dir=state_dir)
        for _ in range(10):
            t.track("cli_command", cli_command="eval")
        n = t.status()["queued"]
        result = t.flush(timeout=30)
        # The uploader the host starts at launch (it found the lifecycle events queued)
        # may deliver some or all of them first; flush() sends the rest.
        assert result.outcome == "empty" and result.sent <= n, result
        assert c.stats()["events"] == n
        assert t.status()["queued"] == 0
        t.close()


def test_flush_against_a_blackhole_is_bounded_and_keeps_the_events(state_dir: Path) -> None:
    with Blackhole() as hole:
        fill(state_dir, 10, hole.url, read_timeout_s=30.0, connect_timeout_s=30.0)
        result = run_flush(state_dir, timeout=1.5)
    # The child's budget caps the request, well before the read timeout.
    assert result.outcome == "backoff"
    assert result.remaining == 10
    assert queued(state_dir) == 10


def test_flush_honours_a_pending_backoff_unless_forced(state_dir: Path) -> None:
    with ScriptedServer(fixed(503, **{"Retry-After": "300"})) as server:
        fill(state_dir, 5, server.url)
        assert run_flush(state_dir, timeout=10).outcome == "backoff"
        second = run_flush(state_dir, timeout=10)
        assert second.outcome == "backoff" and second.next_attempt_at
        assert server.requests == 1
        run_flush(state_dir, timeout=10, force=True)
        assert server.requests == 2


def test_flush_when_disabled_or_without_endpoint_does_nothing(
    state_dir: Path, tmp_path: Path
) -> None:
    off = Telemetry(app="demo", version="1.0.0", enabled=False, state_dir=state_dir)
    assert off.flush().outcome == "disabled"
    none = Telemetry(app="demo", version="1.0.0", state_dir=tmp_path / "other")
    assert none.flush().outcome == "no_endpoint"
    none.close()


def test_flush_on_a_missing_state_dir_is_empty(tmp_path: Path) -> None:
    assert run_flush(tmp_path / "nowhere", timeout=10).outcome == "empty"


def test_flush_never_loads_urllib3_into_the_host(state_dir: Path) -> None:
    with ScriptedServer(fixed(200)) as server:
        fill(state_dir, 5, server.url)
        code = (
            "import sys; from spool.launch._flush import run_flush; from pathlib import Path; "
            f"r = run_flush(Path({str(state_dir)!r}), timeout=20); "
            "print(r.outcome, r.sent, 'urllib3' in sys.modules, 'uploader' in sys.modules)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=host_env(),
            timeout=60,
        ).stdout.split()
    assert out == ["empty", "5", "False", "False"]
