"""Every reference-schema event, tracked by a real host and read back from the spool."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from spool import Schema, Telemetry

SCHEMA = Schema.reference()

# One realistic call per event, and exactly what the spool must hold for it.
EXAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "cli_command": ({"command": "eval"}, {"command": "eval"}),
    "feature_used": (
        {
            "engine": "pipeline",
            "provider": "none",
            "stt_provider": "deepgram",
            "stt_model": "nova-3",
            "tts_provider": "cartesia",
            "tts_model": "sonic-2",
            "llm_provider": "anthropic",
            "llm_model": "claude-opus-4-8",
        },
        {
            "engine": "pipeline",
            "provider": "none",
            "stt_provider": "deepgram",
            "stt_model": "deepgram-nova-3",
            "tts_provider": "cartesia",
            "tts_model": "cartesia-sonic-2",
            "llm_provider": "anthropic",
            "llm_model": "anthropic-claude-opus-4-8",
        },
    ),
    "agent_configured": (
        {
            "builtin_tool_count": 3,
            "custom_tool_count": 2,
            "integration": "mcp",
            "noise_reduction": True,
            "turn_detection": "semantic",
            "preambles_used": False,
            "per_tool_timeouts_set": True,
            "llm_fallback_configured": False,
        },
        None,
    ),
    "call_started": (
        {"engine": "realtime", "provider": "openai", "carrier": "twilio", "direction": "inbound"},
        None,
    ),
    "call_completed": (
        {
            "outcome": "completed",
            "error_code": "none",
            "engine": "realtime",
            "provider": "openai",
            "carrier": "twilio",
            "direction": "inbound",
            "latency_ms": 640.4,
            "duration_seconds": 93,
            "cost_usd": 0.04213,
            "turn_count_bucket": 14,
        },
        {
            "outcome": "completed",
            "error_code": "none",
            "engine": "realtime",
            "provider": "openai",
            "carrier": "twilio",
            "direction": "inbound",
            "latency_ms": 640,
            "duration_seconds": 93,
            "cost_usd": 0.0421,
            "turn_count_bucket": "10-19",
        },
    ),
    "sdk_initialized": (
        {"carrier": "telnyx", "days_since_install_bucket": 40, "previous_sdk_version": "4.2.0"},
        {
            "carrier": "telnyx",
            "days_since_install_bucket": "31-90",
            "previous_sdk_version": "4.2.0",
        },
    ),
    "first_run": ({"container": "docker", "cloud": "aws"}, None),
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
        "ctx_schema_version": 5,
        "ctx_python": SCHEMA.context("3.1.0")["ctx_python"],
        "ctx_os": SCHEMA.context("3.1.0")["ctx_os"],
        "ctx_arch": SCHEMA.context("3.1.0")["ctx_arch"],
    }


def test_lifecycle_events_first_run_once_then_initialized_every_start(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC_jane_secret")
    Telemetry("demo", "1.0.0", state_dir=state_dir).close()
    Telemetry("demo", "1.1.0", state_dir=state_dir).close()
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
    }
    assert set(first) == deploy
    assert set(init1) == deploy | {"days_since_install_bucket", "previous_sdk_version"}
    assert first["carrier"] == "twilio"  # presence of the variable, never its value
    assert init1["previous_sdk_version"] == "none" and init1["days_since_install_bucket"] == "0"
    assert init2["previous_sdk_version"] == "1.0.0"
    assert "AC_jane_secret" not in json.dumps(events)


def test_an_app_version_with_local_parts_is_reported_as_other(state_dir: Path) -> None:
    with Telemetry("demo", "1.0.0+jane.laptop", state_dir=state_dir) as t:
        t.track("cli_command", command="eval")
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
        t.track("cli_command", command="deploy", token="sk-ant-secret")
        t.track("call_completed", latency_ms=float("nan"), duration_seconds=10**9)
        dropped = t.status()["dropped"]
    assert dropped == {
        "unknown_event": 1,
        "unknown_property": 1,
        "invalid_value": 2,
        "out_of_range": 1,
    }
