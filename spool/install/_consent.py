"""Whether telemetry may run, decided once, with the reason.

Precedence, first match wins (getpatter 0.7.0's ``consent.is_enabled`` order):
  1. environment kill switches: ``DO_NOT_TRACK``, ``{PREFIX}_TELEMETRY_DISABLED``
  2. the persisted opt-out marker written by ``telespool disable``, or a
     legacy client's marker when the host migrates (``legacy_markers``)
  3. the host's in-code flag ``enabled=False``
  4. CI and test runners (unless the maintainer's override allows them)
  5. otherwise on
The override that keeps telemetry on under CI is ``allow_in_ci=True`` in code
or ``{PREFIX}_TELEMETRY_ALLOW_CI=1`` in the environment; it never beats 1-3.

A variable is true unless it is unset, empty or ``0``/``false``/``no``/``off``
(the seed's rule): ``DO_NOT_TRACK=yes please`` opts out. PREFIX is the host's
``env_prefix`` (default: the app name upper-cased), e.g. ``PATTER`` for app
``getpatter``.
"""

from __future__ import annotations

import sys
from collections.abc import Container, Mapping, Sequence
from pathlib import Path

from .._record import Record
from ..store._paths import MARKER_NAME, env_prefix

__all__ = [
    "Decision",
    "ci_vendor",
    "debug_mode",
    "explain",
    "is_truthy",
    "kill_switch",
    "legacy_marker_present",
    "marker_present",
    "resolve",
    "under_test_runner",
]

_FALSE = frozenset({"0", "false", "no", "off", ""})

# A true variable here marks a CI run, with the vendor it names. The first 15
# are getpatter 0.7.0's ``env._CI_ENV_VARS``; the rest are CI systems the seed
# misses, where telespool is off too (an intended difference, docs/migrating.md).
_CI_VARS: tuple[tuple[str, str], ...] = (
    ("GITHUB_ACTIONS", "github_actions"),
    ("GITLAB_CI", "gitlab"),
    ("TRAVIS", "travis"),
    ("CIRCLECI", "circleci"),
    ("APPVEYOR", "appveyor"),
    ("TF_BUILD", "azure_pipelines"),
    ("TEAMCITY_VERSION", "teamcity"),
    ("BUILDKITE", "buildkite"),
    ("DRONE", "drone"),
    ("JENKINS_URL", "jenkins"),
    ("HUDSON_URL", "jenkins"),
    ("BAMBOO_BUILDKEY", "bamboo"),
    ("CODEBUILD_BUILD_ID", "codebuild"),
    ("CONTINUOUS_INTEGRATION", "generic"),
    ("CI", "generic"),
    # Beyond the seed:
    ("CODEBUILD_BUILD_ARN", "codebuild"),
    ("BITBUCKET_BUILD_NUMBER", "bitbucket"),
    ("SEMAPHORE", "semaphore"),
    ("CIRRUS_CI", "cirrus"),
    ("BITRISE_IO", "bitrise"),
    ("BUDDY_WORKSPACE_ID", "buddy"),
    ("CF_BUILD_ID", "codefresh"),
    ("HEROKU_TEST_RUN_ID", "heroku_ci"),
)
SEED_CI_VARS = tuple(var for var, _ in _CI_VARS[:15])
# Test runners: the seed's marker (set at all, even empty), then ones it misses.
_SEED_TEST_VARS = ("PYTEST_CURRENT_TEST",)
_EXTRA_TEST_VARS = ("PYTEST_XDIST_WORKER", "TOX_ENV_NAME", "NOX_CURRENT_SESSION")
_TEST_VARS = _SEED_TEST_VARS + _EXTRA_TEST_VARS


class Decision(Record):
    """Whether telemetry runs, and the one reason that decided it."""

    _fields = ("enabled", "reason")
    enabled: bool
    # e.g. "on", "do_not_track", "env_disabled", "marker", "legacy_marker", "code",
    # "ci", "test_runner"
    reason: str

    @property
    def user_opt_out(self) -> bool:
        """Off because a person or the host said so (purge), not because of CI/tests."""
        return not self.enabled and self.reason not in ("ci", "test_runner")

    def __bool__(self) -> bool:
        return self.enabled


def is_truthy(value: str | None) -> bool:
    """Set to anything but empty, ``0``, ``false``, ``no`` or ``off`` (any case, spaces ignored)."""
    return value is not None and value.strip().lower() not in _FALSE


def kill_switch(app: str, env: Mapping[str, str], prefix: str | None = None) -> str | None:
    """The reason an environment variable forbids telemetry, or None."""
    if is_truthy(env.get("DO_NOT_TRACK")):
        return "do_not_track"
    if is_truthy(env.get(f"{prefix or env_prefix(app)}_TELEMETRY_DISABLED")):
        return "env_disabled"
    return None


def ci_vendor(env: Mapping[str, str]) -> str | None:
    """The CI system this process runs under, or None: the first true CI variable."""
    for var, vendor in _CI_VARS:
        if is_truthy(env.get(var)):
            return vendor
    return None


def under_test_runner(
    env: Mapping[str, str], prefix: str | None = None, modules: Container[str] = sys.modules
) -> bool:
    """True under a test runner.

    The seed's markers: ``PYTEST_CURRENT_TEST`` set, ``{PREFIX}_ENV=test`` or
    ``NODE_ENV=test``. Beyond them: pytest-xdist, tox and nox variables, and
    pytest imported (collection runs before ``PYTEST_CURRENT_TEST`` is set).
    """
    if any(env.get(v) is not None for v in _SEED_TEST_VARS):
        return True
    for var in (f"{prefix}_ENV" if prefix else None, "NODE_ENV"):
        if var is not None and (env.get(var) or "").strip().lower() == "test":
            return True
    return any(env.get(v) for v in _EXTRA_TEST_VARS) or "pytest" in modules


def marker_present(state_dir: Path | None) -> bool:
    """True if the opt-out marker exists; an unreadable dir counts as no marker."""
    if state_dir is None:
        return False
    try:
        return (state_dir / MARKER_NAME).exists()
    except OSError:
        return False


def legacy_marker_present(markers: Sequence[Path]) -> bool:
    """True if any legacy client's opt-out marker exists (read only, never raises)."""
    for path in markers:
        try:
            if path.exists():
                return True
        except OSError:
            continue
    return False


def resolve(
    app: str,
    *,
    enabled: bool,
    state_dir: Path | None,
    env: Mapping[str, str],
    allow_in_ci: bool = False,
    prefix: str | None = None,
    legacy_markers: Sequence[Path] = (),
    modules: Container[str] = sys.modules,
) -> Decision:
    """Decide consent; never touches the disk beyond checking the markers exist."""
    prefix = prefix or env_prefix(app)
    switch = kill_switch(app, env, prefix)
    if switch:
        return Decision(False, switch)
    if marker_present(state_dir):
        return Decision(False, "marker")
    if legacy_marker_present(legacy_markers):
        return Decision(False, "legacy_marker")
    if not enabled:
        return Decision(False, "code")
    allow = allow_in_ci or is_truthy(env.get(f"{prefix}_TELEMETRY_ALLOW_CI"))
    if not allow:
        if ci_vendor(env):
            return Decision(False, "ci")
        if under_test_runner(env, prefix, modules):
            return Decision(False, "test_runner")
    return Decision(True, "on")


def debug_mode(app: str, env: Mapping[str, str], prefix: str | None = None) -> bool:
    """True when ``{PREFIX}_TELEMETRY_DEBUG`` asks to print events instead of storing them."""
    return is_truthy(env.get(f"{prefix or env_prefix(app)}_TELEMETRY_DEBUG"))


def explain(decision: Decision, app: str, prefix: str | None = None) -> str:
    """One sentence a person can act on: why telemetry is on or off."""
    prefix = prefix or env_prefix(app)
    texts = {
        "on": "no opt-out applies",
        "do_not_track": "DO_NOT_TRACK is set",
        "env_disabled": f"{prefix}_TELEMETRY_DISABLED is set",
        "marker": f"disabled by `telespool --app {app} disable` (the opt-out marker exists)",
        "legacy_marker": "the opt-out marker of the client this SDK used before exists",
        "code": "the host passed enabled=False",
        "ci": f"running under CI (set {prefix}_TELEMETRY_ALLOW_CI=1 to keep it on)",
        "test_runner": (
            f"running under a test runner (set {prefix}_TELEMETRY_ALLOW_CI=1 to keep it on)"
        ),
    }
    return texts.get(decision.reason, decision.reason)
