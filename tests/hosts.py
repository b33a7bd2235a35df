"""Run real host processes for tests: a fresh interpreter with a clean env.

``host_env`` is the one environment builder for every process a test starts
(hosts, the uploader, the CLI): a developer's or CI runner's shell can never
switch telemetry off, route loopback traffic through a proxy, or point the
tests at a real endpoint. Each test adds exactly the variables it is about.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spool.install import _consent

ROOT = Path(__file__).resolve().parent.parent
# Every variable the consent resolver reads (spool/install/_consent.py is the source),
# so a test's own environment can never switch telemetry off by accident.
CONSENT_VARS = frozenset({"DO_NOT_TRACK", "CI", *(var for var, _ in _consent._CI_VARS)})
# Subprocess hosts also shed the test-runner markers pytest sets in this process.
HOST_CLEARED_VARS = CONSENT_VARS | frozenset(_consent._TEST_VARS)


def is_test_marker(var: str, value: str) -> bool:
    """True for the seed's ``NODE_ENV=test`` / ``{PREFIX}_ENV=test`` markers, for any prefix.

    A JavaScript developer's shell often has NODE_ENV=test; telespool (as getpatter)
    turns itself off under it, so the tests' environments must never inherit it.
    """
    return var == "NODE_ENV" or (var.endswith("_ENV") and value.strip().lower() == "test")


def host_env(**extra: str) -> dict[str, str]:
    """The environment for a test's child process: ``build_env`` with the CI override."""
    return build_env(extra)


def build_env(
    extra: Mapping[str, str], home: Path | None = None, allow_ci: bool = True
) -> dict[str, str]:
    """os.environ without consent-changing variables (CI vendors, kill switches,
    test-runner markers, any ``*_TELEMETRY_*``), importable from the checkout.

    ``allow_ci`` adds app 'demo''s documented CI override (the default: the
    suite itself may run under CI); consent tests pass False to see the bare
    rules. ``home`` puts HOME and XDG_STATE_HOME inside the test's sandbox.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in HOST_CLEARED_VARS
        and "_TELEMETRY_" not in k
        and not k.startswith("PYTEST_")
        and not is_test_marker(k, v)
    }
    if allow_ci:
        env["DEMO_TELEMETRY_ALLOW_CI"] = "1"
    if home is not None:
        env["HOME"] = str(home)
        env["XDG_STATE_HOME"] = str(home / ".local" / "state")
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def run_host(
    code: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (with ``args`` as sys.argv[1:]) in a new interpreter;
    its stdout/stderr are captured as text."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env if env is not None else host_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"host failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def last_json(stdout: str) -> Any:
    """The last line of a host's stdout, parsed as JSON."""
    return json.loads(stdout.strip().splitlines()[-1])


def stored_commands(state_dir: Path, command: str) -> int:
    """Events in the spool whose ``cli_command`` property is ``command``."""
    db = sqlite3.connect(state_dir / "spool.db")
    try:
        return int(
            db.execute(
                "SELECT count(*) FROM events WHERE json_extract(props, '$.cli_command') = ?",
                (command,),
            ).fetchone()[0]
        )
    finally:
        db.close()


def fold_pending(state_dir: Path, *, locked_ok: bool = False) -> None:
    """Open hosts until ``events.pending`` is folded in; none may count ``locked``
    (unless ``locked_ok``: the caller then counts those losses itself).

    A host whose exit met other processes' commits pausing for a full
    lock_wait_ms leaves its rows there rather than wait longer: stored by the
    next host or uploader pass, never lost. A host folds a slice at a time
    (half its buffer, one size check's bytes), so a few may be needed.
    """
    from spool import Telemetry

    for _ in range(20):
        with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
            dropped = t.status()["dropped"]
        assert locked_ok or "locked" not in dropped, dropped
        if not (state_dir / "events.pending").exists():
            return
    raise AssertionError("events.pending is still there after 20 hosts")
