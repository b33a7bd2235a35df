"""A purge never claims a deletion that did not happen (issue 14 item 7).

On Windows a file another process holds open cannot be unlinked. That cannot
happen on Linux, so the tests cause a real unlink failure another way: the
CLI runs as root without the capabilities that bypass file permissions
(``without_dac_override``), in a state dir it may not write. The kernel's
EACCES is real; the Windows sharing violation itself is untested here.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from spool import Telemetry
from tests.loopback import clean_env, telespool
from tests.test_cli import one_line_error, without_dac_override

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self") or os.geteuid() != 0, reason="Linux root (drops capabilities)"
)


def _host_with_events(state_dir: Path, n: int) -> Telemetry:
    """A host that keeps the spool open (its -wal and -shm exist) with n events queued."""
    host = Telemetry(app="demo", version="1.0.0", state_dir=state_dir)
    for _ in range(n - int(host.status()["queued"])):
        host.track("cli_command", cli_command="eval")
    assert host.status()["queued"] == n
    return host


def test_purge_reports_each_file_it_could_not_delete_and_still_clears_the_events(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "state"
    host = _host_with_events(state_dir, 6)
    assert (state_dir / "install.json").exists()
    state_dir.chmod(0o500)  # no unlink allowed in it (for a process without DAC override)
    try:
        args = ("--app", "demo", "--state-dir", str(state_dir), "purge")
        env = clean_env(tmp_path)
        text = telespool(*args, env=env, preexec_fn=without_dac_override)
        as_json = telespool(*args, "--json", env=env, preexec_fn=without_dac_override)
    finally:
        state_dir.chmod(0o700)
    assert text.returncode == 1
    one_line_error(text.stderr)
    assert "not deleted" in text.stderr and "install.json" in text.stderr
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert data["ok"] is False
    assert "install.json" in data["failed"] and "install.json" not in data["removed"]
    assert (state_dir / "install.json").exists()
    # The spool itself is emptied in place (the events are what matters).
    assert host.status()["queued"] == 0
    host.close()


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``chattr +i``: not even root may unlink the file (a real EPERM from ext4)."""
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported on this filesystem")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_disable_says_what_it_could_not_delete_instead_of_claiming_success(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "state"
    host = _host_with_events(state_dir, 3)
    with immutable(state_dir / "install.json"):
        proc = telespool(
            "--app", "demo", "--state-dir", str(state_dir), "disable", env=clean_env(tmp_path)
        )
        as_json = telespool(
            "--app",
            "demo",
            "--state-dir",
            str(state_dir),
            "disable",
            "--json",
            env=clean_env(tmp_path),
        )
    assert proc.returncode == 1, proc.stdout
    assert "was deleted" not in proc.stdout
    one_line_error(proc.stderr)
    assert "install.json" in proc.stderr
    data = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and data["ok"] is False and "install.json" in data["failed"]
    assert sorted(os.listdir(state_dir)) == ["disabled", "install.json"]
    host.close()


def test_the_api_purge_counts_a_file_it_could_not_delete(state_dir: Path) -> None:
    host = _host_with_events(state_dir, 3)
    with immutable(state_dir / "install.json"):
        host.purge()
    status = host.status()
    assert status["queued"] == 0
    assert status["errors"].get("purge_incomplete") == 1
    host.close()


def test_a_directory_where_a_file_should_be_is_reported_not_removed(state_dir: Path) -> None:
    Telemetry(app="demo", version="1.0.0", state_dir=state_dir).close()
    (state_dir / "notes").mkdir()
    from spool.store._clear import clear_state_dir

    report = clear_state_dir(state_dir)
    assert not report.ok and "notes" in report.failed
    assert (state_dir / "notes").is_dir()
