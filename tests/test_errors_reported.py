"""Swallowed errors are counted, shown by status() and reported upstream, once."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from spool import Telemetry
from tests.hosts import host_env
from tests.servers import (
    collector,
    queued,
    refused_port,
    run_uploader,
    set_endpoint,
    start_uploader,
    wait_for,
)
from tests.test_call_path_faults import ExternalWriter


def test_a_swallowed_lock_error_reaches_status_and_the_collector(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with collector(tmp_path / "c.db") as c:
        with Telemetry(
            "demo", "1.0.0", state_dir=state, endpoint=c.url, trigger_interval_s=3600
        ) as t:
            t.track("cli_command", cli_command="eval")
            holder = ExternalWriter(state / "spool.db")
            t.track("cli_command", cli_command="eval")  # parked, nothing lost
            # Counted once the helper waited a full lock_wait_ms for the lock
            # and nobody committed meanwhile (a lock let go sooner is no error).
            wait_for(lambda: t._writer.errors.get("locked", 0) >= 1)  # type: ignore[union-attr]
            holder.release()
            t.track("cli_command", cli_command="eval")
            status = t.status()
            assert status["errors"].get("locked", 0) >= 1
            assert "error.locked" not in status["dropped"]
        # The host's own detached uploader may still hold the lock: wait for it.
        done = run_uploader(state, "--force", "--lock-wait", "20")
        assert done["outcome"] == "empty"
        reported = c.stats()["dropped_reported"]
    assert reported.get("error.locked", 0) >= 1


def test_upload_failures_are_reported_with_the_next_batch_that_gets_through(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    with Telemetry("demo", "1.0.0", state_dir=state, trigger_interval_s=3600) as t:
        t.track("cli_command", cli_command="eval")
    set_endpoint(state, f"http://127.0.0.1:{refused_port()}/v1/events")
    assert run_uploader(state, "--force")["outcome"] == "backoff"
    with collector(tmp_path / "c.db") as c:
        set_endpoint(state, c.url)
        assert run_uploader(state, "--force")["outcome"] == "empty"
        reported = c.stats()["dropped_reported"]
    assert reported.get("error.upload_refused", 0) == 1


def test_a_replayed_batch_does_not_count_its_drop_report_twice(tmp_path: Path) -> None:
    # A real SIGKILL after the collector accepted the batch, before the delete:
    # the re-sent batch carries the same drop report, stored once.
    state = tmp_path / "state"
    with Telemetry("demo", "1.0.0", state_dir=state, trigger_interval_s=3600) as t:
        for _ in range(5):
            t.track("cli_command", cli_command="eval", secret="x@example.com")
    with collector(tmp_path / "c.db") as c:
        set_endpoint(state, c.url)
        # The pause only has to outlast the test's reaction: the victim is SIGKILLed
        # as soon as the collector has stored its first batch.
        env = host_env(TELESPOOL_TEST_PAUSE_AFTER_POST="600")
        with start_uploader(state, "--force", env=env) as victim:
            wait_for(lambda: c.stats()["events"] > 0)
            assert victim.kill() == -signal.SIGKILL
        assert queued(state) > 0
        assert run_uploader(state, "--force")["outcome"] == "empty"
        stats = c.stats()
    assert stats["duplicates"] > 0
    assert stats["dropped_reported"]["unknown_property"] == 5


def test_telespool_status_shows_errors_apart_from_dropped_events(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from spool.cli._click import cli

    state = tmp_path / "state"
    with Telemetry("demo", "1.0.0", state_dir=state) as t:
        t.track("cli_command", cli_command="eval")
        t.track("no_such_event")
        holder = ExternalWriter(state / "spool.db")
        t.track("cli_command", cli_command="eval")
        wait_for(lambda: t._writer.errors.get("locked", 0) >= 1)  # type: ignore[union-attr]
        holder.release()
    result = CliRunner().invoke(
        cli, ["--app", "demo", "--state-dir", str(state), "status", "--json"]
    )
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["dropped"] == {"unknown_event": 1}
    assert status["errors"]["locked"] >= 1
