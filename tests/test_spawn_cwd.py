"""The detached uploader never keeps a cwd inside the state dir (issue 14 item 7).

On Windows a process's cwd cannot be deleted, so an uploader started there
made purge's rmdir fail while it ran. Windows itself is untested here; the
test checks, on Linux, that the child moves to the neutral root whatever cwd
the host had (here: the state dir itself).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spool import Telemetry
from tests.hosts import host_env
from tests.servers import Blackhole, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _uploaders_of(state_dir: Path) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"uploader" in argv and str(state_dir).encode() in argv:
            pids.append(int(name))
    return pids


def _cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def test_the_detached_uploader_leaves_the_hosts_cwd_even_the_state_dir(state_dir: Path) -> None:
    with Blackhole() as hole:  # keeps the uploader alive, waiting on its read timeout
        Telemetry(app="demo", version="1.0.0", state_dir=state_dir).close()  # creates the dir
        code = (
            "import sys\n"
            "from spool import Telemetry\n"
            "t = Telemetry('demo', '1.0.0', state_dir=sys.argv[1], endpoint=sys.argv[2],"
            " read_timeout_s=20.0)\n"
            "t.track('cli_command', command='eval')\n"
        )
        subprocess.run(
            [sys.executable, "-c", code, str(state_dir), hole.url],
            env=host_env(),
            cwd=str(state_dir),  # the host's cwd is the state dir itself
            check=True,
            timeout=60,
        )
        wait_for(lambda: _uploaders_of(state_dir))
        pid = _uploaders_of(state_dir)[0]
        # Alive for 20 s (the read timeout): long enough to see it move.
        wait_for(lambda: _cwd(pid) == "/", timeout=15)
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
