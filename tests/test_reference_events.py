"""Every reference-schema event, tracked by a real host and read back from the spool."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from spool import Schema, Telemetry

SCHEMA = Schema.reference()

# One realistic call per event (what getpatter 0.7.0's call sites pass), and
# exactly what the spool must hold for it (None: the same).
EXAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "cli_command": ({"cli_command": "eval"}, None),
    "feature_used": (
        {
            "engine": "pipeline",
            "provider": "anthropic",
            "stt_provider": "deepgram",
            "stt_model": "nova-3",
            "tts_provider": "cartesia_tts",
            "tts_model": "sonic_2-20250301",
            "llm_provider": "anthropic",
            "llm_model": "claude-haiku-4-5-20251001",
        },
        {
            "engine": "pipeline",
            "provider": "anthropic",
            "stt_provider": "deepgram",
            "stt_model": "deepgram-nova-3",
            "tts_provider": "cartesia",
            "tts_model": "cartesia-sonic-2",
            "llm_provider": "anthropic",
            "llm_model": "anthropic-claude-haiku-4-5",
        },
    ),
    "agent_configured": (
        {
            "builtin_tool_count": 1,
            "custom_tool_count_bucket": "2_3",
            "integration": "mcp",
            "integration_kind": "mcp",
            "mcp_server_count_bucket": "1",
            "noise_reduction": "far_field",
            "turn_detection": "custom",
            "preambles_used": False,
            "per_tool_timeouts_set": True,
            "llm_fallback_configured": False,
        },
        None,
    ),
    "config_incomplete": ({"missing": "llm_key"}, None),
    "call_started": (
        {
            "engine": "realtime",
            "provider": "openai",
            "carrier": "twilio",
            "direction": "inbound",
            "call_uid": "0f" * 16,
            "time_to_first_call_bucket": "1h_1d",
        },
        None,
    ),
    "call_completed": (
        {
            "outcome": "error",
            "direction": "outbound",
            "call_uid": "0f" * 16,
            "engine": "pipeline",
            "provider": "anthropic",
            "carrier": "telnyx",
            "duration_seconds": 93,
            "latency_ms": 640,
            "cost_usd": 0.04213,
            "turn_count_bucket": "13_plus",
            "stt_latency_ms": 120,
            "llm_ttft_ms": 310,
            "tts_first_byte_ms": 95,
            "eou_latency_ms": 200,
            "error_code": "rate_limit",
            "error_layer": "llm",
            "disconnect_reason": "error",
            "time_to_first_call_bucket": "gt_7d",
        },
        {
            "outcome": "error",
            "direction": "outbound",
            "call_uid": "0f" * 16,
            "engine": "pipeline",
            "provider": "anthropic",
            "carrier": "telnyx",
            "duration_seconds": 93,
            "latency_ms": 640,
            "cost_usd": 0.0421,
            "turn_count_bucket": "13_plus",
            "stt_latency_ms": 120,
            "llm_ttft_ms": 310,
            "tts_first_byte_ms": 95,
            "eou_latency_ms": 200,
            "error_code": "rate_limit",
            "error_layer": "llm",
            "disconnect_reason": "error",
            "time_to_first_call_bucket": "gt_7d",
        },
    ),
    "sdk_initialized": (
        {"carrier": "telnyx", "days_since_install_bucket": 40, "previous_sdk_version": "0.6.3"},
        {
            "carrier": "telnyx",
            "days_since_install_bucket": "30_plus",
            "previous_sdk_version": "0.6.3",
        },
    ),
    "first_run": ({"container": True, "cloud": "aws", "tunnel": "static"}, None),
}


def read_events(state_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    db = sqlite3.connect(state_dir / "spool.db")
    try:
        rows = db.execute("SELECT name, props FROM events ORDER BY id").fetchall()
    finally:
        db.close()
    return [(name, json.loads(props)) for name, props in rows]


def strip_context(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if not k.startswith("ctx_")}


def test_the_examples_cover_every_reference_event() -> None:
    assert set(EXAMPLES) == SCHEMA.events


@pytest.mark.parametrize("event", sorted(EXAMPLES))
def test_each_reference_event_is_tracked_and_read_back(state_dir: Path, event: str) -> None:
    props, expected = EXAMPLES[event]
    with Telemetry("demo", "3.1.0", state_dir=state_dir) as t:
        t.track(event, **props)
        status = t.status()
    assert status["dropped"] == {}
    stored = [p for name, p in read_events(state_dir) if name == event]
    # first_run and sdk_initialized are also emitted by telespool at start.
    host = stored[-1]
    assert strip_context(host) == (props if expected is None else expected)
    assert {k: host[k] for k in host if k.startswith("ctx_")} == {
        "ctx_app_version": "3.1.0",
        "ctx_schema_version": 8,
        "ctx_python": SCHEMA.context("3.1.0")["ctx_python"],
        "ctx_os": SCHEMA.context("3.1.0")["ctx_os"],
        "ctx_arch": SCHEMA.context("3.1.0")["ctx_arch"],
    }


def test_lifecycle_events_first_run_once_then_initialized_every_start(state_dir: Path) -> None:
    startup = {"carrier": "twilio", "tunnel": "static", "engine": "realtime"}
    Telemetry("demo", "1.0.0", state_dir=state_dir, startup_props=startup).close()
    Telemetry("demo", "1.1.0", state_dir=state_dir, startup_props=startup).close()
    names = [name for name, _ in read_events(state_dir)]
    assert names == ["first_run", "sdk_initialized", "sdk_initialized"]
    events = read_events(state_dir)
    first, init1, init2 = (strip_context(p) for _, p in events)
    deploy = {
        "carrier",
        "tunnel",
        "invoked_by_agent",
        "container",
        "serverless",
        "cloud",
        "package_manager",
        "days_since_install_bucket",
    }
    # As getpatter: first_run carries sdk_initialized's props; on an install's
    # first run there is no previous version, so it is omitted.
    assert set(first) == deploy and first == init1
    assert first["carrier"] == "twilio" and first["tunnel"] == "static"  # startup_props
    assert init1["days_since_install_bucket"] == "0"
    assert set(init2) == deploy | {"previous_sdk_version"}
    assert init2["previous_sdk_version"] == "1.0.0"  # the version the previous run reported


def test_previous_sdk_version_is_the_last_runs_version_even_when_unchanged(
    state_dir: Path,
) -> None:
    # getpatter's previous_version() returns what the last run wrote, upgrade or not.
    Telemetry("demo", "1.0.0", state_dir=state_dir).close()
    Telemetry("demo", "1.0.0", state_dir=state_dir).close()
    last = [strip_context(p) for name, p in read_events(state_dir) if name == "sdk_initialized"]
    assert "previous_sdk_version" not in last[0] and last[1]["previous_sdk_version"] == "1.0.0"


def test_an_app_version_with_local_parts_is_reported_as_other(state_dir: Path) -> None:
    with Telemetry("demo", "1.0.0+jane.laptop", state_dir=state_dir) as t:
        t.track("cli_command", cli_command="eval")
    assert all(p["ctx_app_version"] == "other" for _, p in read_events(state_dir))


def test_a_schema_without_lifecycle_emits_nothing_at_start(state_dir: Path) -> None:
    schema = Schema({"name": "tiny", "version": 1, "events": {"ping": {"props": {}}}})
    with Telemetry("demo", "1.0.0", state_dir=state_dir, schema=schema) as t:
        t.track("ping")
    events = read_events(state_dir)
    assert [name for name, _ in events] == ["ping"]
    assert events[0][1]["ctx_schema_version"] == 1
    assert (state_dir / "install.json").exists()


def test_rejections_are_counted_by_reason(state_dir: Path) -> None:
    with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
        t.track("user_signed_up", email="jane@example.com")
        t.track("cli_command", cli_command="deploy", token="sk-ant-secret")
        t.track("call_completed", latency_ms=float("nan"), duration_seconds=10**9)
        t.track("call_started", call_uid="CA" + "0" * 32)  # a carrier SID: removed, not coerced
        dropped = t.status()["dropped"]
    assert dropped == {
        "unknown_event": 1,
        "unknown_property": 1,
        "invalid_value": 3,
        "out_of_range": 1,
    }
