"""The first-run notice: on a real terminal (a pty), once per install, never in CI,
never when opted out, the host's text when it sets one."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from spool.install._notice import NOTICE_NAME, maybe_show_notice, render_notice
from tests.loopback import clean_env, telespool

HOST = """
import json, sys
from spool import Telemetry
kw = json.loads(sys.argv[1])
t = Telemetry(app="demo", version="1.0.0", state_dir=sys.argv[2], **kw)
t.track("cli_command", cli_command="eval")
t.close()
"""


def run_on_tty(state_dir: Path, env: dict[str, str], **kw: object) -> str:
    """Run a host whose stderr is a real pseudo-terminal; return what it printed there."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", HOST, json.dumps(kw), str(state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=follower,
            env=env,
            timeout=120,
        )
    finally:
        os.close(follower)
    assert proc.returncode == 0
    return _drain(leader).replace("\r\n", "\n")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path / "home")


def test_the_notice_is_shown_once_per_install(state_dir: Path, env: dict[str, str]) -> None:
    first = run_on_tty(state_dir, env)
    assert "demo collects anonymous usage telemetry" in first
    assert "DO_NOT_TRACK=1" in first and "DEMO_TELEMETRY_DISABLED=1" in first
    assert "telespool --app demo disable" in first
    assert str(state_dir) in first
    assert run_on_tty(state_dir, env) == ""
    assert os.stat(state_dir / NOTICE_NAME).st_mode & 0o777 == 0o600


def test_no_notice_when_stderr_is_not_a_terminal(state_dir: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", HOST, "{}", str(state_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert not (state_dir / NOTICE_NAME).exists()  # still owed to the first terminal run
    assert "collects" in run_on_tty(state_dir, env)


def test_no_notice_under_ci_even_when_telemetry_is_kept_on(
    state_dir: Path, env: dict[str, str]
) -> None:
    ci = {**env, "CI": "true", "DEMO_TELEMETRY_ALLOW_CI": "1"}
    assert run_on_tty(state_dir, ci) == ""
    assert (state_dir / "spool.db").exists()  # telemetry was on
    assert not (state_dir / NOTICE_NAME).exists()


@pytest.mark.parametrize(
    ("extra", "kw"),
    [
        ({"DO_NOT_TRACK": "1"}, {}),
        ({}, {"enabled": False}),
        ({"DEMO_TELEMETRY_DEBUG": "1"}, {}),
    ],
)
def test_no_notice_when_nothing_is_collected(
    state_dir: Path, env: dict[str, str], extra: dict[str, str], kw: dict[str, object]
) -> None:
    out = run_on_tty(state_dir, {**env, **extra}, **kw)
    assert "collects" not in out  # debug prints its events there, nothing else
    assert not state_dir.exists()


def test_the_host_sets_the_text(state_dir: Path, env: dict[str, str]) -> None:
    text = "Acme CLI shares anonymous usage data. Opt out: {opt_out} {not_a_placeholder}"
    out = run_on_tty(state_dir, env, notice=text)
    assert out.startswith("Acme CLI shares anonymous usage data. Opt out: To opt out: set")
    assert out.endswith("{not_a_placeholder}\n")


def test_an_empty_notice_means_the_host_shows_its_own(state_dir: Path, env: dict[str, str]) -> None:
    assert run_on_tty(state_dir, env, notice="") == ""


def test_opting_out_and_back_in_shows_the_notice_again(
    state_dir: Path, env: dict[str, str]
) -> None:
    assert "collects" in run_on_tty(state_dir, env)
    assert (
        telespool("--app", "demo", "--state-dir", str(state_dir), "disable", env=env).returncode
        == 0
    )
    assert (
        telespool("--app", "demo", "--state-dir", str(state_dir), "enable", env=env).returncode == 0
    )
    assert "collects" in run_on_tty(state_dir, env)


def test_of_many_racing_hosts_exactly_one_shows_it(state_dir: Path, env: dict[str, str]) -> None:
    terminals = [pty.openpty() for _ in range(8)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HOST, "{}", str(state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=follower,
            env=env,
        )
        for _, follower in terminals
    ]
    outputs = []
    for proc, (leader, follower) in zip(procs, terminals):
        assert proc.wait(timeout=120) == 0
        os.close(follower)
        outputs.append(_drain(leader))
    assert sum("collects" in out for out in outputs) == 1


def _drain(leader: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return b"".join(chunks).decode()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_process_under_a_test_runner_it_never_shows(tmp_path: Path) -> None:
    stream = _Terminal()
    assert not maybe_show_notice(tmp_path, app="demo", text=None, env={}, stream=stream)
    assert stream.getvalue() == ""


def test_render_fills_only_known_placeholders(tmp_path: Path) -> None:
    out = render_notice("{app} {prefix} {state_dir} {x}", app="my-sdk", state_dir=tmp_path)
    assert out == f"my-sdk MY_SDK {tmp_path} {{x}}\n"
