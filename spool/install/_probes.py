"""Environment probes: the deploy shape, by presence only.

A probe checks whether known variables or files exist or contain fixed words;
it never puts a hostname, path or other free value into an event. Each
answer comes from a closed set per probe (``container`` is a bool), ``"none"``
when nothing matched and ``"unknown"`` when the probe itself failed. Each
probe is isolated (one failing probe never affects another, never raises) and
computed once per process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._consent import ci_vendor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

__all__ = [
    "AUTO_SOURCES",
    "IDENTITY_SOURCES",
    "PROBES",
    "env_probe",
    "probe_all",
    "process_probes",
]

UNKNOWN = "unknown"
NONE = "none"

# The detection rules of getpatter 0.7.0's ``telemetry/environment.py``, in its
# order (the first match wins), so the reference schema's deploy shape is the
# seed's for the same variables and files; tests/test_seed_oracle.py holds it.
# Coding agents: the mere presence of a marker variable, even empty.
_AGENTS = (
    (("CLAUDECODE", "CLAUDE_CODE", "CLAUDE_CODE_ENTRYPOINT"), "claude"),
    (("CURSOR_TRACE_ID", "CURSOR_AGENT"), "cursor"),
    (("GITHUB_COPILOT_AGENT", "COPILOT_AGENT_ID"), "copilot"),
    (("GEMINI_CLI", "GEMINI_AGENT"), "gemini"),
    (("WINDSURF", "WINDSURF_AGENT"), "windsurf"),
    (("AIDER", "OPENAI_AGENT"), "other"),
)
# The rest: a variable that is set and non-empty.
_SERVERLESS = (
    (("AWS_LAMBDA_FUNCTION_NAME",), "lambda"),
    (("K_SERVICE",), "cloud_run"),  # Google Cloud Run / Knative
    (("VERCEL",), "vercel"),
    (("AZURE_FUNCTIONS_ENVIRONMENT", "FUNCTIONS_WORKER_RUNTIME"), "azure_functions"),
)
_CLOUD = (
    (("AWS_REGION", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME"), "aws"),
    (("K_SERVICE", "GOOGLE_CLOUD_PROJECT", "GCP_PROJECT"), "gcp"),
    (("WEBSITE_INSTANCE_ID", "AZURE_FUNCTIONS_ENVIRONMENT"), "azure"),
    (("FLY_APP_NAME",), "fly"),
)
_PACKAGE_MANAGERS = (
    (("POETRY_ACTIVE",), "poetry"),
    (("PIPENV_ACTIVE",), "pipenv"),
)  # then uv and conda, which need more than a variable (see package_manager)
# Words in /proc/1/cgroup that mean a container runtime started PID 1.
_CGROUP_WORDS = ("docker", "containerd", "kubepods")

if TYPE_CHECKING:
    Table = Sequence[tuple[tuple[str, ...], str]]


def _first(env: Mapping[str, str], table: Table, *, presence: bool = False) -> str | None:
    for names, value in table:
        for var in names:
            if (var in env) if presence else bool(env.get(var)):
                return value
    return None


def _exists(root: Path, rel: str) -> bool:
    return (root / rel).exists()


def container(env: Mapping[str, str], root: Path) -> bool:
    """True in a container; never raises for a missing or unreadable cgroup file."""
    if _exists(root, ".dockerenv"):
        return True
    if env.get("KUBERNETES_SERVICE_HOST"):
        return True
    try:
        # Bounded and never a decode error: the seed reads it whole as UTF-8.
        with open(root / "proc/1/cgroup", encoding="utf-8", errors="replace") as f:
            blob = f.read(1 << 16)
    except OSError:
        return False
    return any(word in blob for word in _CGROUP_WORDS)


def serverless(env: Mapping[str, str], root: Path) -> str:
    return _first(env, _SERVERLESS) or NONE


def cloud(env: Mapping[str, str], root: Path) -> str:
    return _first(env, _CLOUD) or NONE


def ci(env: Mapping[str, str], root: Path) -> str:
    return ci_vendor(env) or NONE


def package_manager(env: Mapping[str, str], root: Path) -> str:
    hit = _first(env, _PACKAGE_MANAGERS)
    if hit is not None:
        return hit
    if env.get("UV") or "uv" in (env.get("VIRTUAL_ENV_PROMPT") or "").lower():
        return "uv"
    if env.get("CONDA_DEFAULT_ENV"):
        return "conda"
    # pip is the catch-all for a CPython process, as the seed has it.
    return "pip" if sys.executable else NONE


def invoked_by_agent(env: Mapping[str, str], root: Path) -> str:
    return _first(env, _AGENTS, presence=True) or NONE


if TYPE_CHECKING:
    Probe = Callable[[Mapping[str, str], Path], object]
PROBES: dict[str, Probe] = {
    "container": container,
    "serverless": serverless,
    "cloud": cloud,
    "ci": ci,
    "package_manager": package_manager,
    "invoked_by_agent": invoked_by_agent,
}
# Values the identity module provides to lifecycle events.
IDENTITY_SOURCES = frozenset({"days_since_install", "previous_version", "last_version"})
# Every name a schema property may use as ``"auto"`` (besides its own env_probes).
AUTO_SOURCES = frozenset(PROBES) | IDENTITY_SOURCES


def env_probe(rules: Sequence[Sequence[str]], env: Mapping[str, str]) -> str:
    """A schema-declared probe: the value of the first set variable, else "none"."""
    try:
        for var, value in rules:
            if env.get(var):
                return value
        return NONE
    except Exception:
        return UNKNOWN


def probe_all(env: Mapping[str, str] | None = None, root: Path | None = None) -> dict[str, object]:
    """Run every built-in probe now; ``"unknown"`` for any that fails. Never raises."""
    e = os.environ if env is None else env
    r = Path(root) if root is not None else Path(os.path.abspath(os.sep))
    out: dict[str, object] = {}
    for name, probe in PROBES.items():
        try:
            out[name] = probe(e, r)
        except Exception:
            out[name] = UNKNOWN
    return out


_CACHE: dict[str, object] = {}


def process_probes() -> dict[str, object]:
    """The built-in probes for this process, computed on first use only."""
    if not _CACHE:
        _CACHE.update(probe_all())
    return dict(_CACHE)
