"""Environment probes: presence only, closed sets, isolated failures."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from spool.install import _probes
from spool.install._probes import PROBES, env_probe, probe_all, process_probes


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path


def test_a_bare_environment_reports_none(root: Path) -> None:
    out = probe_all({}, root)
    assert out["container"] is False
    assert out["serverless"] == out["cloud"] == "none"
    assert out["ci"] == out["invoked_by_agent"] == "none"
    assert out["package_manager"] == "pip"  # getpatter's catch-all for CPython


@pytest.mark.parametrize(
    ("env", "files", "probe", "value"),
    [
        ({}, [".dockerenv"], "container", True),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, [], "container", True),
        ({"AWS_LAMBDA_FUNCTION_NAME": "jane-private-fn"}, [], "serverless", "lambda"),
        ({"AWS_LAMBDA_FUNCTION_NAME": "jane-private-fn"}, [], "cloud", "aws"),
        ({"K_SERVICE": "svc"}, [], "serverless", "cloud_run"),
        ({"K_SERVICE": "svc"}, [], "cloud", "gcp"),
        ({"FLY_APP_NAME": "janes-app"}, [], "cloud", "fly"),
        ({"GITHUB_ACTIONS": "true"}, [], "ci", "github_actions"),
        ({"CI": "1"}, [], "ci", "generic"),
        ({"UV": "/home/jane/.local/bin/uv"}, [], "package_manager", "uv"),
        ({"VIRTUAL_ENV_PROMPT": "(UV-proj)"}, [], "package_manager", "uv"),
        ({"POETRY_ACTIVE": "1"}, [], "package_manager", "poetry"),
        ({"CONDA_DEFAULT_ENV": "base"}, [], "package_manager", "conda"),
        ({"CLAUDECODE": ""}, [], "invoked_by_agent", "claude"),  # presence, even empty
        ({"CURSOR_AGENT": "1"}, [], "invoked_by_agent", "cursor"),
        ({"GITHUB_COPILOT_AGENT": "1"}, [], "invoked_by_agent", "copilot"),
        ({"WINDSURF": "1"}, [], "invoked_by_agent", "windsurf"),
        ({"AIDER": "1"}, [], "invoked_by_agent", "other"),
    ],
)
def test_probe_reports_presence_as_a_fixed_value(
    root: Path, env: dict[str, str], files: list[str], probe: str, value: object
) -> None:
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).touch()
    assert probe_all(env, root)[probe] == value


def test_container_reads_the_cgroup_of_pid_1(root: Path) -> None:
    cgroup = root / "proc/1/cgroup"
    cgroup.parent.mkdir(parents=True)
    cgroup.write_text("0::/kubepods/burstable/pod1\n")
    assert probe_all({}, root)["container"] is True
    cgroup.write_bytes(b"0::/user.slice\xff\n")  # not UTF-8: no error, not a container
    assert probe_all({}, root)["container"] is False


def test_no_probe_ever_returns_a_free_value(root: Path) -> None:
    env = {
        k: "jane@example.com /home/jane" for k in ("AIDER", "UV", "K_SERVICE", "CI", "FLY_APP_NAME")
    }
    for value in probe_all(env, root).values():
        assert isinstance(value, bool) or (
            isinstance(value, str) and "jane" not in value and "/" not in value
        )


class ExplodingEnv(Mapping[str, str]):
    def __getitem__(self, key: str) -> str:
        raise RuntimeError("environment unreadable")

    def get(self, key: str, default: object = None) -> str:
        raise RuntimeError("environment unreadable")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("environment unreadable")

    def __len__(self) -> int:
        return 0


def test_a_failing_probe_yields_unknown_and_spares_the_others(root: Path) -> None:
    out = probe_all(ExplodingEnv(), root)
    assert set(out) == set(PROBES)
    assert out["ci"] == "unknown" and out["invoked_by_agent"] == "unknown"


def test_one_failing_probe_does_not_affect_another(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(env: Mapping[str, str], root: Path) -> object:
        raise OSError("no /proc here")

    monkeypatch.setitem(PROBES, "cloud", broken)
    out = probe_all({"CLAUDECODE": "1"}, root)
    assert out["cloud"] == "unknown" and out["invoked_by_agent"] == "claude"


def test_schema_env_probes_take_the_first_set_variable() -> None:
    rules = [["TWILIO_ACCOUNT_SID", "twilio"], ["TELNYX_API_KEY", "telnyx"]]
    assert env_probe(rules, {"TELNYX_API_KEY": "KEY_secret"}) == "telnyx"
    assert env_probe(rules, {}) == "none"
    assert env_probe(rules, ExplodingEnv()) == "unknown"


def test_probes_run_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_probes, "_CACHE", {})
    first = process_probes()
    monkeypatch.setenv("CLAUDECODE", "1")
    assert process_probes() == first  # cached: the later change is not seen
