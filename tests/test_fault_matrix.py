"""The fault matrix: one parametrized sweep, one contract for every fault.

Each fault is caused for real (a real uid without permission, a real
``RLIMIT_FSIZE``, a real ``sqlite3`` CLI holding the lock, real loopback
servers that refuse, blackhole, reset or drip) while a real host process
tracks events. Many faults have their own focused tests elsewhere
(``test_call_path_faults``, ``test_uploader_faults``, ``test_uploader_crash``);
here they all meet the same contract:

- the host never sees an exception (every call is guarded and recorded) and
  exits normally;
- every event a host tracked is queued, buffered or counted under a drop
  reason (``status()["dropped"]``), exactly: delta queued + delta buffered +
  delta dropped == events tracked;
- every event an upload pass took out of the spool reached the endpoint or is
  counted under a reason: queued before == queued after + delivered + delta dropped;
- the reason each fault must be counted under shows up;
- how many ``track()`` calls took longer than 50 ms is recorded (printed and
  written to ``<pytest basetemp>/fault_matrix.json``), never asserted.

The wall clock cannot be changed in a test, so its jumps are simulated: the
host and uploader processes run with ``time.time`` shifted by an offset
(patched inside those processes before ``spool`` is imported). That is
exactly what a jump looks like to them: every timestamp they read or write is
off by that much, while events already spooled and the stored backoff keep
the times written before the jump. ``time.monotonic`` (timeouts) is untouched,
as it is by a real jump.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import trustme

from spool._policy import Policy
from spool.store._upload_state import parse_time
from tests.hosts import host_env, last_json, run_host
from tests.servers import (
    Blackhole,
    Reply,
    ScriptedServer,
    drops,
    fixed,
    meta,
    queued,
    refused_port,
    set_endpoint,
)
from tests.test_uploader_crash import _tls_context

NOBODY = 65534
DAY = 86400.0
SLOW_MS = 50.0
# Short network timeouts so blackhole and drip cost about a second each.
FAST = {"connect_timeout_s": 1.0, "read_timeout_s": 1.0, "backoff_base_s": 30.0}
BACKOFF_MAX_S = 600.0

# The host: JSON config in argv[1]; one JSON report on the last stdout line.
HOST = """
import json, os, sys, time
cfg = json.loads(sys.argv[1])
if cfg.get("clock_offset_s"):
    # Simulated wall-clock jump (see the module docstring of test_fault_matrix).
    _real_time = time.time
    time.time = lambda: _real_time() + cfg["clock_offset_s"]
if cfg.get("fsize_limit"):
    import resource, signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as a host that survives it must
    resource.setrlimit(resource.RLIMIT_FSIZE, (cfg["fsize_limit"], cfg["fsize_limit"]))
from spool import Telemetry
if cfg.get("uid") is not None:
    # After the imports (and the ones spool makes lazily): this interpreter lives
    # under /root here, which that uid may not read. A real host's user can.
    import hashlib, re, sqlite3
    os.setgid(cfg["uid"])
    os.setuid(cfg["uid"])

exceptions = []

def guard(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except BaseException as exc:
        exceptions.append(repr(exc))
        return None

t = guard(Telemetry, "demo", "1.0.0", state_dir=cfg["state_dir"], endpoint=cfg.get("endpoint"),
          **cfg.get("policy", {}))
if t is None:  # construction raised: report it, the contract check fails on it
    print(json.dumps({"exceptions": exceptions}))
    sys.exit(0)
holder = None
if cfg.get("hold_lock"):
    from pathlib import Path
    from tests.test_call_path_faults import ExternalWriter
    holder = ExternalWriter(Path(cfg["state_dir"]) / "spool.db")
before = guard(t.status)
commands = ("eval", "dashboard", "telemetry", "other")
slow, worst = 0, 0.0
for i in range(cfg["n"]):
    start = time.perf_counter()
    try:
        t.track("cli_command", cli_command=commands[i % 4])
    except BaseException as exc:
        exceptions.append(repr(exc))
    took = (time.perf_counter() - start) * 1000.0
    slow += took > cfg["slow_ms"]
    worst = max(worst, took)
after = guard(t.status)
flush = None
if cfg.get("flush"):
    result = guard(t.flush, timeout=cfg["flush"])
    flush = None if result is None else {"outcome": result.outcome, "sent": result.sent,
                                         "detail": result.detail}
final = guard(t.status)
if holder is not None:
    holder.release()
guard(t.close)
print(json.dumps({"exceptions": exceptions, "n": cfg["n"], "slow": slow, "worst_ms": worst,
                  "before": before, "after": after, "final": final, "flush": flush}))
"""

# An uploader pass in a process whose wall clock is shifted (the clock cases).
UPLOADER_AT_OFFSET = """
import sys, time
_real_time = time.time
time.time = lambda: _real_time() + float(sys.argv[1])
from uploader._cli import main
sys.exit(main(sys.argv[2:]))
"""


def _dropped(status: dict[str, Any]) -> Counter[str]:
    return Counter(status["dropped"])


def _lost(counts: dict[str, int]) -> Counter[str]:
    """Drop-table rows that count lost events (``error.*`` rows count swallowed errors)."""
    return Counter({k: v for k, v in counts.items() if not k.startswith("error.")})


@dataclass
class Ctx:
    """Runs a case's hosts and uploads and checks the contract on each."""

    tmp: Path
    state: Path
    env: dict[str, str] = field(default_factory=host_env)
    counted: set[str] = field(default_factory=set)  # every drop reason seen
    tracked: int = 0
    slow: int = 0
    worst_ms: float = 0.0

    def host(
        self,
        n: int,
        *,
        server: ScriptedServer | None = None,
        uid: int | None = None,
        **cfg: Any,
    ) -> dict[str, Any]:
        cfg.update(n=n, state_dir=str(self.state), slow_ms=SLOW_MS, uid=uid)
        delivered_before = len(set(server.event_ids)) if server is not None else 0
        proc = run_host(HOST, json.dumps(cfg), env=self.env, timeout=180, check=False)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        report: dict[str, Any] = last_json(proc.stdout)
        # The host never sees an exception.
        assert report["exceptions"] == [], report
        before, after, final = report["before"], report["after"], report["final"]
        # Every tracked event is queued, buffered or counted under a reason.
        delta_dropped = _dropped(after) - _dropped(before)
        accounted = (
            after["queued"]
            - before["queued"]
            + after["buffered"]
            - before["buffered"]
            + sum(delta_dropped.values())
        )
        assert accounted == n, (before, after)
        if report["flush"] is not None:
            # Every event the flush took out of the spool was acknowledged or counted.
            sent = report["flush"]["sent"]
            delivered = (len(set(server.event_ids)) if server is not None else 0) - (
                delivered_before
            )
            assert sent <= delivered
            upload_dropped = _dropped(final) - _dropped(after)
            left = final["queued"] + final["buffered"]
            assert after["queued"] + after["buffered"] == (
                left + sent + sum(upload_dropped.values())
            ), (after, final, report["flush"])
        self.counted.update(_dropped(final))  # cumulative totals: only the keys matter
        self.tracked += n
        self.slow += report["slow"]
        self.worst_ms = max(self.worst_ms, report["worst_ms"])
        return report

    def upload(
        self, server: ScriptedServer, *, offset_s: float = 0.0, force: bool = False
    ) -> dict[str, Any]:
        """One uploader pass (in a process at ``offset_s``), checked like a flush."""
        set_endpoint(self.state, server.url)
        q_before, d_before = queued(self.state), _lost(drops(self.state))
        delivered_before = len(set(server.event_ids))
        args = ["--state-dir", str(self.state), "--progress"] + (["--force"] if force else [])
        proc = subprocess.run(
            [sys.executable, "-c", UPLOADER_AT_OFFSET, str(offset_s), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        done: dict[str, Any] = last_json(proc.stdout)
        assert done["type"] == "done" and "Traceback" not in proc.stderr, proc.stderr
        delta = _lost(drops(self.state)) - d_before
        assert done["sent"] <= len(set(server.event_ids)) - delivered_before
        assert q_before == queued(self.state) + done["sent"] + sum(delta.values()), done
        self.counted.update(delta)
        return done


def _next_attempt_in(state: Path) -> float:
    at = parse_time(meta(state, "upload")["next_attempt_at"])
    assert at is not None
    return at - time.time()


# -- the host-side faults -------------------------------------------------------------------
@pytest.fixture
def nobody_home() -> Iterator[Path]:
    """A dir 'nobody' may traverse (pytest's tmp_path is under a root-only 0700 dir)."""
    if not hasattr(os, "getuid") or os.getuid() != 0:
        pytest.skip("dropping to another uid needs root")
    top = Path(tempfile.mkdtemp(prefix="telespool-matrix-"))
    os.chmod(top, 0o755)
    home = top / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    yield home
    shutil.rmtree(top)


def unwritable_dir(ctx: Ctx, home: Path) -> None:
    state = home / "state"
    state.mkdir(mode=0o500)
    os.chown(state, NOBODY, NOBODY)
    os.chmod(state, 0o500)
    ctx.state = state
    ctx.host(200, uid=NOBODY)
    assert not (state / "spool.db").exists()


def read_only_location(ctx: Ctx, home: Path) -> None:
    os.chmod(home, 0o500)  # the state dir cannot even be created
    ctx.state = home / "state"
    ctx.host(200, uid=NOBODY)
    assert not ctx.state.exists()


def disk_full(ctx: Ctx) -> None:
    # RLIMIT_FSIZE: the kernel refuses writes past 192 KiB (EFBIG), as a full disk would.
    ctx.host(
        4000, fsize_limit=192 * 1024, policy={"max_bytes": 64 << 20, "size_check_bytes": 1 << 20}
    )


def corrupt_database(ctx: Ctx) -> None:
    ctx.host(100)
    # The header page overwritten: "file is not a database" at the next open.
    with open(ctx.state / "spool.db", "r+b") as f:
        f.write(b"\xde\xad\xbe\xef" * 1024)
    ctx.host(100)
    assert any(p.name.startswith("spool.db.corrupt-") for p in ctx.state.iterdir())
    assert queued(ctx.state) >= 100


def directory_at_db_path(ctx: Ctx) -> None:
    ctx.state.mkdir(mode=0o700)
    (ctx.state / "spool.db").mkdir()
    ctx.host(200)


def fifo_at_db_path(ctx: Ctx) -> None:
    ctx.state.mkdir(mode=0o700)
    os.mkfifo(ctx.state / "spool.db")  # opening it would block a naive host forever
    ctx.host(200)


def external_writer_holds_the_lock(ctx: Ctx) -> None:
    ctx.host(10)  # create the spool
    # The host holds a sqlite3 CLI in BEGIN IMMEDIATE while it tracks 1,200 events
    # (1,000 fit the buffer, 200 are counted 'locked'), then releases it and closes.
    report = ctx.host(1200, hold_lock=True)
    after = report["after"]
    assert after["buffered"] > 0
    # Released before close(): the buffer reached the disk.
    assert queued(ctx.state) == after["queued"] + after["buffered"]


# -- the wall clock jumps (simulated: see the module docstring) -----------------------------
def _clock_jump(ctx: Ctx, offset_s: float) -> tuple[int, dict[str, Any]]:
    """Spool events, back off on a 503 for an hour, then jump by ``offset_s`` and drain."""
    ctx.host(100)
    spooled_before_jump = queued(ctx.state)
    with ScriptedServer(fixed(503, **{"Retry-After": "3600"})) as busy:
        assert ctx.upload(busy)["outcome"] == "backoff"
    # A sane backoff: the stored wait is what was asked for, under the cap (6 h).
    assert 3500 < _next_attempt_in(ctx.state) <= Policy().backoff_max_s
    ctx.host(100, clock_offset_s=offset_s)
    with ScriptedServer(fixed(200)) as good:
        done = ctx.upload(good, offset_s=offset_s)
    return spooled_before_jump, done


def clock_jumps_back_10_days(ctx: Ctx) -> None:
    _, done = _clock_jump(ctx, -10 * DAY)
    # The stored backoff now lies 10 days ahead, beyond the 6 h cap: not honoured.
    # Events stamped "in the future" are never expired early.
    assert done["outcome"] == "empty" and "expired" not in done["dropped"]
    assert queued(ctx.state) == 0


def clock_jumps_forward_2_hours(ctx: Ctx) -> None:
    _, done = _clock_jump(ctx, 2 * 3600.0)
    # The hour's backoff has passed by the new clock: drain, and nothing is old enough to expire.
    assert done["outcome"] == "empty" and "expired" not in done["dropped"]
    assert queued(ctx.state) == 0


def clock_jumps_forward_past_max_age(ctx: Ctx) -> None:
    # Documented: a forward jump beyond max_age_days (30) makes everything spooled
    # before it look expired; it is deleted and counted as 'expired', never silently.
    spooled, done = _clock_jump(ctx, 40 * DAY)
    assert drops(ctx.state)["expired"] == spooled
    assert done["outcome"] == "empty"


# -- the endpoint faults of the uploader issue ----------------------------------------------
def _flush_against(
    ctx: Ctx, server: ScriptedServer | None, url: str, outcome: str, n: int = 300
) -> None:
    policy = {**FAST, "backoff_max_s": BACKOFF_MAX_S}
    report = ctx.host(n, endpoint=url, flush=10, server=server, policy=policy)
    assert report["flush"]["outcome"] == outcome, report["flush"]
    if outcome == "backoff":
        # No backoff beyond backoff_max_s is ever stored, whatever the server said.
        assert 0 < _next_attempt_in(ctx.state) <= BACKOFF_MAX_S
        assert queued(ctx.state) == report["after"]["queued"]


def endpoint_refused(ctx: Ctx) -> None:
    _flush_against(ctx, None, f"http://127.0.0.1:{refused_port()}/v1/events", "backoff")


def endpoint_blackholed(ctx: Ctx) -> None:
    with Blackhole() as hole:
        _flush_against(ctx, None, hole.url, "backoff")


def _answering(
    status: int, outcome: str, n: int = 300, headers: dict[str, str] | None = None
) -> Callable[[Ctx], None]:
    def case(ctx: Ctx) -> None:
        with ScriptedServer(fixed(status, **(headers or {}))) as server:
            _flush_against(ctx, server, server.url, outcome, n)

    return case


def endpoint_resets_mid_body(ctx: Ctx) -> None:
    with ScriptedServer(fixed(200)) as server:
        server.reset_next = 10**6
        _flush_against(ctx, server, server.url, "backoff")


def endpoint_drips_slowly(ctx: Ctx) -> None:
    with ScriptedServer(lambda envelope: Reply(200, drip_s=0.2)) as server:
        _flush_against(ctx, server, server.url, "backoff")


def endpoint_tls_wrong_ca(ctx: Ctx) -> None:
    other = ctx.tmp / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    ctx.env["TELESPOOL_CA_BUNDLE"] = str(other)
    with ScriptedServer(fixed(200), tls=_tls_context(trustme.CA())) as server:
        _flush_against(ctx, server, server.url, "backoff")
        assert server.envelopes == []


# (case, reasons it must be counted under, needs a dir 'nobody' can reach)
MATRIX = [
    pytest.param(unwritable_dir, {"unwritable"}, True, id="unwritable-dir"),
    pytest.param(read_only_location, {"unwritable"}, True, id="read-only-location"),
    pytest.param(disk_full, {"disk_full"}, False, id="disk-full-rlimit-fsize"),
    pytest.param(corrupt_database, {"corrupt"}, False, id="corrupt-database"),
    pytest.param(directory_at_db_path, {"unusable_path"}, False, id="directory-at-db-path"),
    pytest.param(fifo_at_db_path, {"unusable_path"}, False, id="fifo-at-db-path"),
    pytest.param(external_writer_holds_the_lock, {"locked"}, False, id="external-writer-lock"),
    pytest.param(clock_jumps_back_10_days, set(), False, id="clock-back-10-days"),
    pytest.param(clock_jumps_forward_2_hours, set(), False, id="clock-forward-2-hours"),
    pytest.param(clock_jumps_forward_past_max_age, {"expired"}, False, id="clock-forward-40-days"),
    pytest.param(endpoint_refused, set(), False, id="endpoint-refused"),
    pytest.param(endpoint_blackholed, set(), False, id="endpoint-blackholed"),
    pytest.param(_answering(500, "backoff"), set(), False, id="endpoint-500"),
    pytest.param(
        _answering(503, "backoff", headers={"Retry-After": "999999"}),
        set(),
        False,
        id="endpoint-503-retry-after",
    ),
    pytest.param(
        _answering(429, "backoff", headers={"Retry-After": "120"}), set(), False, id="endpoint-429"
    ),
    # 413 to every size: halved down to single events, each then dropped as too_large.
    # Few events: each single-event round trip costs the test server ~40 ms.
    pytest.param(_answering(413, "empty", 20), {"too_large"}, False, id="endpoint-413"),
    pytest.param(_answering(400, "empty"), {"rejected"}, False, id="endpoint-400"),
    pytest.param(endpoint_resets_mid_body, set(), False, id="endpoint-reset-mid-body"),
    pytest.param(endpoint_drips_slowly, set(), False, id="endpoint-slow-drip"),
    pytest.param(endpoint_tls_wrong_ca, set(), False, id="endpoint-tls-wrong-ca"),
]


@pytest.fixture(scope="module")
def slow_tracks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Collects each case's slow track() count; printed and written at the end."""
    table: dict[str, Any] = {}
    yield table
    out = tmp_path_factory.getbasetemp() / "fault_matrix.json"
    out.write_text(json.dumps(table, indent=2) + "\n")
    print(f"\nfault matrix: track() calls over {SLOW_MS:.0f} ms per fault ({out}):")
    for case, row in table.items():
        print(f"  {case:28} {row['slow']:4} of {row['tracked']:5}  max {row['worst_ms']:.2f} ms")


@pytest.mark.parametrize(("case", "reasons", "as_nobody"), MATRIX)
def test_every_fault_is_survived_and_every_loss_counted(
    case: Callable[..., None],
    reasons: set[str],
    as_nobody: bool,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    slow_tracks: dict[str, Any],
) -> None:
    ctx = Ctx(tmp_path, tmp_path / "state")
    if as_nobody:
        case(ctx, request.getfixturevalue("nobody_home"))
    else:
        case(ctx)
    assert reasons <= ctx.counted, ctx.counted
    row = {"tracked": ctx.tracked, "slow": ctx.slow, "worst_ms": round(ctx.worst_ms, 3)}
    slow_tracks[request.node.callspec.id] = row
    print(f"{request.node.callspec.id}: {row}, counted {sorted(ctx.counted)}")
