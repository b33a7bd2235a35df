"""Forking hosts: a fork while a thread appends, multiprocessing, a prefork server.

The at-fork hook quiesces the writer and its helper, so no telespool thread is
inside SQLite at the fork; the child opens its own connection on first use.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from spool import Telemetry
from tests.hosts import ROOT, fold_pending, host_env, run_host


def _count(state_dir: Path, where: str = "1") -> int:
    db = sqlite3.connect(state_dir / "spool.db")
    try:
        return int(db.execute(f"SELECT count(*) FROM events WHERE {where}").fetchone()[0])
    finally:
        db.close()


DASHBOARD = "json_extract(props, '$.cli_command') = 'dashboard'"


def _stored_by_now(state_dir: Path) -> int:
    """Dashboard events stored, once next hosts have folded in ``events.pending``
    (100 processes on 2 cores: 4 of 5 runs left 1-20 rows there)."""
    fold_pending(state_dir)
    return _count(state_dir, DASHBOARD)


FORKING_HOST = """
import json, os, sys, threading
from spool import Telemetry

state, forks = sys.argv[1], int(sys.argv[2])
t = Telemetry("demo", "1.0.0", state_dir=state)
stop = threading.Event()

def churn():
    # The parent never stops appending while it forks.
    while not stop.is_set():
        t.track("cli_command", cli_command="eval")

threads = [threading.Thread(target=churn) for _ in range(2)]
for th in threads:
    th.start()
children = []
for _ in range(forks):
    pid = os.fork()
    if pid == 0:
        for _ in range(20):
            t.track("cli_command", cli_command="dashboard")
        t.close()
        s = t.status()
        os._exit(0 if s["dropped"] == {} else 3)
    children.append(pid)
hung = 0
codes = []
import time
for pid in children:
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            codes.append(os.waitstatus_to_exitcode(status))
            break
        if time.monotonic() > deadline:
            hung += 1
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            break
        time.sleep(0.01)  # polls a child until it ends or the hang deadline; no absence proof
stop.set()
for th in threads:
    th.join()
t.close()
print(json.dumps({"hung": hung, "codes": codes}))
"""


def test_a_hundred_forks_while_a_thread_appends_never_hang_and_store_everything(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    proc = run_host(FORKING_HOST, str(state), "100", timeout=600)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["hung"] == 0, result
    assert result["codes"] == [0] * 100, result
    assert _stored_by_now(state) == 100 * 20


MP_HOST = """
import json, multiprocessing as mp, sys
from spool import Telemetry

def work(args):
    state, n = args
    t = TELEMETRY if TELEMETRY is not None else Telemetry("demo", "1.0.0", state_dir=state)
    for _ in range(n):
        t.track("cli_command", cli_command="dashboard")
    return n

TELEMETRY = None
if __name__ == "__main__":
    method, state = sys.argv[1], sys.argv[2]
    if method == "fork":
        # Inherited across the fork, with the parent still appending from a thread.
        import threading
        TELEMETRY = Telemetry("demo", "1.0.0", state_dir=state)
        stop = threading.Event()
        def churn():
            while not stop.is_set():
                TELEMETRY.track("cli_command", cli_command="eval")
        th = threading.Thread(target=churn)
        th.start()
    ctx = mp.get_context(method)
    # close() + join(): the workers end as they do in a host that shuts its
    # pool down. (The context manager's terminate() SIGTERMs them: a kill, and
    # a killed process's rows still parked in memory are lost like any kill's.)
    pool = ctx.Pool(4)
    total = sum(pool.map(work, [(state, 50)] * 16))
    pool.close()
    pool.join()
    if method == "fork":
        stop.set()
        th.join()
    print(json.dumps({"total": total}))
"""


def _run_pool_host(tmp_path: Path, code: str, method: str) -> tuple[Path, dict[str, int]]:
    """Run ``code`` as a script (multiprocessing needs a real ``__main__``
    file) with ``method`` and a state dir; its last stdout line, parsed."""
    if method not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"{method} is not available here")
    state = tmp_path / "state"
    script = tmp_path / "pool_host.py"
    script.write_text(code)
    proc = subprocess.run(
        [sys.executable, str(script), method, str(state)],
        env=host_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(ROOT),
    )
    assert proc.returncode == 0, proc.stderr
    return state, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_multiprocessing_workers_store_every_event(tmp_path: Path, method: str) -> None:
    state, result = _run_pool_host(tmp_path, MP_HOST, method)
    assert result["total"] == 16 * 50
    assert _stored_by_now(state) == 16 * 50


LOCKED_POOL_HOST = """
import json, multiprocessing as mp, subprocess, sys
from spool import Telemetry

SESSION = (
    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
    "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); sys.stdin.readline(); "
    "c.execute('COMMIT')"
)

def work(state):
    # Built inside the worker (no fork hook ran for it there), and every row
    # parked: the parent's sqlite3 session holds the write lock throughout.
    t = Telemetry("demo", "1.0.0", state_dir=state)
    for _ in range(10):
        t.track("cli_command", cli_command="dashboard")
    return t.status()["buffered"]

if __name__ == "__main__":
    method, state = sys.argv[1], sys.argv[2]
    Telemetry("demo", "1.0.0", state_dir=state).close()  # the spool exists
    # The session in a process of its own: a connection holding the lock
    # across a fork would leave it held in every forked child for good.
    session = subprocess.Popen([sys.executable, "-c", SESSION, state + "/spool.db"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert session.stdout.readline().strip() == "held"
    pool = mp.get_context(method).Pool(2)
    parked = sum(pool.map(work, [state] * 4))
    # A line, not EOF: forked workers hold the pipe's write end too.
    session.stdin.write("go\\n")
    session.stdin.flush()
    session.wait()  # let go before the workers end
    pool.close()
    pool.join()
    print(json.dumps({"parked": parked}))
"""


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_pool_workers_write_their_parked_rows_as_they_end(tmp_path: Path, method: str) -> None:
    # A fork or forkserver worker ends with os._exit: no atexit. Rows parked
    # behind another connection's lock are written by the multiprocessing
    # finalizer telespool adds when a facade is first built in a worker.
    state, result = _run_pool_host(tmp_path, LOCKED_POOL_HOST, method)
    assert result["parked"] > 0
    stored = _count(state, DASHBOARD)
    if stored < 4 * 10:
        # The session's empty COMMIT leaves the data version unmoved, so a
        # worker's exit can take its lock for still held: if the other
        # worker's exit is mid-commit through the one LOCK_GRACE_MS try (seen
        # under CPU load, 1 run in 8), its rows wait in events.pending, and the
        # next host stores them. Counted "locked" only if even that failed.
        with Telemetry("demo", "1.0.0", state_dir=state) as t:
            counted = t.status()["dropped"].get("locked", 0)
        stored = _count(state, DASHBOARD)
        assert stored + counted >= 4 * 10, (stored, counted)


WSGI_APP = """
import os, threading
from spool import Telemetry

# --preload: built once in the master, inherited by every forked worker.
telemetry = Telemetry("demo", "1.0.0", state_dir=os.environ["STATE"])
_stop = threading.Event()

def _churn():
    # The master keeps tracking from a thread while gunicorn forks workers.
    while not _stop.wait(0.0005):
        telemetry.track("cli_command", cli_command="eval")

threading.Thread(target=_churn, daemon=True).start()

def app(environ, start_response):
    telemetry.track("cli_command", cli_command="dashboard")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def test_gunicorn_preload_workers_store_every_requests_event(tmp_path: Path) -> None:
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    if gunicorn is None:
        pytest.skip("gunicorn is not installed (it is in the test extra)")
    state = tmp_path / "state"
    (tmp_path / "wsgi_host.py").write_text(WSGI_APP)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = host_env(STATE=str(state))
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{ROOT}"
    server = subprocess.Popen(
        [
            gunicorn,
            "--preload",
            "--workers",
            "4",
            "--bind",
            f"127.0.0.1:{port}",
            "--graceful-timeout",
            "10",
            "wsgi_host:app",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(tmp_path),
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)  # polls until gunicorn answers (bounded): a ready wait
        pids = set()
        for _ in range(399):  # one request above; every response is a worker that did not hang
            pids.add(urllib.request.urlopen(url, timeout=30).read().decode())
        assert len(pids) >= 1
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert _stored_by_now(state) == 400
