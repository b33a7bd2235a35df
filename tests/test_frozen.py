"""Frozen apps (issue 11 Deliver 4, REVIEW C-13), with a real PyInstaller build.

Under PyInstaller ``sys.executable`` is the app itself: the trigger must never
start it as "the uploader" (counted as ``frozen`` instead), and an app that
calls ``uploader.freeze_support()`` at the top of main runs its own uploader,
for the detached trigger and for ``flush()`` alike. The build of the small
host below takes about 15 s here, so it runs in every CI run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spool._protocol import UploaderArgs
from tests.hosts import ROOT, host_env
from tests.servers import collector, drops, queued, wait_for

HOST = textwrap.dedent(
    """
    import json, os, sys

    import uploader  # bundled in every build: the host's import is what freezes it in

    if os.environ.get("HOST_FREEZE_SUPPORT") == "1":
        uploader.freeze_support()  # returns, or runs the uploader and exits
    # Every start of the app's own main is logged: a relaunch shows as another line.
    with open(os.environ["HOST_RUNS_LOG"], "a") as log:
        log.write(json.dumps(sys.argv[1:]) + "\\n")
    if "-m" in sys.argv[1:]:
        sys.exit(3)  # started as "python -m uploader": the bug; stop the chain here

    from spool import Telemetry

    t = Telemetry(
        app="demo",
        version="1.0.0",
        state_dir=os.environ["HOST_STATE_DIR"],
        endpoint=os.environ["HOST_ENDPOINT"],
    )
    for _ in range(5):
        t.track("cli_command", cli_command="eval")
    out = {"frozen": getattr(sys, "frozen", False), "queued": t.status()["queued"]}
    if os.environ.get("HOST_FLUSH") == "1":
        out["flush"] = t.flush(timeout=20).as_dict()
    t.close()
    out["spawned"] = t._trigger.spawned if t._trigger is not None else None
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def frozen_host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("PyInstaller")
    work = tmp_path_factory.mktemp("frozen")
    (work / "host.py").write_text(HOST)
    subprocess.run(
        [
            sys.executable, "-m", "PyInstaller", "--onedir", "--noconfirm",
            "--log-level", "WARN", "--paths", str(ROOT),
            # The bundled reference schema is package data: freezers need telling.
            "--collect-data", "spool",
            "--distpath", str(work / "dist"), "--workpath", str(work / "build"),
            "--specpath", str(work), str(work / "host.py"),
        ],
        check=True, capture_output=True, timeout=300, cwd=str(work),
    )  # fmt: skip
    exe = work / "dist" / "host" / "host"
    assert exe.is_file()
    return exe


def _run(exe: Path, tmp_path: Path, endpoint: str, **extra: str) -> dict[str, object]:
    env = host_env(
        HOST_RUNS_LOG=str(tmp_path / "runs.log"),
        HOST_STATE_DIR=str(tmp_path / "state"),
        HOST_ENDPOINT=endpoint,
        **extra,
    )
    proc = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["frozen"] is True
    return dict(out)


def _runs(tmp_path: Path) -> list[list[str]]:
    return [json.loads(line) for line in (tmp_path / "runs.log").read_text().splitlines()]


def test_a_frozen_app_never_starts_itself_as_the_uploader(
    frozen_host: Path, tmp_path: Path
) -> None:
    with collector(tmp_path / "c.db") as c:
        out = _run(frozen_host, tmp_path, c.url)
        assert out["spawned"] == 0  # the exit trigger was due, and started nothing
        # The skip is counted (persisted with the drops: reported with the next batch).
        assert drops(tmp_path / "state").get("error.frozen", 0) >= 1
        assert c.stats()["events"] == 0
    assert _runs(tmp_path) == [[]]  # only the user's own start ran main


def test_freeze_support_lets_the_frozen_app_run_its_own_detached_uploader(
    frozen_host: Path, tmp_path: Path
) -> None:
    with collector(tmp_path / "c.db") as c:
        out = _run(frozen_host, tmp_path, c.url, HOST_FREEZE_SUPPORT="1")
        assert out["spawned"] == 1
        n = int(str(out["queued"]))
        wait_for(lambda: c.stats()["events"] == n)
    wait_for(lambda: queued(tmp_path / "state") == 0)
    # The uploader start never reached the app's main (freeze_support exited first).
    assert _runs(tmp_path) == [[]]


def test_freeze_support_makes_flush_work_in_a_frozen_app(frozen_host: Path, tmp_path: Path) -> None:
    with collector(tmp_path / "c.db") as c:
        out = _run(frozen_host, tmp_path, c.url, HOST_FREEZE_SUPPORT="1", HOST_FLUSH="1")
        flush = out["flush"]
        assert isinstance(flush, dict) and flush["outcome"] == "empty", flush
        assert c.stats()["events"] == out["queued"]


def test_flush_in_a_frozen_app_without_freeze_support_says_what_to_do(
    frozen_host: Path, tmp_path: Path
) -> None:
    with collector(tmp_path / "c.db") as c:
        out = _run(frozen_host, tmp_path, c.url, HOST_FLUSH="1")
        flush = out["flush"]
        assert isinstance(flush, dict) and flush["outcome"] == "error"
        assert "freeze_support" in flush["detail"]
        assert c.stats()["events"] == 0
    assert _runs(tmp_path) == [[]]


def test_freeze_support_does_nothing_in_a_normal_interpreter() -> None:
    import uploader
    from spool.launch import _spawn

    uploader.freeze_support()
    assert _spawn._FROZEN_ENTRY == [False]
    argv = _spawn.uploader_command(UploaderArgs(Path("/x")))
    assert argv is not None and argv[0] == sys.executable and "-m" in argv
