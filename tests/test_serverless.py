"""Serverless: no detached uploader, a writable state dir, flush() at the end of an invocation.

Each invocation is a real host process with a platform's variable set and a
home directory that is really read-only: as root, a read-only bind mount in a
private mount namespace (``unshare -m``, EROFS as on Lambda); as a normal
user, mode 0500. TMPDIR plays the sandbox's /tmp, which warm invocations share.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from spool.install import _serverless
from tests.hosts import ROOT, host_env
from tests.loopback import processes_mentioning
from tests.servers import Reply, ScriptedServer

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
_RO = 'mount --bind "$RO" "$RO" && mount -o remount,bind,ro "$RO" && exec "$@"'


def _can_make_read_only() -> bool:
    if not IS_ROOT:
        return hasattr(os, "geteuid")
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _can_make_read_only(), reason="needs unshare -m as root, or a non-root user"
)

INVOCATION = """
import json, sys
from spool import Telemetry
t = Telemetry("demo", "1.0.0", endpoint=sys.argv[1], backoff_base_s=0.0)
for i in range(int(sys.argv[2])):
    t.track("cli_command", cli_command="eval")
result = t.flush(timeout=20.0).as_dict() if sys.argv[3] == "flush" else None
status = t.status()
t.close()
print(json.dumps({"flush": result, "status": status}))
"""


def _invoke(
    home: Path, tmp: Path, url: str, n: int, flush: bool, platform: dict[str, str]
) -> dict[str, Any]:
    env = host_env(HOME=str(home), TMPDIR=str(tmp), **platform)
    env.pop("XDG_STATE_HOME", None)
    argv = [sys.executable, "-c", textwrap.dedent(INVOCATION), url, str(n)]
    argv.append("flush" if flush else "no-flush")
    if IS_ROOT:
        argv = ["unshare", "-m", "sh", "-c", _RO, "sh", *argv]
        env["RO"] = str(home)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "platform",
    [
        {"AWS_LAMBDA_FUNCTION_NAME": "handler"},
        {"K_SERVICE": "svc"},
        {"FUNCTIONS_WORKER_RUNTIME": "python"},
        {"VERCEL": "1"},
    ],
    ids=["lambda", "cloud-run", "azure-functions", "vercel"],
)
def test_invocations_deliver_through_flush_and_leave_no_process(
    tmp_path: Path, platform: dict[str, str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o700)
    if not IS_ROOT:
        home.chmod(0o500)
    answers = iter([503])

    def first_503_then_200(envelope: dict[str, Any]) -> Reply:
        return Reply(next(answers, 200))

    with ScriptedServer(first_503_then_200) as server:
        # 1: the handler ends without flushing: nothing is spawned, the events stay.
        first = _invoke(home, tmp, server.url, 5, False, platform)
        state = Path(first["status"]["state_dir"])
        assert state.parent == tmp and first["status"]["enabled"] is True
        assert server.requests == 0 and not processes_mentioning(str(state))
        # 2: flush, and the endpoint fails: counted, kept for later.
        second = _invoke(home, tmp, server.url, 5, True, platform)
        assert second["flush"]["outcome"] == "backoff"
        assert not processes_mentioning(str(state))
        # 3: a later warm invocation drains everything that was left.
        third = _invoke(home, tmp, server.url, 5, True, platform)
        assert third["flush"]["outcome"] == "empty", third
        assert third["status"]["queued"] == 0
        assert not processes_mentioning(str(state))
        names = [e["name"] for env in server.envelopes for e in env["events"]]
    assert names.count("cli_command") == 15
    assert len(set(server.event_ids)) == len(server.event_ids)
    assert list(home.iterdir()) == []


def test_off_serverless_the_default_state_dir_is_used(tmp_path: Path) -> None:
    from spool.store._paths import default_state_dir

    assert _serverless.platform({}) is None
    assert _serverless.default_state_dir("demo", {}, create=False) == default_state_dir("demo")
    assert _serverless.platform({"AWS_LAMBDA_FUNCTION_NAME": "f"}) == "lambda"


def test_the_trigger_never_spawns_on_a_serverless_platform(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from spool._policy import Policy
    from spool.launch._trigger import spawn_veto

    assert spawn_veto(True, {}, 0.0, Policy()) is None
    monkeypatch.setenv("VERCEL", "1")
    assert spawn_veto(True, {}, 0.0, Policy()) == "serverless"
