"""The host's trigger: detached, rare, persisted; never when opted out."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from spool import Telemetry
from spool._policy import Policy
from spool.launch import _spawn, _trigger
from spool.store._upload_state import format_time
from tests.servers import Blackhole, collector, meta, queued, refused_port, wait_for

NOW = 1_800_000_000.0


pytestmark = pytest.mark.usefixtures("no_uploader_left")


def test_veto_when_nothing_is_queued() -> None:
    assert _trigger.spawn_veto(False, {}, NOW, Policy()) == "empty"


def test_veto_while_a_backoff_is_pending() -> None:
    state = {"next_attempt_at": format_time(NOW + 100)}
    assert _trigger.spawn_veto(True, state, NOW, Policy()) == "backoff"


def test_a_backoff_beyond_the_cap_means_the_clock_jumped_and_is_ignored() -> None:
    policy = Policy(backoff_max_s=600.0, backoff_base_s=60.0)
    state = {"next_attempt_at": format_time(NOW + 10 * 86400)}
    assert _trigger.spawn_veto(True, state, NOW, policy) is None


def test_veto_within_the_minimum_interval() -> None:
    state = {"last_spawn_at": format_time(NOW - 10)}
    assert _trigger.spawn_veto(True, state, NOW, Policy(trigger_interval_s=60)) == "interval"
    assert _trigger.spawn_veto(True, state, NOW, Policy(trigger_interval_s=5)) is None


def test_exit_starts_a_detached_uploader_that_delivers(tmp_path: Path, state_dir: Path) -> None:
    with collector(tmp_path / "c.db") as c:
        t = Telemetry(app="demo", version="1.0.0", endpoint=c.url, state_dir=state_dir)
        for _ in range(20):
            t.track("cli_command", cli_command="eval")
        n = t.status()["queued"]
        t.close()  # what atexit runs
        wait_for(lambda: c.stats()["events"] == n)
    assert t._trigger is not None and t._trigger.spawned == 1
    wait_for(lambda: queued(state_dir) == 0)
    assert meta(state_dir, "upload")["last_spawn_at"]


def test_hundred_offline_runs_spawn_only_a_handful(state_dir: Path) -> None:
    endpoint = f"http://127.0.0.1:{refused_port()}/v1/events"
    spawned = 0
    for _ in range(100):
        t = Telemetry(app="demo", version="1.0.0", endpoint=endpoint, state_dir=state_dir)
        t.track("cli_command", cli_command="eval")
        t.close()
        assert t._trigger is not None
        spawned += t._trigger.spawned
    assert 1 <= spawned <= 3


def test_a_long_lived_host_triggers_from_track(tmp_path: Path, state_dir: Path) -> None:
    with collector(tmp_path / "c.db") as c:
        t = Telemetry(
            app="demo",
            version="1.0.0",
            endpoint=c.url,
            state_dir=state_dir,
            trigger_events=50,
            trigger_interval_s=0.0,
        )
        for _ in range(60):
            t.track("cli_command", cli_command="eval")
        # The check and the spawn run on the helper thread, never in track().
        trigger = t._trigger
        assert trigger is not None
        wait_for(lambda: trigger.spawned >= 1)
        wait_for(lambda: c.stats()["events"] >= 40)
        t.close()


def _pausing_host(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch, give_up_s: float, **policy: Any
) -> Telemetry:
    """A long-lived host whose uploader is refused, spawning after every 10
    events, with the helper's give-up on a pause set to ``give_up_s``."""
    from spool.store import _pauses

    monkeypatch.setattr(_pauses, "TRIGGER_PAUSE_WAIT_S", give_up_s)
    return Telemetry(
        app="demo",
        version="1.0.0",
        state_dir=state_dir,
        endpoint=f"http://127.0.0.1:{refused_port()}/v1",
        trigger_events=10,
        trigger_interval_s=0.0,
        **policy,
    )


def test_a_spawn_asked_for_mid_burst_waits_for_the_pause(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, the helper claimed and spawned mid-burst: the claim's write
    # waited out the appends, the uploader's start-up competed with them, and
    # the WAL job's checkpoint fell into the next burst (docs/performance.md).
    # A pause is 300 ms without an append here, so a descheduled test thread
    # is not one. The second burst comes after the give-up time has passed
    # since the first ask: a timer left from that ask made it overdue at once.
    t = _pausing_host(
        state_dir, monkeypatch, 3.0, wal_idle_ms=300.0, backoff_base_s=0.001, backoff_max_s=0.001
    )
    try:
        trigger = t._trigger
        writer = t._writer
        assert trigger is not None and writer is not None
        for burst in (1, 2):
            # 500 events: the WAL stays under its soft share, so no WAL job runs
            for _ in range(500):  # the spawn is due after 10 events
                t.track("cli_command", cli_command="eval")
            assert writer.helper.pending("trigger")
            assert trigger.spawned == burst - 1, f"spawned during burst {burst}"

            def started(n: int = burst) -> bool:
                return trigger is not None and trigger.spawned >= n

            wait_for(started)  # the pause: now it starts
            # The first uploader ends (refused, a 1 ms backoff), and the give-up
            # time passes since the first ask.
            wait_for(lambda: all(c.poll() is not None for c in _spawn._CHILDREN))
            if burst == 1:
                time.sleep(3.5)  # lets the first ask age past the give-up: no timed assertion
    finally:
        t.close()


def test_a_host_that_never_pauses_still_spawns(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No pause can come (one takes a minute without an append): only the
    # give-up starts the uploader.
    t = _pausing_host(state_dir, monkeypatch, 0.2, wal_idle_ms=60_000.0)
    try:
        trigger = t._trigger
        assert trigger is not None
        appended = 0
        while trigger.spawned == 0 and appended < 2_000_000:  # bounded: a hang guard
            for _ in range(100):
                t.track("cli_command", cli_command="eval")
            appended += 100
        assert trigger.spawned >= 1
    finally:
        t.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_child_runs_in_its_own_session_with_stdio_on_devnull(state_dir: Path) -> None:
    with Blackhole() as hole:
        t = Telemetry(
            app="demo",
            version="1.0.0",
            endpoint=hole.url,
            state_dir=state_dir,
            read_timeout_s=3.0,
        )
        # A descriptor the host made inheritable (a pipe its parent waits on,
        # say) must not be held open by the detached uploader.
        r, w = os.pipe()
        os.set_inheritable(w, True)
        t.track("cli_command", cli_command="eval")
        t.close()
        child = _spawn._CHILDREN[-1]
        pipe_inode = os.fstat(w).st_ino
        os.close(r)
        os.close(w)
        assert os.getsid(child.pid) == child.pid != os.getsid(0)
        assert pipe_inode not in _inodes_held_by(child.pid)
        for fd in (0, 1, 2):
            assert os.readlink(f"/proc/{child.pid}/fd/{fd}") == "/dev/null"
        # (An "fds include 0, 1, 2" check held for any process: the inheritable
        # pipe above is the real proof that no descriptor of ours leaked.)
        child.wait(timeout=30)


def _inodes_held_by(pid: int) -> set[int]:
    """Inodes of the descriptors a running process holds. It opens and closes
    its own as it runs (CI: one closed between the listing and its stat)."""
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            held.add(os.stat(f"/proc/{pid}/fd/{fd}").st_ino)
        except FileNotFoundError:
            pass  # closed since the listing: not held
    return held


@pytest.mark.parametrize("how", ["opted_out", "debug", "no_endpoint"])
def test_never_spawns_when_opted_out_debug_or_without_endpoint(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    endpoint: str | None = f"http://127.0.0.1:{refused_port()}/v1/events"
    if how == "opted_out":
        monkeypatch.setenv("DO_NOT_TRACK", "1")
    elif how == "debug":
        monkeypatch.setenv("DEMO_TELEMETRY_DEBUG", "1")
    else:
        endpoint = None
    t = Telemetry(app="demo", version="1.0.0", endpoint=endpoint, state_dir=state_dir)
    t.track("cli_command", cli_command="eval")
    t.close()
    assert _spawn._CHILDREN == []
    assert t._trigger is None
