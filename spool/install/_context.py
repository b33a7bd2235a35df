"""The context merged into every event: allowlisted facts about the runtime.

Computed once per process (and per app version); never a hostname, path, user
or free string. Every value is from a closed set, a version string that passed
the version pattern, or a small integer.
"""

from __future__ import annotations

import os
import sys

from ..schema._sanitize import OTHER, sanitize_version

__all__ = ["CONTEXT_KEYS", "CONTEXT_PREFIX", "arch", "build", "os_family"]

CONTEXT_PREFIX = "ctx_"
CONTEXT_KEYS = ("ctx_app_version", "ctx_schema_version", "ctx_python", "ctx_os", "ctx_arch")

_ARCH = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "x64": "x86_64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "x86",
    "i686": "x86",
    "x86": "x86",
    "armv7l": "arm",
    "armv6l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def os_family(platform: str = sys.platform) -> str:
    if platform.startswith("linux"):
        return "linux"
    if platform == "darwin":
        return "macos"
    if platform in ("win32", "cygwin", "msys"):
        return "windows"
    if "bsd" in platform:
        return "bsd"
    return OTHER


def arch() -> str:
    """The CPU architecture from a closed set; ``other`` when unknown. Never raises."""
    try:
        if hasattr(os, "uname"):
            machine = os.uname().machine
        else:  # Windows (untested here): the variable holds AMD64, ARM64 or x86
            machine = os.environ.get("PROCESSOR_ARCHITECTURE", "")
        return _ARCH.get(machine.strip().lower(), OTHER)
    except Exception:
        return "unknown"


def build(app_version: str, schema_version: int) -> dict[str, object]:
    """The context dict for one app version. Never raises."""
    return {
        "ctx_app_version": sanitize_version(app_version) or OTHER,
        "ctx_schema_version": schema_version,
        "ctx_python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "ctx_os": os_family(),
        "ctx_arch": arch(),
    }
