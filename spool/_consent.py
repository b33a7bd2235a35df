"""Whether telemetry may run, decided once, with the reason.

Precedence, first match wins:
  1. environment kill switches: ``DO_NOT_TRACK``, ``{PREFIX}_TELEMETRY_DISABLED``
  2. the persisted opt-out marker written by ``telespool disable``
  3. the host's in-code flag ``enabled=False``
  4. CI and test runners (unless the maintainer's override allows them)
  5. otherwise on
The override that keeps telemetry on under CI is ``allow_in_ci=True`` in code
or ``{PREFIX}_TELEMETRY_ALLOW_CI=1`` in the environment; it never beats 1-3.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from ._paths import MARKER_NAME, env_prefix
from ._record import Record

__all__ = [
    "Decision",
    "ci_vendor",
    "debug_mode",
    "explain",
    "is_truthy",
    "kill_switch",
    "marker_present",
    "resolve",
    "under_test_runner",
]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

# Variables whose mere presence marks a CI run, with the vendor they name.
_CI_VARS: tuple[tuple[str, str], ...] = (
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
    ("DRONE", "drone"),
    ("SEMAPHORE", "semaphore"),
    ("APPVEYOR", "appveyor"),
    ("CIRRUS_CI", "cirrus"),
    ("BITRISE_IO", "bitrise"),
    ("BUDDY_WORKSPACE_ID", "buddy"),
    ("CF_BUILD_ID", "codefresh"),
    ("HEROKU_TEST_RUN_ID", "heroku_ci"),
    ("CONTINUOUS_INTEGRATION", "generic"),
)
# Test runners that set a variable while they run.
_TEST_VARS = ("PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER", "TOX_ENV_NAME", "NOX_CURRENT_SESSION")


class Decision(Record):
    """Whether telemetry runs, and the one reason that decided it."""

    _fields = ("enabled", "reason")
    enabled: bool
    reason: str  # e.g. "on", "do_not_track", "env_disabled", "marker", "code", "ci", "test_runner"

    @property
    def user_opt_out(self) -> bool:
        """Off because a person or the host said so (purge), not because of CI/tests."""
        return not self.enabled and self.reason not in ("ci", "test_runner")

    def __bool__(self) -> bool:
        return self.enabled


def is_truthy(value: str | None) -> bool:
    """``1``/``true``/``yes``/``on``, any case, surrounding spaces ignored."""
    return value is not None and value.strip().lower() in _TRUE


def kill_switch(app: str, env: Mapping[str, str]) -> str | None:
    """The reason an environment variable forbids telemetry, or None."""
    if is_truthy(env.get("DO_NOT_TRACK")):
        return "do_not_track"
    if is_truthy(env.get(f"{env_prefix(app)}_TELEMETRY_DISABLED")):
        return "env_disabled"
    return None


def ci_vendor(env: Mapping[str, str]) -> str | None:
    """The CI system this process runs under, or None. ``CI=false`` means not CI."""
    ci = env.get("CI")
    if ci is not None and ci.strip().lower() in _FALSE:
        return None
    for var, vendor in _CI_VARS:
        if env.get(var):
            return vendor
    if ci is not None:
        return "generic"
    return None


def under_test_runner(env: Mapping[str, str]) -> bool:
    """True under pytest, tox or nox (their variables, or pytest imported)."""
    return any(env.get(v) for v in _TEST_VARS) or "pytest" in sys.modules


def marker_present(state_dir: Path | None) -> bool:
    """True if the opt-out marker exists; an unreadable dir counts as no marker."""
    if state_dir is None:
        return False
    try:
        return (state_dir / MARKER_NAME).exists()
    except OSError:
        return False


def resolve(
    app: str,
    *,
    enabled: bool,
    state_dir: Path | None,
    env: Mapping[str, str],
    allow_in_ci: bool = False,
) -> Decision:
    """Decide consent; never touches the disk beyond checking the marker exists."""
    switch = kill_switch(app, env)
    if switch:
        return Decision(False, switch)
    if marker_present(state_dir):
        return Decision(False, "marker")
    if not enabled:
        return Decision(False, "code")
    allow = allow_in_ci or is_truthy(env.get(f"{env_prefix(app)}_TELEMETRY_ALLOW_CI"))
    if not allow:
        if ci_vendor(env):
            return Decision(False, "ci")
        if under_test_runner(env):
            return Decision(False, "test_runner")
    return Decision(True, "on")


def debug_mode(app: str, env: Mapping[str, str]) -> bool:
    """True when ``{PREFIX}_TELEMETRY_DEBUG`` asks to print events instead of storing them."""
    return is_truthy(env.get(f"{env_prefix(app)}_TELEMETRY_DEBUG"))


def explain(decision: Decision, app: str) -> str:
    """One sentence a person can act on: why telemetry is on or off."""
    prefix = env_prefix(app)
    texts = {
        "on": "no opt-out applies",
        "do_not_track": "DO_NOT_TRACK is set",
        "env_disabled": f"{prefix}_TELEMETRY_DISABLED is set",
        "marker": f"disabled by `telespool --app {app} disable` (the opt-out marker exists)",
        "code": "the host passed enabled=False",
        "ci": f"running under CI (set {prefix}_TELEMETRY_ALLOW_CI=1 to keep it on)",
        "test_runner": (
            f"running under a test runner (set {prefix}_TELEMETRY_ALLOW_CI=1 to keep it on)"
        ),
    }
    return texts.get(decision.reason, decision.reason)
