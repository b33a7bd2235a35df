"""The host<->uploader contract (spool/_protocol.py), each piece end to end.

The host builds the argv and writes the config row with the protocol's
serialisers; a real ``python -m uploader`` child parses them, posts to a real
loopback server, and its progress lines and exit status come back through
the protocol's parsers. Nothing here is faked on either side.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from spool import FlushResult, Telemetry
from spool._policy import Policy
from spool._protocol import (
    CONFIG_KEY,
    UploaderArgs,
    UploaderConfig,
    decode_line,
    done_line,
    encode_line,
    exit_status,
    progress_line,
    result_from_done,
)
from spool.install._identity import read_install_id
from spool.launch._spawn import uploader_command
from spool.store._store import Spool
from spool.store._upload_state import format_time, update_upload_state
from tests.hosts import host_env
from tests.servers import ScriptedServer, fill, fixed, meta, queued

PROGRESS_KEYS = {"type", "sent", "remaining", "dropped"}
DONE_KEYS = {"type", "outcome", "sent", "remaining", "dropped", "detail", "next_attempt_at"}


def _config(endpoint: str | None, fmt: str = "json", **policy: int) -> UploaderConfig:
    return UploaderConfig(
        app="demo",
        env_prefix="DEMO",
        app_version="9.8.7",
        endpoint=endpoint,
        format=fmt,
        schema_name="proto-test",
        schema_version=42,
        schema_hash="sha256:feed",
        policy=Policy(**policy),
    )


def _write_config(state_dir: Path, config: UploaderConfig) -> None:
    s = Spool(state_dir, Policy())
    try:
        s.set_meta(CONFIG_KEY, config.to_row())
    finally:
        s.close()


def _run_child(args: UploaderArgs) -> tuple[list[dict[str, object]], int]:
    """Start the uploader exactly as the host does; its decoded lines and exit status."""
    argv = uploader_command(args)
    assert argv is not None
    proc = subprocess.run(argv, capture_output=True, env=host_env(), timeout=60)
    lines = [decode_line(raw) for raw in proc.stdout.splitlines()]
    assert all(line is not None for line in lines), proc.stdout
    return [line for line in lines if line is not None], proc.returncode


# -- each piece through the real child -------------------------------------------------------
def test_config_row_argv_and_progress_lines_round_trip_through_a_real_uploader(
    state_dir: Path,
) -> None:
    fill(state_dir, 7, None)
    with ScriptedServer(fixed(200)) as server:
        # batch_events travels in the config row: 7 events make 3 requests.
        config = _config(server.url, batch_events=3)
        _write_config(state_dir, config)
        lines, status = _run_child(
            UploaderArgs(state_dir, budget_s=30.0, progress=True, lock_wait_s=0.5)
        )
    assert UploaderConfig.from_row(meta(state_dir, CONFIG_KEY)) == config
    assert [set(line) for line in lines] == [PROGRESS_KEYS] * 4 + [DONE_KEYS]
    assert [line["remaining"] for line in lines[:4]] == [7, 4, 1, 0]
    assert [line["sent"] for line in lines[:4]] == [0, 3, 6, 7]
    result = result_from_done(lines[-1])
    assert result == FlushResult("empty", sent=7, remaining=0, dropped={})
    assert status == exit_status(result.outcome) == 0
    assert server.requests == 3
    for envelope in server.envelopes:
        assert (envelope["app"], envelope["app_version"]) == ("demo", "9.8.7")
        assert (envelope["schema"], envelope["schema_version"]) == ("proto-test", 42)
        assert envelope["schema_hash"] == "sha256:feed"
        assert envelope["install_id"] == read_install_id(state_dir) is not None
    assert queued(state_dir) == 0


def test_force_and_budget_arguments_reach_the_child(state_dir: Path) -> None:
    fill(state_dir, 5, None)
    with ScriptedServer(fixed(200)) as server:
        _write_config(state_dir, _config(server.url))
        later = format_time(time.time() + 3600)
        s = Spool(state_dir, Policy())
        try:
            update_upload_state(s, {"next_attempt_at": later, "failures": 1})
        finally:
            s.close()
        lines, _ = _run_child(UploaderArgs(state_dir, progress=True))
        waited = result_from_done(lines[-1])
        assert (waited.outcome, waited.next_attempt_at, waited.remaining) == ("backoff", later, 5)
        lines, _ = _run_child(UploaderArgs(state_dir, budget_s=0.0, progress=True, force=True))
        assert result_from_done(lines[-1]).outcome == "budget"
        lines, _ = _run_child(UploaderArgs(state_dir, progress=True, force=True))
        assert result_from_done(lines[-1]) == FlushResult("empty", sent=5)
        assert server.requests == 1


def test_a_failed_pass_exits_1_and_without_progress_prints_nothing(state_dir: Path) -> None:
    fill(state_dir, 2, None)
    _write_config(state_dir, _config("http://127.0.0.1:9/", fmt="no-such-format"))
    lines, status = _run_child(UploaderArgs(state_dir, progress=True))
    result = result_from_done(lines[-1])
    assert result.outcome == "error" and "no-such-format" in result.detail
    assert status == exit_status("error") == 1
    lines, status = _run_child(UploaderArgs(state_dir))
    assert (lines, status) == ([], 1)
    assert queued(state_dir) == 2


# -- the serialisers themselves ---------------------------------------------------------------
def test_a_hosts_config_row_is_what_the_protocol_writes(state_dir: Path) -> None:
    t = Telemetry(
        app="demo",
        version="1.2.3",
        state_dir=state_dir,
        format="otlp",
        env_prefix="DEMOX",
        allow_in_ci=True,
        batch_events=9,
    )
    t.close()
    row = meta(state_dir, CONFIG_KEY)
    config = UploaderConfig.from_row(row)
    assert config is not None and config.to_row() == row
    assert (config.app, config.env_prefix, config.app_version) == ("demo", "DEMOX", "1.2.3")
    assert (config.format, config.endpoint, config.policy.batch_events) == ("otlp", None, 9)
    assert config.schema_name == t.schema.name and config.schema_hash == t.schema.hash


@pytest.mark.parametrize(
    "args",
    [
        UploaderArgs(Path("/state")),
        UploaderArgs(Path("/s p a c e"), budget_s=1.25, progress=True, lock_wait_s=0.625),
        UploaderArgs(Path("/state"), budget_s=0.0, force=True),
    ],
)
def test_argv_round_trips(args: UploaderArgs) -> None:
    assert UploaderArgs.from_argv(args.to_argv()) == args


def test_lines_round_trip() -> None:
    result = FlushResult("backoff", 3, 4, {"rejected": 2}, "http_503", "2026-01-01T00:00:00Z")
    assert result_from_done(decode_line(encode_line(done_line(result))) or {}) == result
    line = progress_line(1, 2, {"expired": 3})
    assert decode_line(encode_line(line).encode()) == line
    assert decode_line(b"not json") is None and decode_line(b"[1]") is None


@pytest.mark.parametrize(
    "row",
    [None, [], "text", {"schema": "x"}, {"schema": {"version": "v"}}, {"endpoint": 5}],
)
def test_a_row_no_host_writes_reads_as_none(row: object) -> None:
    assert UploaderConfig.from_row(row) is None
