"""The consent resolver: precedence, each reason, the CI override, and the facade
deciding at construction."""

from __future__ import annotations

from pathlib import Path

import pytest

from spool import Telemetry
from spool.install._consent import (
    Decision,
    ci_vendor,
    debug_mode,
    explain,
    is_truthy,
    kill_switch,
    resolve,
    under_test_runner,
)

ALLOW = {"DEMO_TELEMETRY_ALLOW_CI": "1"}


def decide(env: dict[str, str], *, enabled: bool = True, marker_dir: Path | None = None) -> str:
    return resolve("demo", enabled=enabled, state_dir=marker_dir, env=env).reason


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    (tmp_path / "disabled").touch()
    return tmp_path


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "Yes", " 1 ", "on"])
def test_truthy_values_switch_telemetry_off(value: str) -> None:
    assert is_truthy(value)
    assert decide({**ALLOW, "DO_NOT_TRACK": value}) == "do_not_track"
    assert decide({**ALLOW, "DEMO_TELEMETRY_DISABLED": value}) == "env_disabled"


@pytest.mark.parametrize("value", ["0", "false", "no", "", "off"])
def test_other_values_leave_telemetry_on(value: str) -> None:
    assert decide({**ALLOW, "DO_NOT_TRACK": value, "DEMO_TELEMETRY_DISABLED": value}) == "on"


def test_the_env_prefix_follows_the_app_name() -> None:
    env = {"MY_SDK_TELEMETRY_DISABLED": "1"}
    assert kill_switch("my-sdk", env) == "env_disabled"
    assert kill_switch("demo", env) is None


def test_precedence_env_then_marker_then_code_then_ci(marker_dir: Path) -> None:
    everything = {"DO_NOT_TRACK": "1", "DEMO_TELEMETRY_DISABLED": "1", "CI": "true"}
    assert decide(everything, enabled=False, marker_dir=marker_dir) == "do_not_track"
    no_dnt = {"DEMO_TELEMETRY_DISABLED": "1", "CI": "true"}
    assert decide(no_dnt, enabled=False, marker_dir=marker_dir) == "env_disabled"
    assert decide({"CI": "true"}, enabled=False, marker_dir=marker_dir) == "marker"
    assert decide({"CI": "true"}, enabled=False) == "code"
    assert decide({"CI": "true"}) == "ci"
    assert decide(ALLOW) == "on"


def test_the_ci_override_never_beats_an_opt_out(marker_dir: Path) -> None:
    assert decide({**ALLOW, "CI": "true"}) == "on"
    assert resolve("demo", enabled=True, state_dir=None, env={"CI": "1"}, allow_in_ci=True)
    assert decide({**ALLOW, "DO_NOT_TRACK": "1"}) == "do_not_track"
    assert decide(ALLOW, marker_dir=marker_dir) == "marker"
    assert decide(ALLOW, enabled=False) == "code"


@pytest.mark.parametrize(
    ("var", "vendor"),
    [
        ("GITHUB_ACTIONS", "github_actions"),
        ("GITLAB_CI", "gitlab"),
        ("BUILDKITE", "buildkite"),
        ("CIRCLECI", "circleci"),
        ("TRAVIS", "travis"),
        ("JENKINS_URL", "jenkins"),
        ("TEAMCITY_VERSION", "teamcity"),
        ("TF_BUILD", "azure_pipelines"),
        ("CODEBUILD_BUILD_ARN", "codebuild"),
        ("BITBUCKET_BUILD_NUMBER", "bitbucket"),
    ],
)
def test_each_ci_variable_is_recognised(var: str, vendor: str) -> None:
    assert ci_vendor({var: "x"}) == vendor
    assert decide({var: "x"}) == "ci"


def test_ci_false_means_not_ci_and_ci_true_means_ci() -> None:
    assert ci_vendor({"CI": "false"}) is None
    assert ci_vendor({"CI": "0"}) is None
    assert ci_vendor({"CI": "true"}) == "generic"
    assert ci_vendor({}) is None


def test_test_runners_are_detected() -> None:
    # This very process runs under pytest: telemetry is off without the override.
    assert under_test_runner({})
    assert decide({}) == "test_runner"
    assert decide({"TOX_ENV_NAME": "py311"}) == "test_runner"


def test_a_missing_or_unreadable_dir_is_no_marker(tmp_path: Path) -> None:
    assert decide(ALLOW, marker_dir=tmp_path / "absent") == "on"


def test_a_decision_is_a_value_with_its_reason() -> None:
    d = Decision(False, "ci")
    assert not d
    assert Decision(True, "on")
    assert "DEMO_TELEMETRY_ALLOW_CI" in explain(d, "demo")
    assert "MY_SDK_TELEMETRY_DISABLED" in explain(Decision(False, "env_disabled"), "my-sdk")
    assert "telespool --app demo disable" in explain(Decision(False, "marker"), "demo")


def test_debug_mode_reads_the_app_variable() -> None:
    assert debug_mode("demo", {"DEMO_TELEMETRY_DEBUG": "1"})
    assert not debug_mode("demo", {"DEMO_TELEMETRY_DEBUG": "0"})
    assert not debug_mode("other", {"DEMO_TELEMETRY_DEBUG": "1"})


def test_the_facade_decides_at_construction(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    t = Telemetry(app="demo", version="1.0.0", state_dir=state_dir)
    assert t.status()["enabled"] is False
    assert t.status()["reason"] == "do_not_track"
    monkeypatch.delenv("DO_NOT_TRACK")
    t.track("cli_command", cli_command="eval")  # still off: decided once
    assert not state_dir.exists()


def test_allow_in_ci_in_code_keeps_a_host_on_under_ci(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEMO_TELEMETRY_ALLOW_CI")
    monkeypatch.setenv("CI", "true")
    off = Telemetry(app="demo", version="1.0.0", state_dir=state_dir)
    assert off.status()["reason"] == "ci"
    with Telemetry(app="demo", version="1.0.0", state_dir=state_dir, allow_in_ci=True) as on:
        assert on.status()["reason"] == "on"
