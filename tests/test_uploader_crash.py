"""Coordination and crashes, with real processes: lock, SIGKILL, opt-out, TLS."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from tests.servers import (
    ScriptedServer,
    child_env,
    collector,
    fill,
    fixed,
    meta,
    queued,
    run_uploader,
    wait_for,
)
from uploader import drain
from uploader._drain import PAUSE_AFTER_POST_ENV

FAST = {"connect_timeout_s": 2.0, "read_timeout_s": 2.0}


def _start_uploader(state_dir: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "uploader", "--state-dir", str(state_dir), "--progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(**env),
    )


def _done_line(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, err = proc.communicate(timeout=60)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert lines and lines[-1]["type"] == "done", (out, err)
    return dict(lines[-1])


def test_two_uploaders_at_once_one_drains_without_duplicates(
    tmp_path: Path, state_dir: Path
) -> None:
    with collector(tmp_path / "c.db") as c:
        fill(state_dir, 2000, c.url, batch_events=100)
        # The first pauses after its first accepted batch, holding the lock.
        first = _start_uploader(state_dir, **{PAUSE_AFTER_POST_ENV: "1.5"})
        wait_for(lambda: c.stats()["events"] > 0)
        second = run_uploader(state_dir)
        first_done = _done_line(first)
        stats = c.stats()
    assert second["outcome"] == "busy" and second["sent"] == 0
    assert first_done["outcome"] == "empty" and first_done["sent"] == 2000
    assert stats["events"] == 2000 and stats["duplicates"] == 0
    assert queued(state_dir) == 0


def test_sigkill_after_the_server_accepted_is_resent_and_stored_once(
    tmp_path: Path, state_dir: Path
) -> None:
    with collector(tmp_path / "c.db") as c:
        fill(state_dir, 1000, c.url, batch_events=100)
        victim = _start_uploader(state_dir, **{PAUSE_AFTER_POST_ENV: "60"})
        wait_for(lambda: c.stats()["events"] == 100)  # accepted, not yet deleted
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        assert victim.returncode == -signal.SIGKILL
        assert queued(state_dir) == 1000  # nothing was deleted, nothing is stuck
        done = run_uploader(state_dir)
        stats = c.stats()
    assert done["outcome"] == "empty" and done["sent"] == 1000
    assert stats["events"] == 1000  # exactly once
    assert stats["duplicates"] == 100  # the re-sent batch, deduplicated by event id
    assert queued(state_dir) == 0


def test_opting_out_while_draining_stops_and_purges(tmp_path: Path, state_dir: Path) -> None:
    with collector(tmp_path / "c.db") as c:
        fill(state_dir, 1000, c.url, batch_events=100)
        proc = _start_uploader(state_dir, **{PAUSE_AFTER_POST_ENV: "2"})
        wait_for(lambda: c.stats()["events"] > 0)
        (state_dir / "disabled").touch()  # what `telespool disable` writes
        done = _done_line(proc)
        stats = c.stats()
    assert done["outcome"] == "opted_out"
    assert stats["events"] < 1000
    assert sorted(p.name for p in state_dir.iterdir()) == ["disabled"]


def test_env_kill_switch_in_the_uploader_purges_without_sending(state_dir: Path) -> None:
    with ScriptedServer(fixed(200)) as server:
        fill(state_dir, 10, server.url)
        done = run_uploader(state_dir, env=child_env(DO_NOT_TRACK="1"))
    assert done["outcome"] == "opted_out"
    assert server.requests == 0
    assert not (state_dir / "spool.db").exists()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return ctx


def test_tls_with_the_right_ca_delivers(
    tmp_path: Path, state_dir: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("TELESPOOL_CA_BUNDLE", str(bundle))
    with ScriptedServer(fixed(200), tls=_tls_context(ca)) as server:
        assert server.url.startswith("https://")
        fill(state_dir, 50, server.url, **FAST)
        result = drain(state_dir)
    assert result.outcome == "empty" and result.sent == 50
    assert len(server.event_ids) == 50


def test_tls_with_a_wrong_ca_fails_and_is_counted(
    tmp_path: Path, state_dir: Path, ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("TELESPOOL_CA_BUNDLE", str(bundle))
    with ScriptedServer(fixed(200), tls=_tls_context(ca)) as server:
        fill(state_dir, 50, server.url, **FAST)
        result = drain(state_dir)
        assert server.envelopes == []
    assert result.outcome == "backoff"
    upload = meta(state_dir, "upload")
    assert upload["errors"] == {"tls": 1} and upload["last_error"] == "tls"
    assert queued(state_dir) == 50


def test_lock_file_is_private(state_dir: Path) -> None:
    with ScriptedServer(fixed(200)) as server:
        fill(state_dir, 5, server.url)
        drain(state_dir)
    lock = state_dir / "upload.lock"
    if lock.exists():  # filelock may remove it on release
        assert os.stat(lock).st_mode & 0o077 == 0
