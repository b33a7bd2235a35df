"""Moving getpatter 0.7.0 onto telespool: its users' state is honoured, read only.

The old state is written by getpatter's own ``install_id`` module (loaded from
the pinned wheel, tests/getpatter_seed.py), so the test migrates exactly what a
real getpatter install leaves behind. Skipped on Python 3.10.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spool import Legacy, Telemetry
from tests import getpatter_seed

pytestmark = pytest.mark.skipif(not getpatter_seed.AVAILABLE, reason=getpatter_seed.SKIP_REASON)


@pytest.fixture(scope="module")
def seed() -> dict[str, Any]:
    return getpatter_seed.load()


@contextlib.contextmanager
def seed_env(home: Path, **extra: str) -> Iterator[dict[str, str]]:
    """A user's environment, for both the old client (os.environ) and telespool."""
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", ""), **extra}
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    os.environ["PATTER_TELEMETRY_ALLOW_CI"] = "1"  # this process runs under pytest
    try:
        yield env
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _old_client_ran(seed: dict[str, Any], version: str = "0.6.8") -> str:
    """What getpatter's Patter(...) does on an enabled start: id, first-run marker, version."""
    ids = seed["install_id"]
    ids._install_id = None  # a fresh process
    install_id = str(ids.install_id())
    assert ids.is_first_run() is True
    ids.previous_version(version)
    return install_id


def _events(state_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    db = sqlite3.connect(state_dir / "spool.db")
    try:
        rows = db.execute("SELECT name, props FROM events ORDER BY id").fetchall()
    finally:
        db.close()
    return [(n, json.loads(p)) for n, p in rows]


@pytest.mark.parametrize("layout", ["home", "xdg", "override"])
def test_a_migrated_install_keeps_its_id_and_never_fires_first_run_again(
    seed: dict[str, Any], tmp_path: Path, layout: str
) -> None:
    extra = {
        "home": {},
        "xdg": {"XDG_STATE_HOME": str(tmp_path / "xdg")},
        "override": {"PATTER_TELEMETRY_STATE_DIR": str(tmp_path / "patter-state")},
    }[layout]
    with seed_env(tmp_path, **extra) as env:
        old_id = _old_client_ran(seed)
        state_dir = tmp_path / "telespool"
        t = Telemetry(
            "getpatter",
            "0.7.0",
            env_prefix="PATTER",
            state_dir=state_dir,
            legacy=Legacy.getpatter(env),
        )
        t.close()
    install = json.loads((state_dir / "install.json").read_text())
    assert old_id in json.dumps(install)  # the same install, counted once
    names = [n for n, _ in _events(state_dir)]
    assert names == ["sdk_initialized"]  # no second first_run
    props = _events(state_dir)[0][1]
    assert props["previous_sdk_version"] == "0.6.8"  # the old client's last version


@pytest.mark.parametrize("layout", ["home", "xdg", "override"])
def test_an_opt_out_made_with_the_old_client_keeps_telemetry_off(
    seed: dict[str, Any], tmp_path: Path, layout: str
) -> None:
    extra = {
        "home": {},
        "xdg": {"XDG_STATE_HOME": str(tmp_path / "xdg")},
        "override": {"PATTER_TELEMETRY_STATE_DIR": str(tmp_path / "patter-state")},
    }[layout]
    with seed_env(tmp_path, **extra) as env:
        seed["install_id"].set_opt_out(True)  # `getpatter telemetry disable`
        assert seed["consent"].is_enabled(None) is False
        state_dir = tmp_path / "telespool"
        t = Telemetry(
            "getpatter",
            "0.7.0",
            env_prefix="PATTER",
            state_dir=state_dir,
            legacy=Legacy.getpatter(env),
        )
        t.track("cli_command", cli_command="eval")
        status = t.status()
        t.close()
    assert status["enabled"] is False and status["reason"] == "legacy_marker"
    assert not state_dir.exists()  # an opted-out run writes nothing


def test_without_legacy_the_old_opt_out_would_be_ignored(
    seed: dict[str, Any], tmp_path: Path
) -> None:
    """Why the option exists: telespool's own marker is a different file."""
    with seed_env(tmp_path):
        seed["install_id"].set_opt_out(True)
        t = Telemetry("getpatter", "0.7.0", env_prefix="PATTER", state_dir=tmp_path / "telespool")
        status = t.status()
        t.close()
    assert status["enabled"] is True


def test_the_old_clients_files_are_only_read(seed: dict[str, Any], tmp_path: Path) -> None:
    with seed_env(tmp_path) as env:
        _old_client_ran(seed)
        old = tmp_path / ".getpatter"
        before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in old.iterdir()}
        Telemetry(
            "getpatter",
            "0.7.0",
            env_prefix="PATTER",
            state_dir=tmp_path / "telespool",
            legacy=Legacy.getpatter(env),
        ).close()
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in old.iterdir()}
    assert after == before


def test_the_state_dir_override_is_shared_with_the_old_client_without_collisions(
    seed: dict[str, Any], tmp_path: Path
) -> None:
    shared = tmp_path / "patter-state"
    with seed_env(tmp_path, PATTER_TELEMETRY_STATE_DIR=str(shared)) as env:
        _old_client_ran(seed)
        old_files = {p.name: p.read_bytes() for p in shared.iterdir()}
        t = Telemetry("getpatter", "0.7.0", env_prefix="PATTER", legacy=Legacy.getpatter(env))
        t.track("cli_command", cli_command="eval")
        t.close()
    assert t.state_dir == shared  # {PREFIX}_TELEMETRY_STATE_DIR, used literally
    assert (shared / "spool.db").exists() and (shared / "install.json").exists()
    assert {p: (shared / p).read_bytes() for p in old_files} == old_files


def test_the_env_prefix_is_separate_from_the_app_name(tmp_path: Path) -> None:
    for var, enabled in (
        ("PATTER_TELEMETRY_DISABLED", False),
        ("GETPATTER_TELEMETRY_DISABLED", True),
    ):
        with seed_env(tmp_path, **{var: "1"}):
            t = Telemetry("getpatter", "0.7.0", env_prefix="PATTER", state_dir=tmp_path / var)
            status = t.status()
            t.close()
        assert status["enabled"] is enabled, var
