"""A host CLI mounts ``telemetry`` (click or argparse) and records ``cli_command``;
the control command never records itself."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from spool import Telemetry
from spool.cli import (
    add_argparse_commands,
    is_telemetry_command,
    record_cli_command,
    run_argparse_command,
    telemetry_group,
)
from tests.loopback import ROOT


def cli_commands(state_dir: Path) -> list[str]:
    """The ``command`` of every queued cli_command event, read back through the CLI."""
    result = CliRunner().invoke(
        telemetry_group(app="demo", state_dir=state_dir),
        ["inspect", "--json", "--all", "--event", "cli_command"],
    )
    assert result.exit_code == 0, result.output
    return [e["props"]["cli_command"] for e in json.loads(result.stdout)["events"]]


def click_host(state_dir: Path) -> click.Group:
    """A host CLI in the style the helpers are made for."""

    @click.group()
    @click.pass_context
    def host(ctx: click.Context) -> None:
        if ctx.invoked_subcommand == "telemetry":
            return  # the control command runs without a Telemetry: it records nothing
        t = Telemetry(app="demo", version="1.0.0", state_dir=state_dir)
        ctx.call_on_close(t.close)
        record_cli_command(t, ctx.invoked_subcommand)

    @host.command()
    def eval() -> None:
        click.echo("evaluating")

    @host.command()
    def dashboard() -> None:
        click.echo("dashboard")

    @host.command(name="deploy")
    def deploy() -> None:
        click.echo("deploying")

    host.add_command(telemetry_group(app="demo", state_dir=state_dir))
    return host


# -- click ---------------------------------------------------------------------------------
def test_a_click_host_mounts_the_telemetry_group(state_dir: Path) -> None:
    host = click_host(state_dir)
    runner = CliRunner()
    for command in ("eval", "dashboard", "deploy", "eval"):
        assert runner.invoke(host, [command]).exit_code == 0
    assert cli_commands(state_dir) == ["eval", "dashboard", "other", "eval"]

    status = runner.invoke(host, ["telemetry", "status", "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["reason"] == "on"
    queued = json.loads(status.stdout)["queued"]
    table = runner.invoke(host, ["telemetry", "inspect"])
    assert "cli_command" in table.stdout
    for args in (["telemetry"], ["telemetry", "--help"], ["telemetry", "purge"]):
        assert runner.invoke(host, args).exit_code == 0
    again = json.loads(runner.invoke(host, ["telemetry", "status", "--json"]).stdout)
    assert again["queued"] == 0 < queued  # purged, and no telemetry command added one


def test_telemetry_disable_through_the_host_records_nothing_and_opts_out(
    state_dir: Path,
) -> None:
    host = click_host(state_dir)
    runner = CliRunner()
    runner.invoke(host, ["eval"])
    result = runner.invoke(host, ["telemetry", "disable"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in state_dir.iterdir()) == ["disabled"]
    runner.invoke(host, ["eval"])
    assert sorted(p.name for p in state_dir.iterdir()) == ["disabled"]
    assert runner.invoke(host, ["telemetry", "enable"]).exit_code == 0
    runner.invoke(host, ["dashboard"])
    assert cli_commands(state_dir) == ["dashboard"]


def test_the_group_has_the_six_commands_and_its_errors_are_one_line(state_dir: Path) -> None:
    group = telemetry_group(app="demo", state_dir=state_dir, name="telemetry")
    assert sorted(group.commands) == ["disable", "enable", "flush", "inspect", "purge", "status"]
    state_dir.mkdir(mode=0o700)
    (state_dir / "spool.db").write_bytes(b"not sqlite" * 100)
    result = CliRunner().invoke(group, ["inspect"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot read spool")
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_bad_app_name_is_the_hosts_bug_and_raises_at_once() -> None:
    with pytest.raises(ValueError):
        telemetry_group(app="Bad App")
    with pytest.raises(ValueError):
        add_argparse_commands(argparse.ArgumentParser().add_subparsers(), app="Bad App")


# -- argparse ------------------------------------------------------------------------------
def argparse_host(state_dir: Path) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="demo")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("eval")
    add_argparse_commands(sub, app="demo", state_dir=state_dir)
    return parser


def run_argparse(state_dir: Path, *argv: str) -> tuple[int, str, str]:
    args = argparse_host(state_dir).parse_args(list(argv))
    assert is_telemetry_command(args)
    out, err = io.StringIO(), io.StringIO()
    code = run_argparse_command(args, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_an_argparse_host_gets_the_same_commands(state_dir: Path) -> None:
    with Telemetry(app="demo", version="1.0.0", state_dir=state_dir) as t:
        record_cli_command(t, "eval")
    code, out, _ = run_argparse(state_dir, "telemetry", "status", "--json")
    assert code == 0
    assert json.loads(out)["queued"] >= 1
    code, out, _ = run_argparse(state_dir, "telemetry", "inspect", "--event", "cli_command")
    assert code == 0 and '"cli_command":"eval"' in out
    code, out, _ = run_argparse(state_dir, "telemetry")  # bare: status
    assert code == 0 and out.startswith("telemetry:")
    code, out, _ = run_argparse(state_dir, "telemetry", "purge", "--json")
    assert code == 0 and json.loads(out)["cleared_events"] >= 1
    code, _, _ = run_argparse(state_dir, "telemetry", "disable")
    assert code == 0 and [p.name for p in state_dir.iterdir()] == ["disabled"]
    code, out, _ = run_argparse(state_dir, "telemetry", "enable")
    assert code == 0 and "marker removed" in out
    code, out, _ = run_argparse(state_dir, "telemetry", "flush")
    assert code == 0 and "nothing to send" in out


def test_an_argparse_host_reports_errors_in_one_line(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    (state_dir / "spool.db").write_bytes(b"not sqlite" * 100)
    code, out, err = run_argparse(state_dir, "telemetry", "status")
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: cannot read spool")


def test_other_host_commands_are_not_telemetry_commands(state_dir: Path) -> None:
    args = argparse_host(state_dir).parse_args(["eval"])
    assert not is_telemetry_command(args)


def test_the_argparse_helpers_do_not_load_click() -> None:
    code = (
        "import sys, argparse\n"
        "from spool.cli import add_argparse_commands\n"
        "add_argparse_commands(argparse.ArgumentParser().add_subparsers(), app='demo')\n"
        "import spool\n"
        "print('click' in sys.modules, 'sqlite_utils' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), timeout=60
    )
    assert proc.stdout.split() == ["False", "False"], proc.stderr


def test_import_spool_does_not_load_the_cli() -> None:
    code = "import sys, spool; print(sorted(m for m in sys.modules if m.startswith('spool.cli')))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), timeout=60
    )
    assert proc.stdout.strip() == "[]", proc.stderr


# -- record_cli_command --------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def track(self, name: str, **props: Any) -> None:
        self.calls.append((name, dict(props)))


@pytest.mark.parametrize(
    ("command", "recorded"),
    [
        ("eval", "eval"),
        ("dashboard", "dashboard"),
        ("EVAL", "eval"),
        ("deploy", "other"),
        ("--token=hunter2", "other"),
        (None, "other"),
        (42, "other"),
    ],
)
def test_record_cli_command_keeps_to_the_closed_set(command: object, recorded: str) -> None:
    r = Recorder()
    assert record_cli_command(r, command) == recorded
    assert r.calls == [("cli_command", {"cli_command": recorded})]


def test_the_telemetry_command_is_never_recorded() -> None:
    r = Recorder()
    assert record_cli_command(r, "telemetry") is None
    assert r.calls == []


def test_record_cli_command_never_raises() -> None:
    class Broken:
        def track(self, name: str, **props: Any) -> None:
            raise RuntimeError("boom")

    assert record_cli_command(Broken(), "eval") is None


def test_record_cli_command_on_a_real_spool(state_dir: Path) -> None:
    with Telemetry(app="demo", version="1.0.0", state_dir=state_dir) as t:
        for name in ("eval", "telemetry", "weird", "dashboard"):
            record_cli_command(t, name)
    assert cli_commands(state_dir) == ["eval", "other", "dashboard"]
