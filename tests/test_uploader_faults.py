"""Network faults: each leaves every event queued and a persisted, capped backoff."""

from __future__ import annotations

import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from spool.store._upload_state import parse_time
from tests.servers import (
    Blackhole,
    Reply,
    ScriptedServer,
    fill,
    fixed,
    meta,
    queued,
    refused_port,
    set_endpoint,
)
from uploader import drain
from uploader._backoff import Backoff, parse_retry_after

FAST = {"connect_timeout_s": 1.0, "read_timeout_s": 1.0, "backoff_base_s": 30.0}


def _next_attempt_in(state_dir: Path) -> float:
    at = parse_time(meta(state_dir, "upload")["next_attempt_at"])
    assert at is not None
    return at - time.time()


def test_refused_endpoint_backs_off_and_keeps_events(state_dir: Path) -> None:
    fill(state_dir, 20, f"http://127.0.0.1:{refused_port()}/v1/events", **FAST)
    result = drain(state_dir)
    assert result.outcome == "backoff"
    assert queued(state_dir) == 20
    upload = meta(state_dir, "upload")
    assert upload["failures"] == 1 and upload["errors"] == {"refused": 1}
    assert 0 < _next_attempt_in(state_dir) <= 30.0


def test_blackholed_endpoint_times_out_and_backs_off(state_dir: Path) -> None:
    with Blackhole() as hole:
        fill(state_dir, 20, hole.url, **FAST)
        result = drain(state_dir)
    assert result.outcome == "backoff"
    assert queued(state_dir) == 20
    assert meta(state_dir, "upload")["last_error"] in ("timeout", "connect_timeout")


def test_500_backs_off_and_a_second_pass_waits(state_dir: Path) -> None:
    with ScriptedServer(fixed(500)) as server:
        fill(state_dir, 20, server.url, **FAST)
        assert drain(state_dir).outcome == "backoff"
        assert drain(state_dir).outcome == "backoff"  # waits: sends nothing
        assert server.requests == 1
        assert drain(state_dir, force=True).outcome == "backoff"  # a forced flush tries again
        assert server.requests == 2
    upload = meta(state_dir, "upload")
    assert upload["failures"] == 2 and upload["errors"] == {"http_500": 2}
    assert queued(state_dir) == 20


@pytest.mark.parametrize("status", [503, 429, 408])
def test_retry_after_seconds_is_honoured(state_dir: Path, status: int) -> None:
    with ScriptedServer(fixed(status, **{"Retry-After": "120"})) as server:
        fill(state_dir, 5, server.url, **FAST)
        assert drain(state_dir).outcome == "backoff"
    assert 100 < _next_attempt_in(state_dir) <= 120
    assert queued(state_dir) == 5


def test_retry_after_http_date_is_honoured(state_dir: Path) -> None:
    when = formatdate(time.time() + 300, usegmt=True)
    with ScriptedServer(fixed(503, **{"Retry-After": when})) as server:
        fill(state_dir, 5, server.url, **FAST)
        assert drain(state_dir).outcome == "backoff"
    assert 250 < _next_attempt_in(state_dir) <= 301


def test_retry_after_is_capped_by_backoff_max(state_dir: Path) -> None:
    with ScriptedServer(fixed(503, **{"Retry-After": "999999999"})) as server:
        fill(state_dir, 5, server.url, **FAST, backoff_max_s=600.0)
        assert drain(state_dir).outcome == "backoff"
    assert 590 < _next_attempt_in(state_dir) <= 600


def test_connection_reset_mid_body_retries_later_then_delivers(state_dir: Path) -> None:
    with ScriptedServer(fixed(200)) as server:
        server.reset_next = 1
        fill(state_dir, 50, server.url, **FAST)
        result = drain(state_dir)
        assert result.outcome == "backoff"
        assert meta(state_dir, "upload")["last_error"] == "reset"
        assert queued(state_dir) == 50
        assert drain(state_dir, force=True).sent == 50
    assert len(set(server.event_ids)) == 50


def test_slow_drip_reply_is_cut_off_by_the_request_deadline(state_dir: Path) -> None:
    def drip(envelope: dict[str, Any]) -> Reply:
        return Reply(200, drip_s=0.2)  # every recv succeeds: only a deadline ends it

    with ScriptedServer(drip) as server:
        fill(state_dir, 5, server.url, **FAST)
        result = drain(state_dir)
    assert result.outcome == "backoff"
    assert meta(state_dir, "upload")["last_error"] == "timeout"
    assert queued(state_dir) == 5


def test_success_after_failures_resets_the_backoff(state_dir: Path) -> None:
    with ScriptedServer(fixed(503)) as bad:
        fill(state_dir, 5, bad.url, **FAST)
        drain(state_dir)
    with ScriptedServer(fixed(200)) as good:
        set_endpoint(state_dir, good.url)
        assert drain(state_dir, force=True).sent == 5
    upload = meta(state_dir, "upload")
    assert upload["failures"] == 0 and upload["next_attempt_at"] is None


def test_a_next_attempt_beyond_the_cap_is_treated_as_a_clock_jump(state_dir: Path) -> None:
    with ScriptedServer(fixed(200)) as server:
        fill(state_dir, 5, server.url, **FAST, backoff_max_s=600.0)
        from spool._policy import Policy
        from spool.store._store import Spool
        from spool.store._upload_state import format_time, update_upload_state

        s = Spool(state_dir, Policy())
        update_upload_state(s, {"next_attempt_at": format_time(time.time() + 10 * 86400)})
        s.close()
        assert drain(state_dir).sent == 5


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    b = Backoff(base_s=10.0, max_s=100.0)
    delays = []
    for _ in range(6):
        b = b.increment()
        delays.append(b.delay())
    assert 5.0 <= delays[0] <= 10.0
    assert 10.0 <= delays[1] <= 20.0
    assert 20.0 <= delays[2] <= 40.0
    assert all(d <= 100.0 for d in delays)
    assert b.failures == 6 and b.reset().failures == 0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after(formatdate(1000.0, usegmt=True), now=990.0) == pytest.approx(10.0)
    assert parse_retry_after(formatdate(1000.0, usegmt=True), now=2000.0) == 0.0
