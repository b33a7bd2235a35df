"""Every opt-out path, run as a real host process against a real loopback listener:
zero files created, zero connections, no uploader process; and whatever an
earlier opted-in run left behind is purged at construction."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.loopback import clean_env, processes_mentioning, run, telespool, tree
from tests.servers import ScriptedServer

HOST = """
import ctypes, json, os, sys
cfg = json.loads(sys.argv[1])
# Linux PR_SET_CHILD_SUBREAPER: any process this host starts, even detached
# (setsid) or orphaned by an intermediate, stays a descendant we can wait for.
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
if cfg.get("import_pytest"):
    import pytest  # a host that runs inside a test runner
from spool import Telemetry
kw = {"state_dir": cfg["state_dir"]} if cfg.get("state_dir") else {}
t = Telemetry(app="demo", version="1.0.0", endpoint=cfg["endpoint"],
              enabled=cfg.get("enabled", True), **kw)
for _ in range(50):
    t.track("cli_command", cli_command="eval")
result = t.flush(timeout=10)
report = {"enabled": t.decision.enabled, "reason": t.decision.reason,
          "flush": result.outcome, "state_dir": t.status()["state_dir"]}
if cfg.get("sigkill"):
    print(json.dumps(report), flush=True)
    import os, signal
    os.kill(os.getpid(), signal.SIGKILL)
t.close()
# Wait for every descendant to finish (the subreaper makes that all of them), so
# the files and connections any of them made exist before the test looks.
descendants = 0
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
    descendants += 1
report["descendants"] = descendants
print(json.dumps(report))
"""


@pytest.fixture
def listener() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """An empty HOME and working directory for the host; everything it could touch."""
    (tmp_path / "home").mkdir()
    (tmp_path / "cwd").mkdir()
    return tmp_path


def run_host(sandbox: Path, env: dict[str, str], **cfg: Any) -> dict[str, Any]:
    proc = run([sys.executable, "-c", HOST, json.dumps(cfg)], env, cwd=str(sandbox / "cwd"))
    if cfg.get("sigkill"):
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def assert_left_nothing(
    sandbox: Path, listener: ScriptedServer, before: set[str], result: dict[str, Any]
) -> None:
    # No sleep: the host, a child subreaper, waited for every process it started
    # (even detached ones) before it exited, so whatever they did is done.
    assert result["descendants"] == 0
    assert tree(sandbox) == before
    assert listener.settled_connections() == 0
    assert processes_mentioning(str(sandbox)) == []


OPT_OUTS = [
    pytest.param({"DO_NOT_TRACK": "1"}, {}, "do_not_track", id="DO_NOT_TRACK=1"),
    pytest.param({"DO_NOT_TRACK": "true"}, {}, "do_not_track", id="DO_NOT_TRACK=true"),
    pytest.param({"DO_NOT_TRACK": "yes"}, {}, "do_not_track", id="DO_NOT_TRACK=yes"),
    pytest.param({"DEMO_TELEMETRY_DISABLED": "1"}, {}, "env_disabled", id="DISABLED=1"),
    pytest.param({"DEMO_TELEMETRY_DISABLED": "true"}, {}, "env_disabled", id="DISABLED=true"),
    pytest.param({"DEMO_TELEMETRY_DISABLED": "YES"}, {}, "env_disabled", id="DISABLED=YES"),
    pytest.param({}, {"enabled": False}, "code", id="enabled=False"),
    pytest.param({"CI": "true"}, {}, "ci", id="CI=true"),
    pytest.param({"CI": "1"}, {}, "ci", id="CI=1"),
    pytest.param({"GITHUB_ACTIONS": "true"}, {}, "ci", id="GITHUB_ACTIONS"),
    pytest.param({"GITLAB_CI": "true"}, {}, "ci", id="GITLAB_CI"),
    pytest.param({"BUILDKITE": "true"}, {}, "ci", id="BUILDKITE"),
    pytest.param({"CIRCLECI": "true"}, {}, "ci", id="CIRCLECI"),
    pytest.param({"TRAVIS": "true"}, {}, "ci", id="TRAVIS"),
    pytest.param({"JENKINS_URL": "https://ci.example/"}, {}, "ci", id="JENKINS_URL"),
    pytest.param({"TEAMCITY_VERSION": "2024.1"}, {}, "ci", id="TEAMCITY_VERSION"),
    pytest.param({"TF_BUILD": "True"}, {}, "ci", id="TF_BUILD"),
    pytest.param({"CODEBUILD_BUILD_ARN": "arn:aws:codebuild:x"}, {}, "ci", id="CODEBUILD"),
    pytest.param({"PYTEST_CURRENT_TEST": "t.py::t (call)"}, {}, "test_runner", id="PYTEST_VAR"),
    pytest.param({}, {"import_pytest": True}, "test_runner", id="pytest-imported"),
    pytest.param({"TOX_ENV_NAME": "py311"}, {}, "test_runner", id="tox"),
    # The kill switch wins even over the maintainer's CI override.
    pytest.param(
        {"DO_NOT_TRACK": "1", "DEMO_TELEMETRY_ALLOW_CI": "1"}, {}, "do_not_track", id="DNT+ALLOW"
    ),
]


@pytest.mark.parametrize(("extra_env", "cfg", "reason"), OPT_OUTS)
def test_opted_out_host_creates_nothing_and_connects_nowhere(
    sandbox: Path,
    listener: ScriptedServer,
    extra_env: dict[str, str],
    cfg: dict[str, Any],
    reason: str,
) -> None:
    env = clean_env(sandbox / "home", **extra_env)
    before = tree(sandbox)
    result = run_host(sandbox, env, endpoint=listener.url, **cfg)
    assert (result["enabled"], result["reason"]) == (False, reason)
    assert result["flush"] == "disabled"
    assert_left_nothing(sandbox, listener, before, result)


def test_opt_out_marker_leaves_only_the_marker(sandbox: Path, listener: ScriptedServer) -> None:
    env = clean_env(sandbox / "home")
    disabled = telespool("--app", "demo", "disable", env=env)
    assert disabled.returncode == 0, disabled.stderr
    before = tree(sandbox)
    markers = [p for p in before if p.endswith("telemetry/disabled")]
    assert len(markers) == 1
    state_dir = sandbox / markers[0].rsplit("/", 1)[0]
    assert sorted(os.listdir(state_dir)) == ["disabled"]
    result = run_host(sandbox, env, endpoint=listener.url)
    assert (result["enabled"], result["reason"]) == (False, "marker")
    assert_left_nothing(sandbox, listener, before, result)


def test_enabled_host_is_the_positive_control(sandbox: Path, listener: ScriptedServer) -> None:
    """The same host with no opt-out does create a spool and does connect: the
    zero counts above are not an artefact of the harness."""
    env = clean_env(sandbox / "home")
    result = run_host(sandbox, env, endpoint=listener.url)
    assert (result["enabled"], result["reason"]) == (True, "on")
    assert result["flush"] == "empty"
    assert listener.connections >= 1
    assert [e["name"] for e in listener.events].count("cli_command") == 50
    assert Path(result["state_dir"]).is_relative_to(sandbox / "home")
    assert (Path(result["state_dir"]) / "spool.db").is_file()


def test_ci_false_means_not_ci(sandbox: Path, listener: ScriptedServer) -> None:
    env = clean_env(sandbox / "home", CI="false")
    result = run_host(sandbox, env, endpoint=listener.url)
    assert (result["enabled"], result["reason"]) == (True, "on")
    assert listener.connections >= 1


def test_ci_override_keeps_telemetry_on_under_ci(sandbox: Path, listener: ScriptedServer) -> None:
    env = clean_env(sandbox / "home", CI="true", DEMO_TELEMETRY_ALLOW_CI="1")
    result = run_host(sandbox, env, endpoint=listener.url)
    assert (result["enabled"], result["reason"]) == (True, "on")
    assert [e["name"] for e in listener.events].count("cli_command") == 50


PURGING = [
    pytest.param({"DO_NOT_TRACK": "1"}, {}, id="DO_NOT_TRACK"),
    pytest.param({"DEMO_TELEMETRY_DISABLED": "1"}, {}, id="DISABLED"),
    pytest.param({}, {"enabled": False}, id="enabled=False"),
]


@pytest.mark.parametrize(("extra_env", "cfg"), PURGING)
def test_opting_out_purges_what_an_earlier_run_left(
    sandbox: Path, listener: ScriptedServer, extra_env: dict[str, str], cfg: dict[str, Any]
) -> None:
    state_dir = sandbox / "state"
    # An opted-in run SIGKILLed mid-way: spool, WAL and SHM (and install id) stay behind.
    on = clean_env(sandbox / "home")
    run_host(sandbox, on, endpoint=None, state_dir=str(state_dir), sigkill=True)
    left = set(os.listdir(state_dir))
    assert {"spool.db", "spool.db-wal", "spool.db-shm"} <= left
    (state_dir / "install.json").write_text('{"install_id": "x"}')  # whether or not wired yet

    off = clean_env(sandbox / "home", **extra_env)
    result = run_host(sandbox, off, endpoint=listener.url, state_dir=str(state_dir), **cfg)
    assert result["enabled"] is False
    assert not state_dir.exists()
    assert listener.settled_connections() == 0


@pytest.mark.parametrize("extra_env", [{"CI": "true"}, {"PYTEST_CURRENT_TEST": "x"}])
def test_ci_auto_disable_keeps_an_earlier_queue_and_sends_nothing(
    sandbox: Path, listener: ScriptedServer, extra_env: dict[str, str]
) -> None:
    # CI/test-runner auto-disable is not the user opting out: an SDK's own test
    # run on a developer machine must not wipe that developer's real queue.
    state_dir = sandbox / "state"
    run_host(sandbox, clean_env(sandbox / "home"), endpoint=None, state_dir=str(state_dir))
    before = sorted(os.listdir(state_dir))
    off = clean_env(sandbox / "home", **extra_env)
    result = run_host(sandbox, off, endpoint=listener.url, state_dir=str(state_dir))
    assert result["enabled"] is False
    assert sorted(os.listdir(state_dir)) == before
    assert listener.settled_connections() == 0


def test_disable_after_a_run_purges_everything_but_the_marker(sandbox: Path) -> None:
    state_dir = sandbox / "state"
    env = clean_env(sandbox / "home")
    run_host(sandbox, env, endpoint=None, state_dir=str(state_dir), sigkill=True)
    (state_dir / "install.json").write_text('{"install_id": "x"}')
    proc = telespool("--app", "demo", "--state-dir", str(state_dir), "disable", env=env)
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(state_dir) == ["disabled"]
    assert oct(os.stat(state_dir / "disabled").st_mode & 0o777) == "0o600"


def test_debug_prints_events_and_stores_and_sends_nothing(
    sandbox: Path, listener: ScriptedServer
) -> None:
    env = clean_env(sandbox / "home", DEMO_TELEMETRY_DEBUG="1")
    before = tree(sandbox)
    proc = run([sys.executable, "-c", HOST, json.dumps({"endpoint": listener.url})], env)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    commands = [line for line in lines if line["name"] == "cli_command"]
    assert len(commands) == 50
    assert commands[0]["props"]["cli_command"] == "eval"
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["flush"] == "disabled"
    assert_left_nothing(sandbox, listener, before, result)


def test_debug_sanitizes_before_printing(sandbox: Path, listener: ScriptedServer) -> None:
    code = """
from spool import Telemetry
t = Telemetry(app="demo", version="1.0.0", endpoint=None)
t.track("cli_command", cli_command="rm -rf /home/alice", secret="hunter2")
t.track("no_such_event", x=1)
"""
    env = clean_env(sandbox / "home", DEMO_TELEMETRY_DEBUG="1")
    proc = run([sys.executable, "-c", code], env)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    commands = [line for line in lines if line["name"] == "cli_command"]
    assert len(commands) == 1
    assert commands[0]["props"]["cli_command"] == "other"
    assert "secret" not in commands[0]["props"]
    assert "no_such_event" not in proc.stderr
    assert "hunter2" not in proc.stderr and "alice" not in proc.stderr
