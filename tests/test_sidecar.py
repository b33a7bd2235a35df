"""The exit's sidecars: rows and counts SQLite could not take, kept on disk.

Real files in a real state dir; the next host folds them in. A hand-edited
line is never stored: it is counted ``error.bad_row``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from spool import Telemetry
from spool.store._rows import Row
from spool.store._sidecar import (
    ROWS_NAME,
    SIDECAR_NAME,
    append_losses,
    append_rows,
    take_rows,
    take_some_rows,
)
from tests.hosts import stored_commands
from tests.test_call_path_faults import ExclusiveHolder, ExternalWriter


def _row(command: str) -> Row:
    props = json.dumps({"cli_command": command}, separators=(",", ":"))
    return Row(
        "0da10b71-6796-4727-b857-54bdd3a7bdf1",
        "cli_command",
        "2026-12-03T00:00:00Z",
        "7a532e0b-9d95-481e-bf57-3aac9ba84762",
        props,
        len("cli_command") + len(props),
    )


def test_rows_come_back_exactly_once_from_a_private_file(tmp_path: Path) -> None:
    rows = [_row("eval"), _row("dashboard")]
    assert append_rows(tmp_path, rows)
    mode = stat.S_IMODE(os.stat(tmp_path / ROWS_NAME).st_mode)
    assert mode == 0o600
    assert take_rows(tmp_path) == (rows, 0)
    assert not (tmp_path / ROWS_NAME).exists()
    assert take_rows(tmp_path) == ([], 0)


def test_hand_edited_lines_are_counted_never_stored(tmp_path: Path) -> None:
    good = _row("eval")
    lines = [
        "not json",
        "{}",  # not a row
        json.dumps([*good[:5], good.size + 1]),  # a size track() never gives
        json.dumps([*good[:4], "[1]", len("cli_command") + 3]),  # props not an object
        json.dumps([*good[:4], "{}", "2"]),  # size not an int
        json.dumps([1, *good[1:]]),  # a uuid not a string
        json.dumps(list(good)),
    ]
    (tmp_path / ROWS_NAME).write_text("\n".join(lines) + "\n")
    assert take_rows(tmp_path) == ([good], 6)
    assert take_rows(tmp_path) == ([], 0)  # the file is gone


def test_a_host_stores_the_rows_and_counts_the_rest(state_dir: Path) -> None:
    with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
        t.track("cli_command", cli_command="eval")
    with open(state_dir / ROWS_NAME, "a") as f:
        f.write(json.dumps(list(_row("dashboard"))) + "\nnot a row\n")
    with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
        status = t.status()
    assert stored_commands(state_dir, "dashboard") == 1
    assert status["errors"].get("bad_row") == 1, status
    assert not (state_dir / ROWS_NAME).exists()


def test_no_rows_are_kept_in_a_state_dir_the_user_opted_out_of(tmp_path: Path) -> None:
    (tmp_path / "disabled").touch()
    assert append_rows(tmp_path, [_row("eval")])
    assert not (tmp_path / ROWS_NAME).exists()
    assert append_losses(tmp_path, {"locked": 3})  # counts neither (drops.pending was written)
    assert not (tmp_path / SIDECAR_NAME).exists()


def test_rows_past_what_a_host_can_park_stay_in_the_file(state_dir: Path) -> None:
    # Sidecars of many locked exits add up: a host takes half of what its
    # buffer holds (the rest of it is for its own events) and leaves the rest
    # for the next host or uploader pass, counting nothing.
    with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
        t.track("cli_command", cli_command="eval")
    limit = t.policy.buffer_events
    assert append_rows(state_dir, [_row("dashboard")] * (limit + 5))
    with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
        dropped = t.status()["dropped"]
    assert "locked" not in dropped, dropped
    assert take_rows(state_dir) == ([_row("dashboard")] * (limit + 5 - limit // 2), 0)


def test_an_append_racing_a_take_writes_its_rows_again(tmp_path: Path) -> None:
    # The race, made to happen in one process with real files: the taker
    # renames the file away between the appender's open and its check.
    from spool.store import _sidecar

    real_same_file = _sidecar._same_file
    calls: list[int] = []

    def taken_meanwhile(fd: int, path: Path) -> bool:
        if not calls:
            calls.append(1)
            assert take_rows(tmp_path) == ([_row("eval")], 0)  # read before our re-write
        return real_same_file(fd, path)

    _sidecar._same_file = taken_meanwhile
    try:
        assert append_rows(tmp_path, [_row("eval")])
    finally:
        _sidecar._same_file = real_same_file
    assert take_rows(tmp_path) == ([_row("eval")], 0)  # written again, not lost


def test_the_file_never_grows_past_the_bound_an_exit_gives(tmp_path: Path) -> None:
    # An exit passes its cap: a lock held for days must not let exits fill the disk.
    one = len(json.dumps(list(_row("eval")), separators=(",", ":"))) + 1
    assert append_rows(tmp_path, [_row("eval")] * 3, max_file=4 * one)
    assert not append_rows(tmp_path, [_row("eval")] * 2, max_file=4 * one)  # counted by the caller
    assert take_rows(tmp_path) == ([_row("eval")] * 3, 0)


def test_a_slice_is_bounded_by_rows_and_by_bytes_and_the_rest_stays(tmp_path: Path) -> None:
    row = _row("eval")
    assert append_rows(tmp_path, [row] * 10)
    assert take_some_rows(tmp_path, 100, 3 * row.size) == ([row] * 3, 0, 0)
    assert take_some_rows(tmp_path, 2, 100 * row.size) == ([row] * 2, 0, 0)
    assert take_some_rows(tmp_path, 100, 1) == ([row], 0, 0)  # one row at least
    assert take_rows(tmp_path) == ([row] * 4, 0)


def test_a_host_opening_under_a_lock_keeps_its_buffer_for_its_own_events(state_dir: Path) -> None:
    # The host folded a full buffer's worth of rows from the file, then its own
    # events found no room while the lock lasted, each counted "locked" (20 of 20).
    with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
        t.track("cli_command", cli_command="eval")
    assert append_rows(state_dir, [_row("dashboard")] * t.policy.buffer_events)
    for hold in (ExclusiveHolder, ExternalWriter):  # locked at open; locked after it
        holder = hold(state_dir / "spool.db")
        try:
            t = Telemetry("demo", "1.0.0", state_dir=state_dir)
            for _ in range(20):
                t.track("cli_command", cli_command="eval")
            lost = t.status()["dropped"]
        finally:
            holder.release()
        t.close()
        assert "locked" not in lost, (hold.__name__, lost)
    assert stored_commands(state_dir, "eval") == 41
    with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
        assert "locked" not in t.status()["dropped"]
