"""``telespool``: through click's CliRunner and as the real installed console script."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from spool import Schema, Telemetry
from spool.cli._click import cli
from tests.loopback import clean_env, telespool, tree
from tests.servers import ScriptedServer


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def at(state_dir: Path, *args: str) -> list[str]:
    return ["--app", "demo", "--state-dir", str(state_dir), *args]


def make_spool(state_dir: Path, n: int = 5) -> dict[str, Any]:
    """A real spool written by a real Telemetry: n cli_command events and one drop."""
    with Telemetry(app="demo", version="1.2.3", state_dir=state_dir) as t:
        for i in range(n):
            t.track("cli_command", cli_command="eval" if i % 2 == 0 else "dashboard")
        t.track("no_such_event", x=1)
        status = t.status()
    return status


def point_at(state_dir: Path, url: str) -> None:
    """Give an existing spool an endpoint, as a host constructed with one would."""
    with sqlite3.connect(state_dir / "spool.db") as conn:
        conn.execute(
            "UPDATE meta SET value = json_set(value, '$.endpoint', ?) WHERE key = 'config'", (url,)
        )


def snapshot(state_dir: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in state_dir.iterdir()}


def one_line_error(text: str) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text


# -- status ----------------------------------------------------------------------------
def test_status_of_a_missing_state_dir_creates_nothing(tmp_path: Path) -> None:
    state_dir = tmp_path / "absent"
    result = invoke(*at(state_dir, "status", "--json"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["state_dir_exists"] is False
    assert data["queued"] == 0
    assert not state_dir.exists()


def test_status_reports_a_real_spool(state_dir: Path) -> None:
    host = make_spool(state_dir, 5)
    data = json.loads(invoke(*at(state_dir, "status", "--json")).stdout)
    assert data["enabled"] is True and data["reason"] == "on"
    assert data["queued"] == host["queued"] >= 5
    assert data["bytes"] == host["bytes"]
    assert data["dropped"]["unknown_event"] == 1
    assert data["oldest"] is not None and data["oldest_age_s"] >= 0
    assert data["app_version"] == "1.2.3"
    assert data["last_upload_at"] is None
    text = invoke(*at(state_dir, "status")).stdout
    assert "telemetry:" in text and "unknown_event=1" in text
    assert f"{data['queued']} events" in text


def test_status_shows_why_telemetry_is_off(state_dir: Path) -> None:
    make_spool(state_dir)
    result = invoke(*at(state_dir, "status", "--json"), env={"DO_NOT_TRACK": "1"})
    data = json.loads(result.stdout)
    assert (data["enabled"], data["reason"]) == (False, "do_not_track")
    assert "DO_NOT_TRACK" in invoke(*at(state_dir, "status"), env={"DO_NOT_TRACK": "1"}).stdout


# -- inspect ---------------------------------------------------------------------------
def test_inspect_shows_the_queued_events_as_a_table(state_dir: Path) -> None:
    make_spool(state_dir, 5)
    out = invoke(*at(state_dir, "inspect", "--event", "cli_command")).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["id", "time", "(UTC)", "event", "props"]
    assert sum('"cli_command":"eval"' in line for line in lines) == 3
    assert sum('"cli_command":"dashboard"' in line for line in lines) == 2
    assert lines[-1].startswith("(5 of 5 queued events shown, oldest first;")
    assert "ctx_" not in "\n".join(lines[:-1])


def test_inspect_json_limit_and_event_filter(state_dir: Path) -> None:
    make_spool(state_dir, 5)
    data = json.loads(invoke(*at(state_dir, "inspect", "--json", "--limit", "2")).stdout)
    assert len(data["events"]) == 2
    assert data["events"][0]["id"] < data["events"][1]["id"]  # oldest first
    every = json.loads(invoke(*at(state_dir, "inspect", "--json", "--all")).stdout)
    assert data["events"] == every["events"][-2:]  # the two most recent
    only = json.loads(
        invoke(*at(state_dir, "inspect", "--json", "--event", "cli_command", "--all")).stdout
    )
    assert only["total"] == 5
    assert {e["name"] for e in only["events"]} == {"cli_command"}
    assert set(only["events"][0]) == {"id", "uuid", "name", "time", "run_id", "props", "size"}
    assert only["events"][0]["props"]["cli_command"] == "eval"


def test_inspect_and_status_change_nothing_on_disk(state_dir: Path) -> None:
    make_spool(state_dir)
    before = snapshot(state_dir)
    for command in ("status", "inspect"):
        assert invoke(*at(state_dir, command)).exit_code == 0
    assert snapshot(state_dir) == before  # no -wal/-shm, no write, not even an mtime


def test_inspect_works_while_a_host_is_writing(state_dir: Path) -> None:
    make_spool(state_dir, 3)
    with Telemetry(app="demo", version="1.2.3", state_dir=state_dir) as host:
        host.track("cli_command", cli_command="eval")
        # An external writer holds the write lock with an uncommitted row.
        writer = sqlite3.connect(state_dir / "spool.db", isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute(
            "INSERT INTO events (uuid, name, time, run_id, props, size) "
            "VALUES ('u', 'cli_command', '2099-01-01T00:00:00.000000Z', 'r', '{}', 2)"
        )
        data = json.loads(invoke(*at(state_dir, "inspect", "--json", "--all")).stdout)
        writer.execute("ROLLBACK")
        writer.close()
        host.track("cli_command", cli_command="dashboard")  # the host still writes
        after = json.loads(invoke(*at(state_dir, "status", "--json")).stdout)
    names = [e["props"] for e in data["events"] if e["name"] == "cli_command"]
    assert len(names) == 4  # committed rows only; the open transaction is invisible
    assert after["queued"] == data["total"] + 1


def test_inspect_of_a_missing_spool_says_so(tmp_path: Path) -> None:
    result = invoke(*at(tmp_path / "absent", "inspect"))
    assert result.exit_code == 0
    assert "no queued events" in result.stdout
    assert not (tmp_path / "absent").exists()


# -- bad input -------------------------------------------------------------------------
def test_a_corrupt_spool_is_a_one_line_error(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    (state_dir / "spool.db").write_bytes(b"this is not sqlite" * 500)
    for command in ("status", "inspect"):
        result = invoke(*at(state_dir, command))
        assert result.exit_code == 1
        one_line_error(result.stderr)
        assert "not a database" in result.stderr


def test_a_database_that_is_not_a_spool_is_refused(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    with sqlite3.connect(state_dir / "spool.db") as conn:
        conn.execute("CREATE TABLE other (x)")
    result = invoke(*at(state_dir, "inspect"))
    assert result.exit_code == 1
    one_line_error(result.stderr)
    assert "not a telespool spool" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--app", "demo", "bogus"], "No such command"),
        (["status"], "--app"),
        (["--app", "Not Valid!", "status"], "app must match"),
        (["--app", "demo", "inspect", "--limit", "x"], "--limit"),
        (["--app", "demo", "status", "--nope"], "--nope"),
    ],
)
def test_bad_input_is_a_one_line_error_with_exit_code_2(args: list[str], needle: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    one_line_error(result.stderr)
    assert needle in result.stderr


# -- purge, disable, enable ----------------------------------------------------------------
def test_purge_removes_events_drops_and_the_install_id(state_dir: Path) -> None:
    make_spool(state_dir, 5)
    (state_dir / "install.json").write_text('{"install_id": "x"}')
    with Telemetry(app="demo", version="1.2.3", state_dir=state_dir) as host:
        host.track("cli_command", cli_command="eval")
        data = json.loads(invoke(*at(state_dir, "purge", "--json")).stdout)
        assert data["cleared_events"] >= 6
        assert "install.json" in data["removed"]
        status = json.loads(invoke(*at(state_dir, "status", "--json")).stdout)
        assert (status["queued"], status["dropped"], status["install_id"]) == (0, {}, None)
        host.track("cli_command", cli_command="dashboard")  # the running host carries on
        assert host.status()["queued"] == 1
    assert not (state_dir / "install.json").exists()


def test_purge_of_a_corrupt_spool_deletes_it(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    (state_dir / "spool.db").write_bytes(b"garbage" * 1000)
    result = invoke(*at(state_dir, "purge"))
    assert result.exit_code == 0, result.output
    assert not (state_dir / "spool.db").exists()


def test_disable_leaves_only_the_marker_and_enable_starts_afresh(state_dir: Path) -> None:
    make_spool(state_dir)
    (state_dir / "install.json").write_text('{"install_id": "old"}')
    result = invoke(*at(state_dir, "disable"))
    assert result.exit_code == 0
    assert os.listdir(state_dir) == ["disabled"]
    assert os.stat(state_dir / "disabled").st_mode & 0o777 == 0o600
    off = Telemetry(app="demo", version="1.2.3", state_dir=state_dir)
    off.track("cli_command", cli_command="eval")
    assert off.status()["reason"] == "marker"
    assert os.listdir(state_dir) == ["disabled"]

    data = json.loads(invoke(*at(state_dir, "enable", "--json")).stdout)
    assert data["was_disabled"] is True and data["enabled"] is True
    assert not state_dir.exists()  # the marker was all there was
    with Telemetry(app="demo", version="1.2.3", state_dir=state_dir) as on:
        on.track("cli_command", cli_command="eval")
        assert on.status()["enabled"] is True
    install = state_dir / "install.json"
    if install.exists():  # a new install: never the old id
        assert json.loads(install.read_text())["install_id"] != "old"


def test_disable_creates_a_private_state_dir(tmp_path: Path) -> None:
    state_dir = tmp_path / "fresh" / "telemetry"
    assert invoke(*at(state_dir, "disable")).exit_code == 0
    assert os.stat(state_dir).st_mode & 0o777 == 0o700
    assert os.listdir(state_dir) == ["disabled"]


def test_enable_says_when_telemetry_stays_off(state_dir: Path) -> None:
    invoke(*at(state_dir, "disable"))
    result = invoke(*at(state_dir, "enable"), env={"DO_NOT_TRACK": "1"})
    assert result.exit_code == 0
    assert "stays off [do_not_track]" in result.stdout


# -- schema --------------------------------------------------------------------------------
def test_schema_prints_the_reference_schema() -> None:
    doc = json.loads(invoke("schema").stdout)
    assert Schema(doc) == Schema.reference()


def test_schema_validates_a_file(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(invoke("schema").stdout)
    result = invoke("schema", str(good), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["hash"] == Schema.reference().hash
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "version": "one", "events": {"Bad Name": {}}}')
    result = invoke("schema", str(bad))
    assert result.exit_code == 1
    assert "invalid schema, 2 problem(s)" in result.stdout
    assert "events.Bad Name" in result.stdout
    data = json.loads(invoke("schema", str(bad), "--json").stdout)
    assert data["valid"] is False and len(data["problems"]) == 2
    missing = invoke("schema", str(tmp_path / "missing.json"))
    assert missing.exit_code == 1
    one_line_error(missing.stderr)


# -- flush ---------------------------------------------------------------------------------
@pytest.fixture
def listener() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


def test_flush_sends_everything_to_a_real_endpoint(
    state_dir: Path, listener: ScriptedServer
) -> None:
    queued = make_spool(state_dir, 40)["queued"]
    point_at(state_dir, listener.url)
    data = json.loads(invoke(*at(state_dir, "flush", "--json", "--timeout", "30")).stdout)
    assert (data["outcome"], data["ok"], data["sent"], data["remaining"]) == (
        "empty",
        True,
        queued,
        0,
    )
    assert [e["name"] for e in listener.events].count("cli_command") == 40
    assert json.loads(invoke(*at(state_dir, "status", "--json")).stdout)["queued"] == 0


def test_flush_text_summary_and_exit_codes(state_dir: Path, listener: ScriptedServer) -> None:
    make_spool(state_dir, 3)
    no_endpoint = invoke(*at(state_dir, "flush", "--timeout", "20"))
    assert no_endpoint.exit_code == 1
    assert "still queued" in no_endpoint.stdout
    point_at(state_dir, listener.url)
    result = invoke(*at(state_dir, "flush", "--timeout", "20"))
    assert result.exit_code == 0, result.output
    assert "the queue is empty" in result.stdout


def test_flush_when_opted_out_sends_nothing(state_dir: Path, listener: ScriptedServer) -> None:
    make_spool(state_dir, 3)
    point_at(state_dir, listener.url)
    result = invoke(*at(state_dir, "flush"), env={"DO_NOT_TRACK": "1"})
    assert result.exit_code == 0
    assert "nothing sent" in result.stdout
    assert listener.settled_connections() == 0
    assert invoke(*at(state_dir / "absent", "flush")).exit_code == 0


# -- the real console script ---------------------------------------------------------------
def test_the_console_script_runs_for_real(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    queued = make_spool(state_dir, 4)["queued"]
    env = clean_env(tmp_path / "home", DEMO_TELEMETRY_ALLOW_CI="1")
    status = telespool(*at(state_dir, "status", "--json"), env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["queued"] == queued
    table = telespool(*at(state_dir, "inspect"), env=env)
    assert table.returncode == 0
    assert table.stdout.count('"cli_command":') == 4
    bogus = telespool("--app", "demo", "frobnicate", env=env)
    assert bogus.returncode == 2
    one_line_error(bogus.stderr)
    assert bogus.stderr.startswith("telespool: error:")


def test_the_console_script_on_default_paths_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home)
    for command in ("status", "inspect", "purge", "flush", "enable"):
        proc = telespool("--app", "demo", command, env=env)
        assert proc.returncode == 0, (command, proc.stderr)
    assert tree(home) == set()


def test_the_console_script_reports_a_corrupt_spool_in_one_line(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    (state_dir / "spool.db").write_bytes(b"\0garbage" * 1000)
    proc = telespool(*at(state_dir, "status"), env=clean_env(tmp_path))
    assert proc.returncode == 1
    one_line_error(proc.stderr)


def without_dac_override() -> None:
    """preexec_fn: root loses the capabilities that bypass file permissions.

    Root keeps its uid (the interpreter lives under /root), but with
    CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER gone from the bounding
    set, exec leaves it unable to read or write against a file's mode: a real
    EACCES from the kernel.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.mark.skipif(not os.path.isdir("/proc/self") or os.geteuid() != 0, reason="Linux root")
def test_unwritable_and_unreadable_dirs_are_one_line_errors(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    proc = telespool(*at(locked / "state", "disable"), env=env, preexec_fn=without_dac_override)
    assert proc.returncode == 1
    one_line_error(proc.stderr)
    assert "cannot create state dir" in proc.stderr
    assert not (locked / "state").exists()

    theirs = tmp_path / "theirs"
    make_spool(theirs)
    (theirs / "spool.db").chmod(0o000)
    for command in ("status", "inspect", "purge"):
        proc = telespool(*at(theirs, command), env=env, preexec_fn=without_dac_override)
        assert proc.returncode == 1, (command, proc.stdout)
        one_line_error(proc.stderr)
    locked.chmod(0o755)
