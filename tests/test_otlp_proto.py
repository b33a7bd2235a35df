"""format="otlp-proto": OTLP/HTTP protobuf, verified against a receiver no one here wrote.

oteltap (PyPI) is a Rust OTLP/HTTP receiver that accepts protobuf only; run
as ``python -m oteltap --port N`` it prints every log record it decoded as
NDJSON. The uploader is a real process; oteltap listens on loopback only.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spool._policy import Policy
from spool.store._store import Spool
from tests.hosts import host_env, run_host
from tests.servers import ScriptedServer, fill, fixed, meta, queued, run_uploader
from tests.servers import wait_for as wait_until
from uploader.wire._envelope import EnvelopeHeader
from uploader.wire._formats import ENCODERS

pytest.importorskip("oteltap", reason="oteltap is in the test extra")
pytest.importorskip("opentelemetry.proto", reason="opentelemetry-proto is in the test extra")

HEADER = EnvelopeHeader("reference", 1, "abc", "demo", "1.0.0", "install-1")


def _free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Oteltap:
    START_ATTEMPTS = 5

    def __init__(self) -> None:
        # oteltap cannot report a port the kernel picked (--port 0 prints 0), so
        # one is picked here; another process may bind it first, and then oteltap
        # exits before its "Listening" line: try another port.
        for _ in range(self.START_ATTEMPTS):
            self.port = _free_port()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "oteltap", "--port", str(self.port)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert self.proc.stdout is not None
            if "Listening" in self.proc.stdout.readline():
                break
            self.proc.wait(timeout=10)
            self.proc.stdout.close()
        else:
            raise AssertionError(f"oteltap did not start on {self.START_ATTEMPTS} ports")
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/logs"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                with self._lock:
                    self.records.append(json.loads(line))

    def wait_for(self, n: int) -> list[dict[str, Any]]:
        # A bounded wait on a condition (servers.wait_for: the timeout is a hang guard).
        wait_until(lambda: self._count() >= n, timeout=60)
        with self._lock:
            return list(self.records)

    def _count(self) -> int:
        with self._lock:
            return len(self.records)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def oteltap() -> Iterator[Oteltap]:
    tap = Oteltap()
    try:
        yield tap
    finally:
        tap.close()


def _attrs(record: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for kv in record["attributes"]:
        (kind, value), *_ = kv["value"].items()
        out[kv["key"]] = int(value) if kind == "intValue" else value
    return out


def _spooled(state_dir: Path) -> list[tuple[str, str, str, dict[str, Any]]]:
    s = Spool(state_dir, Policy())
    try:
        rows = s.read_batch(0, 10_000, 1 << 30)
    finally:
        s.close()
    return [(e.uuid, e.name, e.run_id, json.loads(e.props)) for e in rows]


def test_every_event_arrives_at_oteltap_with_its_attributes(
    state_dir: Path, oteltap: Oteltap
) -> None:
    fill(state_dir, 120, oteltap.url, format="otlp-proto", batch_events=50)
    expected = _spooled(state_dir)
    done = run_uploader(state_dir)
    assert done["outcome"] == "empty" and done["sent"] == 120
    received = {_attrs(r)["telespool.event.id"]: r for r in oteltap.wait_for(120)}
    assert len(received) == 120
    for uuid, name, run_id, props in expected:
        record = received[uuid]
        attrs = _attrs(record)
        assert record["eventName"] == name and record["body"] == {"stringValue": name}
        assert attrs["telespool.run_id"] == run_id and attrs["event.name"] == name
        assert {k: attrs[k] for k in props} == props
        assert int(record["timeUnixNano"]) > 0
    assert queued(state_dir) == 0


def test_a_missing_extra_is_a_clear_counted_error_and_keeps_the_events(state_dir: Path) -> None:
    with ScriptedServer(fixed(200)) as server:
        fill(state_dir, 10, server.url, format="otlp-proto")
        # Simulated: opentelemetry-proto not installed (a None entry makes the
        # import fail exactly as a missing package does).
        code = """
import runpy, sys
sys.modules["opentelemetry"] = None
sys.argv = ["uploader", "--state-dir", sys.argv[1], "--progress"]
runpy.run_module("uploader", run_name="__main__")
"""
        proc = run_host(code, str(state_dir), check=False)
        assert server.requests == 0
    done = json.loads(proc.stdout.splitlines()[-1])
    assert done["outcome"] == "backoff"
    assert "pip install 'telespool[otlp-proto]'" in done["detail"]
    assert meta(state_dir, "upload")["errors"] == {"missing_extra": 1}
    assert queued(state_dir) == 10


def test_only_protobuf_goes_without_gzip() -> None:
    sent_at = "2026-11-24T15:20:23.000000Z"
    assert ENCODERS["otlp-proto"](HEADER, [], {"cap": 1}, sent_at).gzip is False
    assert ENCODERS["otlp"](HEADER, [], {}, sent_at).gzip is True
    assert ENCODERS["json"](HEADER, [], {}, sent_at).gzip is True


def test_a_host_using_otlp_proto_never_loads_protobuf_or_the_uploaders_deps(
    state_dir: Path,
) -> None:
    code = f"""
import sys
from spool import Telemetry
t = Telemetry("demo", "1.0.0", state_dir={str(state_dir)!r}, format="otlp-proto")
t.track("cli_command", cli_command="eval")
t.close()
heavy = ("opentelemetry", "google", "truststore", "urllib3")
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
"""
    assert run_host(code, env=host_env()).stdout.strip().splitlines()[-1] == "[]"


def test_oteltap_starts_when_another_process_takes_its_port_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The race the harness must survive: the port is free when picked, then
    # someone else binds it before oteltap does (oteltap then exits at once).
    real = _free_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        picks = [int(taken.getsockname()[1])]
        monkeypatch.setattr(sys.modules[__name__], "_free_port", lambda: (picks or [real()]).pop())
        tap = Oteltap()
        try:
            assert tap.port != taken.getsockname()[1] and tap.proc.poll() is None
        finally:
            tap.close()
