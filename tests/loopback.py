"""Helpers for the consent and CLI tests: a sandboxed environment, the real
console script, and what a process left behind (files, live processes).

The loopback server these tests use is ``tests.servers.ScriptedServer`` (it
counts TCP connections too, so "zero connections" means zero bytes).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.hosts import build_env

ROOT = Path(__file__).resolve().parent.parent


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """``build_env`` with HOME inside the test and no CI override (the consent
    and CLI tests add exactly the variables they are about)."""
    return build_env(extra, home, allow_ci=False)


def run(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    kw.setdefault("cwd", str(ROOT))
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, **kw)


def telespool(*args: str, env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run the installed console script ``.venv/bin/telespool`` for real."""
    exe = Path(sys.executable).with_name("telespool")
    return run([str(exe), *args], env, **kw)


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (relative), directories included."""
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text`` (Linux /proc)."""
    found = []
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmd:
            found.append(cmd)
    return found
