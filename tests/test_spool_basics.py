"""The spool as a person sees it: readable rows, modes, one INSERT per event."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from spool import ConfigError, Telemetry
from spool.store._migrations import SCHEMA_VERSION
from tests.hosts import host_env, run_host
from tests.servers import queued


def test_tracked_events_are_readable_rows(state_dir: Path) -> None:
    with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
        for _ in range(3):
            t.track("cli_command", cli_command="eval")
        assert t.status()["queued"] >= 3
    db = sqlite3.connect(state_dir / "spool.db")
    rows = db.execute("SELECT uuid, name, time, run_id, props, size FROM events").fetchall()
    names = [r[1] for r in rows]
    assert names.count("cli_command") == 3
    for uuid, _name, time, run_id, props, size in rows:
        assert len(uuid) == 36 and uuid[14] == "4"
        assert time.endswith("Z") and time[10] == "T"
        assert len(run_id) == 36
        assert isinstance(json.loads(props), dict)
        assert size > 0
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_state_dir_is_0700_and_files_0600(state_dir: Path) -> None:
    with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
        t.track("cli_command", cli_command="eval")
        assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700
        for name in os.listdir(state_dir):
            mode = stat.S_IMODE(os.stat(state_dir / name).st_mode)
            assert mode & 0o077 == 0, f"{name} has mode {mode:o}"


def test_sqlite3_cli_reads_rows_while_a_host_appends(tmp_path: Path) -> None:
    state = tmp_path / "state"
    host = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"""
import sys, time
from spool import Telemetry
t = Telemetry("demo", "1.0.0", state_dir={str(state)!r})
t.track("cli_command", cli_command="eval")
print("ready", flush=True)
for i in range(20000):
    t.track("cli_command", cli_command="dashboard")
t.close()
""",
        ],
        env=host_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert host.stdout is not None
    assert host.stdout.readline().strip() == "ready"
    out = subprocess.run(
        ["sqlite3", str(state / "spool.db"), "select name, time, props from events limit 3"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert host.wait(timeout=120) == 0
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0].split("|")
    assert first[0] in ("cli_command", "sdk_initialized", "first_run")
    assert first[1].endswith("Z")
    assert first[2].startswith("{")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"app": "Bad App"},
        {"app": ""},
        {"app": "-leading-dash"},
        {"app": "x" * 65},
        {"version": ""},
        {"format": "xml"},
        {"endpoint": "http://example.com/v1"},
        {"endpoint": "ftp://127.0.0.1/"},
        {"endpoint": "not a url"},
        {"max_bytes": 10},
        {"max_bytes": "big"},
        {"batch_events": 0},
        {"lock_wait_ms": 5000},
        {"no_such_option": 1},
        {"max_age_days": float("nan")},
    ],
)
def test_programmer_errors_fail_loudly_at_construction(
    kwargs: dict[str, object], tmp_path: Path
) -> None:
    args: dict[str, object] = {"app": "demo", "version": "1.0.0", "state_dir": tmp_path / "s"}
    args.update(kwargs)
    with pytest.raises(ConfigError) as info:
        Telemetry(**args)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert str(info.value)


def test_loopback_http_and_https_endpoints_are_accepted(tmp_path: Path) -> None:
    for endpoint in (
        "http://127.0.0.1:9/v1",
        "http://localhost:9/",
        "http://[::1]:9/",
        "https://telemetry.example.com/v1/events",
    ):
        Telemetry("demo", "1.0.0", state_dir=tmp_path / "s", endpoint=endpoint).close()


def test_track_never_raises_whatever_it_is_given(state_dir: Path) -> None:
    class Evil:
        def __str__(self) -> str:
            raise RuntimeError("boom")

        def __repr__(self) -> str:
            raise RuntimeError("boom")

    with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
        t.track(None)  # type: ignore[arg-type]
        t.track(Evil())  # type: ignore[arg-type]
        t.track("cli_command", command=Evil(), x=float("nan"), y=b"\xff", z={"a": [1]})
        t.track("cli_command", **{"k" * 10000: "v" * 1_000_000})
        status = t.status()
    json.dumps(status)
    assert sum(status["dropped"].values()) > 0


def test_status_is_json_serializable_and_has_the_contract_keys(state_dir: Path) -> None:
    with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
        t.track("cli_command", cli_command="eval")
        status = t.status()
    json.dumps(status)
    for key in (
        "enabled",
        "reason",
        "state_dir",
        "queued",
        "bytes",
        "dropped",
        "last_upload_at",
        "next_attempt_at",
    ):
        assert key in status
    assert status["enabled"] is True and status["state_dir"] == str(state_dir)


def test_close_is_idempotent_and_track_after_close_is_counted_not_stored(
    state_dir: Path,
) -> None:
    # close() and track() swallow every exception, so "does not raise" proves
    # nothing: check what they did to the spool instead.
    t = Telemetry("demo", "1.0.0", state_dir=state_dir)
    t.track("cli_command", cli_command="eval")
    t.close()
    stored = queued(state_dir)
    t.close()
    t.track("cli_command", cli_command="eval")
    assert queued(state_dir) == stored  # nothing written after close
    with Telemetry("demo", "1.0.0", state_dir=state_dir) as again:
        # The post-close event is a counted loss, folded in at the next start.
        assert again.status()["dropped"] == {"after_close": 1}


def test_purge_deletes_events_and_drops(state_dir: Path) -> None:
    with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
        t.track("cli_command", cli_command="eval")
        t.track("no_such_event_anywhere")
        t.purge()
        status = t.status()
    assert status["queued"] == 0
    assert status["dropped"] == {}


def test_a_second_host_run_appends_to_the_same_spool(state_dir: Path) -> None:
    code = f"""
from spool import Telemetry
with Telemetry("demo", "1.0.0", state_dir={str(state_dir)!r}) as t:
    t.track("cli_command", cli_command="eval")
"""
    run_host(code)
    run_host(code)
    db = sqlite3.connect(state_dir / "spool.db")
    n = db.execute("SELECT count(*) FROM events WHERE name = 'cli_command'").fetchone()[0]
    runs = db.execute("SELECT count(DISTINCT run_id) FROM events").fetchone()[0]
    assert n == 2 and runs == 2
