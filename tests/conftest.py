"""Shared fixtures. Tests control the environment explicitly: CI=true (set by
the landing run) would otherwise switch telemetry off."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hosts import CONSENT_VARS, is_test_marker


def pytest_addoption(parser: pytest.Parser) -> None:
    # The crash torture runs bounded by default; --long runs it for minutes.
    parser.addoption("--long", action="store_true", help="run the long torture variants")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in list(os.environ):
        # A developer's own proxy settings must not route the tests' loopback traffic.
        proxy_var = var.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
        marker = is_test_marker(var, os.environ[var])  # NODE_ENV=test, {PREFIX}_ENV=test
        if var in CONSENT_VARS or "_TELEMETRY_" in var or proxy_var or marker:
            monkeypatch.delenv(var, raising=False)
    # The documented override: keep telemetry on under CI and pytest.
    monkeypatch.setenv("DEMO_TELEMETRY_ALLOW_CI", "1")
    yield


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def no_uploader_left() -> Iterator[None]:
    """Wait for every uploader the test's hosts spawned, so none outlives its tmp_path."""
    yield
    from spool.launch import _spawn

    for child in list(_spawn._CHILDREN):
        try:
            child.wait(timeout=30)
        except Exception:
            child.kill()
    _spawn._CHILDREN.clear()
