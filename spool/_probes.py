"""Environment probes: the deploy shape, by presence only.

A probe checks whether known variables or files exist or equal fixed values;
it never puts a hostname, path or other free value into an event. Each
answer comes from a closed set per probe, ``"none"`` when nothing matched and
``"unknown"`` when the probe itself failed. Each probe is isolated (one failing
probe never affects another, never raises) and computed once per process.
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

# (variable, value): the first variable that is set and non-empty wins.
_SERVERLESS = (
    ("AWS_LAMBDA_FUNCTION_NAME", "aws_lambda"),
    ("FUNCTIONS_WORKER_RUNTIME", "azure_functions"),
    ("FUNCTION_TARGET", "gcp_functions"),
    ("K_SERVICE", "gcp_cloud_run"),
    ("VERCEL", "vercel"),
    ("NETLIFY", "netlify"),
    ("MODAL_TASK_ID", "modal"),
)
_CLOUD = (
    ("AWS_EXECUTION_ENV", "aws"),
    ("AWS_LAMBDA_FUNCTION_NAME", "aws"),
    ("ECS_CONTAINER_METADATA_URI_V4", "aws"),
    ("K_SERVICE", "gcp"),
    ("FUNCTION_TARGET", "gcp"),
    ("GAE_SERVICE", "gcp"),
    ("WEBSITE_INSTANCE_ID", "azure"),
    ("FUNCTIONS_WORKER_RUNTIME", "azure"),
    ("CONTAINER_APP_NAME", "azure"),
    ("FLY_APP_NAME", "fly"),
    ("RENDER", "render"),
    ("RAILWAY_ENVIRONMENT_NAME", "railway"),
    ("DYNO", "heroku"),
    ("VERCEL", "vercel"),
    ("MODAL_TASK_ID", "modal"),
)
# /sys/class/dmi/id/sys_vendor compared with fixed strings (Linux VMs only).
# "Microsoft Corporation" is left out: local Hyper-V and Surface devices say it too.
_DMI_VENDORS = {
    "Amazon EC2": "aws",
    "Google": "gcp",
    "DigitalOcean": "digitalocean",
    "Hetzner": "hetzner",
    "OpenStack Foundation": "openstack",
}
_PACKAGE_MANAGERS = (
    ("UV", "uv"),
    ("POETRY_ACTIVE", "poetry"),
    ("PIPENV_ACTIVE", "pipenv"),
    ("HATCH_ENV_ACTIVE", "hatch"),
    ("CONDA_PREFIX", "conda"),
)
# Coding agents that mark their child processes. GitHub Copilot sets no
# variable we know of; a generic AI_AGENT (free text) only counts as "other".
_AGENTS = (
    ("CLAUDECODE", "claude_code"),
    ("CLAUDE_CODE", "claude_code"),
    ("CURSOR_AGENT", "cursor"),
    ("CURSOR_TRACE_ID", "cursor"),
    ("CODEX_SANDBOX", "codex"),
    ("CODEX_THREAD_ID", "codex"),
    ("GEMINI_CLI", "gemini_cli"),
    ("REPL_ID", "replit"),
    ("AI_AGENT", "other"),
)
# The value the `container` variable is set to by these runtimes.
_CONTAINER_VAR = {"podman": "podman", "docker": "docker", "lxc": "lxc", "oci": "other"}


def _first_set(env: Mapping[str, str], table: Sequence[tuple[str, str]]) -> str | None:
    for var, value in table:
        if env.get(var):
            return value
    return None


def _exists(root: Path, rel: str) -> bool:
    return (root / rel).exists()


def container(env: Mapping[str, str], root: Path) -> str:
    if env.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    if _exists(root, ".dockerenv"):
        return "docker"
    if _exists(root, "run/.containerenv"):
        return "podman"
    marker = env.get("container")
    if marker:
        return _CONTAINER_VAR.get(marker, "other")
    return NONE


def serverless(env: Mapping[str, str], root: Path) -> str:
    return _first_set(env, _SERVERLESS) or NONE


def cloud(env: Mapping[str, str], root: Path) -> str:
    hit = _first_set(env, _CLOUD)
    if hit is not None:
        return hit
    dmi = root / "sys/class/dmi/id/sys_vendor"
    try:
        with open(dmi, encoding="ascii", errors="replace") as f:
            vendor = f.read(64).strip()
    except OSError:
        return NONE
    return _DMI_VENDORS.get(vendor, NONE)


def ci(env: Mapping[str, str], root: Path) -> str:
    return ci_vendor(env) or NONE


def package_manager(env: Mapping[str, str], root: Path) -> str:
    hit = _first_set(env, _PACKAGE_MANAGERS)
    if hit is not None:
        return hit
    if _exists(Path(sys.prefix), "conda-meta"):
        return "conda"
    if sys.prefix != sys.base_prefix:
        return "venv"
    return "system"


def invoked_by_agent(env: Mapping[str, str], root: Path) -> str:
    hit = _first_set(env, _AGENTS)
    if hit is not None:
        return hit
    if _exists(root, "opt/.devin"):
        return "devin"
    return NONE


if TYPE_CHECKING:
    Probe = Callable[[Mapping[str, str], Path], str]
PROBES: dict[str, Probe] = {
    "container": container,
    "serverless": serverless,
    "cloud": cloud,
    "ci": ci,
    "package_manager": package_manager,
    "invoked_by_agent": invoked_by_agent,
}
# Values the identity module provides to lifecycle events.
IDENTITY_SOURCES = frozenset({"days_since_install", "previous_version"})
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


def probe_all(env: Mapping[str, str] | None = None, root: Path | None = None) -> dict[str, str]:
    """Run every built-in probe now; ``"unknown"`` for any that fails. Never raises."""
    e = os.environ if env is None else env
    r = Path(root) if root is not None else Path(os.path.abspath(os.sep))
    out: dict[str, str] = {}
    for name, probe in PROBES.items():
        try:
            out[name] = probe(e, r)
        except Exception:
            out[name] = UNKNOWN
    return out


_CACHE: dict[str, str] = {}


def process_probes() -> dict[str, str]:
    """The built-in probes for this process, computed on first use only."""
    if not _CACHE:
        _CACHE.update(probe_all())
    return dict(_CACHE)
