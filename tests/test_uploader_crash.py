"""Coordination and crashes, with real processes: lock, SIGKILL, opt-out, TLS."""

from __future__ import annotations

import os
import signal
import ssl
from pathlib import Path

import pytest
import trustme

from tests.hosts import host_env
from tests.servers import (
    Gate,
    ScriptedServer,
    collector,
    fill,
    fixed,
    meta,
    queued,
    run_uploader,
    start_uploader,
    wait_for,
)
from uploader import drain
from uploader._drain import PAUSE_AFTER_POST_ENV
from uploader._lock import try_lock

FAST = {"connect_timeout_s": 2.0, "read_timeout_s": 2.0}


# The uploader's client waits this long for a held reply: far longer than a
# second uploader takes to start on a loaded machine, so a Gate (not a timed
# pause) decides the order of events.
HOLD = {"read_timeout_s": 120.0}
# A victim paused after its first accepted batch is SIGKILLed as soon as the
# server has stored that batch; the pause only has to outlast the test's reaction.
KILL_WINDOW_S = "600"


def test_two_uploaders_at_once_one_drains_without_duplicates(state_dir: Path) -> None:
    gate = Gate()
    with ScriptedServer(fixed(200), gate=gate) as server:
        fill(state_dir, 2000, server.url, batch_events=100, **HOLD)
        with start_uploader(state_dir) as first:
            # Handshake: the first is mid-pass (it holds the lock) until we release it.
            gate.wait_arrived()
            second = run_uploader(state_dir)
            gate.release()
            first_done = first.done()
        ids = server.event_ids
    assert second["outcome"] == "busy" and second["sent"] == 0
    assert first_done["outcome"] == "empty" and first_done["sent"] == 2000
    assert len(ids) == len(set(ids)) == 2000
    assert queued(state_dir) == 0


def test_sigkill_after_the_server_accepted_is_resent_and_stored_once(
    tmp_path: Path, state_dir: Path
) -> None:
    with collector(tmp_path / "c.db") as c:
        fill(state_dir, 1000, c.url, batch_events=100)
        with start_uploader(
            state_dir, env=host_env(**{PAUSE_AFTER_POST_ENV: KILL_WINDOW_S})
        ) as victim:
            wait_for(lambda: c.stats()["events"] == 100)  # accepted, not yet deleted
            assert victim.kill() == -signal.SIGKILL
        assert queued(state_dir) == 1000  # nothing was deleted, nothing is stuck
        done = run_uploader(state_dir)
        stats = c.stats()
    assert done["outcome"] == "empty" and done["sent"] == 1000
    assert stats["events"] == 1000  # exactly once
    assert stats["duplicates"] == 100  # the re-sent batch, deduplicated by event id
    assert queued(state_dir) == 0


def test_opting_out_while_draining_stops_and_purges(state_dir: Path) -> None:
    gate = Gate()
    with ScriptedServer(fixed(200), gate=gate) as server:
        fill(state_dir, 1000, server.url, batch_events=100, **HOLD)
        with start_uploader(state_dir) as proc:
            gate.wait_arrived()  # the first batch is in flight: consent was checked
            (state_dir / "disabled").touch()  # what `telespool disable` writes
            gate.release()
            done = proc.done()
        ids = server.event_ids
    assert done["outcome"] == "opted_out"
    assert len(ids) < 1000
    assert sorted(p.name for p in state_dir.iterdir()) == ["disabled"]


def test_env_kill_switch_in_the_uploader_purges_without_sending(state_dir: Path) -> None:
    with ScriptedServer(fixed(200)) as server:
        fill(state_dir, 10, server.url)
        done = run_uploader(state_dir, env=host_env(DO_NOT_TRACK="1"))
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
    # Stat the lock while it is held: filelock may unlink it on release, and a
    # check made after drain() would then pass without looking at anything.
    fill(state_dir, 5, None)
    lock = try_lock(state_dir)
    assert lock is not None
    try:
        path = state_dir / "upload.lock"
        assert path.exists()
        assert os.stat(path).st_mode & 0o077 == 0
        assert drain(state_dir).outcome == "busy"  # it is the uploaders' lock
    finally:
        lock.release()
