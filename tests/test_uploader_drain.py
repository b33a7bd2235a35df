"""The drain loop against real loopback servers: delivery, splitting, rejection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.servers import (
    Reply,
    ScriptedServer,
    collector,
    drops,
    fill,
    fixed,
    meta,
    queued,
    run_uploader,
)
from uploader import drain


def test_ten_thousand_events_reach_the_collector_exactly_once(
    tmp_path: Path, state_dir: Path
) -> None:
    with collector(tmp_path / "collector.db") as c:
        fill(state_dir, 10_000, c.url)
        done = run_uploader(state_dir)
        stats = c.stats()
    assert done["outcome"] == "empty"
    assert done["sent"] == 10_000
    assert stats["events"] == 10_000
    assert stats["duplicates"] == 0
    assert stats["rejected_events"] == 0
    assert queued(state_dir) == 0
    upload = meta(state_dir, "upload")
    assert upload["last_upload_at"] and upload["next_attempt_at"] is None


def test_envelope_carries_schema_app_and_event_fields(state_dir: Path) -> None:
    with ScriptedServer(fixed(200)) as server:
        fill(state_dir, 3, server.url)
        assert drain(state_dir).outcome == "empty"
    (envelope,) = server.envelopes
    assert envelope["schema"] == "voice-agent-sdk"
    assert envelope["schema_hash"].startswith("sha256:")
    assert envelope["app"] == "demo" and envelope["app_version"] == "1.0.0"
    assert "install_id" in envelope and "sent_at" in envelope
    assert envelope["dropped"] == {}
    for event in envelope["events"]:
        assert set(event) == {"id", "name", "time", "run_id", "props"}
        assert isinstance(event["props"], dict)
    assert envelope["events"][-1]["name"] == "cli_command"


def test_413_splits_the_batch_until_it_fits(state_dir: Path) -> None:
    def at_most_7(envelope: dict[str, Any]) -> Reply:
        return Reply(413) if len(envelope["events"]) > 7 else Reply(200)

    with ScriptedServer(at_most_7) as server:
        fill(state_dir, 100, server.url, batch_events=50)
        result = drain(state_dir)
    assert result.outcome == "empty" and result.sent == 100
    assert sorted(server.event_ids) == sorted(set(server.event_ids))
    assert len(server.event_ids) == 100
    assert all(len(env["events"]) <= 7 for env in server.envelopes)


def test_one_event_the_endpoint_always_refuses_as_too_large_is_dropped(state_dir: Path) -> None:
    with ScriptedServer(fixed(413)) as server:
        fill(state_dir, 3, server.url)
        result = drain(state_dir)
    assert result.outcome == "empty"
    assert result.dropped == {"too_large": 3}
    assert queued(state_dir) == 0
    assert drops(state_dir)["too_large"] == 3


def test_400_drops_the_batch_counts_it_rejected_and_reports_it_next_time(
    state_dir: Path,
) -> None:
    with ScriptedServer(fixed(400)) as server:
        fill(state_dir, 30, server.url, batch_events=10)
        result = drain(state_dir)
    assert result.outcome == "empty" and result.sent == 0
    assert result.dropped == {"rejected": 30}
    assert queued(state_dir) == 0
    assert drops(state_dir)["rejected"] == 30
    # The next accepted batch reports the loss upstream, exactly once.
    with ScriptedServer(fixed(200)) as good:
        fill(state_dir, 2, good.url)
        assert drain(state_dir).sent == 2
        fill(state_dir, 2, good.url)
        assert drain(state_dir).sent == 2
    assert good.envelopes[0]["dropped"] == {"rejected": 30}
    assert good.envelopes[1]["dropped"] == {}


def test_no_endpoint_sends_nothing_and_keeps_the_events(state_dir: Path) -> None:
    fill(state_dir, 5, None)
    result = drain(state_dir)
    assert result.outcome == "no_endpoint" and result.remaining == 5


def test_missing_spool_is_not_created(state_dir: Path) -> None:
    state_dir.mkdir()
    assert drain(state_dir).outcome == "empty"
    assert list(state_dir.iterdir()) == []


def test_plain_http_to_a_remote_host_is_refused(state_dir: Path) -> None:
    fill(state_dir, 5, "http://127.0.0.1:9/")
    from spool._policy import Policy
    from spool.store._store import Spool

    s = Spool(state_dir, Policy())
    config = s.get_meta("config")
    config["endpoint"] = "http://example.com/v1/events"  # never contacted: refused first
    s.set_meta("config", config)
    s.close()
    result = drain(state_dir)
    assert result.outcome == "error"
    assert "https" in result.detail
    assert queued(state_dir) == 5
