"""The tests' own environment builders: a developer's shell can never switch telemetry off.

NODE_ENV=test (a JavaScript developer's shell) and ``{PREFIX}_ENV=test`` are the
seed's test markers: telespool turns itself off under them. The env builders
the tests use must shed them, as they shed CI and the kill switches.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spool.install import _consent
from tests import loopback
from tests.hosts import host_env, run_host

DEVELOPER_SHELL = {"NODE_ENV": "test", "PATTER_ENV": "test", "DEMO_ENV": " Test "}


@pytest.fixture
def developer_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in DEVELOPER_SHELL.items():
        monkeypatch.setenv(var, value)


def _on(app: str, prefix: str, env: dict[str, str]) -> _consent.Decision:
    return _consent.resolve(app, enabled=True, state_dir=None, env=env, prefix=prefix, modules=())


@pytest.mark.usefixtures("developer_shell")
def test_host_env_sheds_node_env_and_prefix_env() -> None:
    env = host_env()
    assert not set(DEVELOPER_SHELL) & set(env)
    assert _on("getpatter", "PATTER", env) == _consent.Decision(True, "on")


@pytest.mark.usefixtures("developer_shell")
def test_loopback_clean_env_sheds_node_env_and_prefix_env(tmp_path: Path) -> None:
    env = loopback.clean_env(tmp_path)
    assert not set(DEVELOPER_SHELL) & set(env)
    assert _on("demo", "DEMO", env) == _consent.Decision(True, "on")


@pytest.mark.usefixtures("developer_shell")
def test_a_real_host_started_from_that_shell_has_telemetry_on(tmp_path: Path) -> None:
    proc = run_host(
        """
        import json, sys
        from spool import Telemetry
        t = Telemetry("getpatter", "0.7.0", env_prefix="PATTER", state_dir=sys.argv[1])
        print(json.dumps(t.status()["reason"]))
        t.close()
        """,
        str(tmp_path / "state"),
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == "on"


def test_only_test_values_of_env_variables_are_shed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_ENV", "production")
    monkeypatch.setenv("CONDA_DEFAULT_ENV", "base")
    env = host_env()
    assert env["DEMO_ENV"] == "production" and env["CONDA_DEFAULT_ENV"] == "base"
