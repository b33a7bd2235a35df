"""The environment is user input: a bad value is ignored and counted, never raised.

``Telemetry()`` calls ``check_env`` once, at construction, before consent is
decided: even under ``DO_NOT_TRACK=1`` a bad variable is counted (in memory
then, since an opted-out run writes nothing) and shown by ``status()``.
Problems never quote the value: a URL with a password pasted into the wrong
variable must not reach status() or a log.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..store._paths import env_prefix
from ._endpoint import endpoint_problem
from ._sampling import parse_rate

__all__ = ["EnvCheck", "check_env"]

# What the consent switches accept (spool/install/_consent.py reads them with is_truthy).
_BOOLEAN_WORDS = frozenset({"1", "true", "yes", "on", "0", "false", "no", "off", ""})
_BOOLEAN_PROBLEM = "not a boolean (1/0, true/false, yes/no, on/off): ignored"


class EnvCheck:
    """The usable endpoint from the environment (or None) and every problem found."""

    def __init__(self, endpoint: str | None, problems: dict[str, str]) -> None:
        self.endpoint = endpoint
        self.problems = problems  # variable name -> what is wrong with its value


def check_env(app: str, env: Mapping[str, str], prefix: str | None = None) -> EnvCheck:
    """Validate the variables telespool reads; never raises."""
    prefix = prefix or env_prefix(app)
    problems: dict[str, str] = {}
    for var in (
        "DO_NOT_TRACK",
        f"{prefix}_TELEMETRY_DISABLED",
        f"{prefix}_TELEMETRY_DEBUG",
        f"{prefix}_TELEMETRY_ALLOW_CI",
    ):
        value = env.get(var)
        if value is not None and value.strip().lower() not in _BOOLEAN_WORDS:
            # Not a word either way: say so instead of guessing.
            problems[var] = _BOOLEAN_PROBLEM
    var = f"{prefix}_TELEMETRY_SAMPLE"
    if not parse_rate(env.get(var))[1]:
        problems[var] = "not a sampling rate from 0 to 1: ignored (every event kept)"
    var = f"{prefix}_TELEMETRY_ENDPOINT"
    endpoint = env.get(var) or None  # empty means unset, as before
    if endpoint is not None:
        problem = endpoint_problem(endpoint)
        if problem is not None:
            problems[var] = f"endpoint {problem}: ignored"
            endpoint = None
    return EnvCheck(endpoint, problems)
