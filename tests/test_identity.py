"""Install identity: random, private, first run exactly once, upgrade funnel."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from spool import Telemetry
from spool.install._identity import _create_exclusive, load_identity, read_install_id
from spool.store._paths import UnsafeStateDir

DAY = 86400.0


def make_dir(state_dir: Path) -> Path:
    state_dir.mkdir(mode=0o700, parents=True)
    return state_dir


def test_the_first_run_creates_a_private_install_file(state_dir: Path) -> None:
    ident = load_identity(make_dir(state_dir), "1.0.0")
    path = state_dir / "install.json"
    assert ident.first_run and ident.previous_version is None and ident.days_since_install == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["install_id"] == ident.install_id == read_install_id(state_dir)
    assert set(stored) == {"install_id", "created_day", "version", "previous_version"}


def test_first_run_happens_once_per_install(state_dir: Path) -> None:
    make_dir(state_dir)
    runs = [load_identity(state_dir, "1.0.0") for _ in range(3)]
    assert [r.first_run for r in runs] == [True, False, False]
    assert len({r.install_id for r in runs}) == 1


def test_install_ids_are_random_not_derived_from_the_machine(tmp_path: Path) -> None:
    ids = {load_identity(make_dir(tmp_path / str(i)), "1.0.0").install_id for i in range(5)}
    assert len(ids) == 5


def test_an_upgrade_records_the_previous_version(state_dir: Path) -> None:
    make_dir(state_dir)
    load_identity(state_dir, "1.0.0")
    up = load_identity(state_dir, "1.1.0")
    assert up.previous_version == "1.0.0" and not up.first_run
    again = load_identity(state_dir, "1.1.0")
    assert again.previous_version == "1.0.0"  # still the version it upgraded from
    assert load_identity(state_dir, "2.0.0").previous_version == "1.1.0"


def test_days_since_install_counts_whole_days(state_dir: Path) -> None:
    make_dir(state_dir)
    t0 = 1_700_000_000.0
    load_identity(state_dir, "1.0.0", now=t0)
    assert load_identity(state_dir, "1.0.0", now=t0 + 3 * DAY).days_since_install == 3
    assert load_identity(state_dir, "1.0.0", now=t0 - 10 * DAY).days_since_install == 0


def test_a_corrupt_install_file_starts_a_new_install(state_dir: Path) -> None:
    make_dir(state_dir)
    (state_dir / "install.json").write_text("{garbage")
    ident = load_identity(state_dir, "1.0.0")
    assert ident.first_run
    assert read_install_id(state_dir) == ident.install_id


def test_a_symlinked_install_file_is_refused(state_dir: Path, tmp_path: Path) -> None:
    make_dir(state_dir)
    target = tmp_path / "elsewhere.json"
    target.write_text("{}")
    (state_dir / "install.json").symlink_to(target)
    with pytest.raises(UnsafeStateDir):
        load_identity(state_dir, "1.0.0")
    assert read_install_id(state_dir) is None
    assert target.read_text() == "{}"


_RACER = """
import sys
from pathlib import Path
from spool.install._identity import load_identity
print(int(load_identity(Path(sys.argv[1]), "1.0.0").first_run))
"""


def test_racing_processes_agree_on_exactly_one_first_run(state_dir: Path) -> None:
    make_dir(state_dir)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(state_dir)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(8)
    ]
    results = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(results) == ["0"] * 7 + ["1"]
    assert not [p for p in state_dir.iterdir() if p.name.endswith(".tmp")]


# -- through the facade ------------------------------------------------------------------
def test_an_opted_out_run_creates_no_install_file(state_dir: Path) -> None:
    with Telemetry("demo", "1.0.0", state_dir=state_dir, enabled=False) as t:
        t.track("cli_command", cli_command="eval")
    assert not state_dir.exists()


def test_do_not_track_creates_no_install_file(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    Telemetry("demo", "1.0.0", state_dir=state_dir).close()
    assert not (state_dir / "install.json").exists()


def test_an_enabled_run_creates_the_install_and_purge_forgets_it(state_dir: Path) -> None:
    with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
        first = read_install_id(state_dir)
        assert first is not None
        t.purge()
        assert not (state_dir / "install.json").exists()
    with Telemetry("demo", "1.0.0", state_dir=state_dir):
        second = read_install_id(state_dir)
    assert second is not None and second != first


def test_the_run_id_is_random_per_process(state_dir: Path) -> None:
    with (
        Telemetry("demo", "1.0.0", state_dir=state_dir) as a,
        Telemetry("demo", "1.0.0", state_dir=state_dir) as b,
    ):
        assert a.run_id != b.run_id and a.run_id != read_install_id(state_dir)


def test_an_unusable_install_file_costs_only_the_lifecycle_events(state_dir: Path) -> None:
    (state_dir / "install.json").mkdir(parents=True)  # a directory where the file belongs
    os.chmod(state_dir, 0o700)
    with Telemetry("demo", "1.0.0", state_dir=state_dir) as t:
        t.track("cli_command", cli_command="eval")
        status = t.status()
    assert status["queued"] == 1
    assert status["dropped"] == {"identity_error": 1}


def test_a_file_created_by_a_racer_after_our_read_is_theirs(state_dir: Path) -> None:
    """The window test_racing_processes_agree_on_exactly_one_first_run hits under load.

    Another process publishes install.json between this one's read (absent) and
    its create: the create must yield to it, not mistake it for a corrupt leftover.
    """
    make_dir(state_dir)
    theirs = load_identity(state_dir, "1.0.0")  # the racer, done first
    ours = {"install_id": "0" * 32, "created_day": 1, "version": "1.0.0", "previous_version": None}
    assert not _create_exclusive(state_dir / "install.json", ours)
    assert read_install_id(state_dir) == theirs.install_id
