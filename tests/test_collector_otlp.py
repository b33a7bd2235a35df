"""The reference collector's OTLP intake (POST /v1/logs), as a real subprocess.

A real host with ``format="otlp"`` flushes through the real uploader to the
collector; the collector must hold exactly the spooled events, re-validated by
its schema, and store nothing twice when the same events arrive again.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from spool import Telemetry
from spool.store._rows import StoredEvent
from tests.servers import Collector, collector, run_uploader
from uploader.wire._envelope import EnvelopeHeader
from uploader.wire._otlp import encode_otlp

OTLP_GZ = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
HEADER = EnvelopeHeader("voice-agent-sdk", 5, "sha256:x", "demo", "1.0.0", None)
SENT_AT = "2026-11-24T15:20:23.000000Z"


def spooled(state_dir: Path) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    with sqlite3.connect(state_dir / "spool.db") as conn:
        rows = conn.execute("SELECT uuid, name, time, run_id, props FROM events ORDER BY id")
        return [(u, n, t, r, json.loads(p)) for u, n, t, r, p in rows]


def stored(db: Path) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT uuid, name, time, run_id, props FROM events ORDER BY uuid")
        return [(u, n, t, r, json.loads(p)) for u, n, t, r, p in rows]


def snapshot(state_dir: Path, copy: Path) -> None:
    """A consistent copy of a live spool (SQLite's backup API), as a second state dir."""
    copy.mkdir(mode=0o700)
    src = sqlite3.connect(state_dir / "spool.db")
    dst = sqlite3.connect(copy / "spool.db")
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    if (state_dir / "install.json").exists():
        shutil.copy2(state_dir / "install.json", copy / "install.json")


def _event(name: str, props: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        0, str(uuid.uuid4()), name, "2026-11-24T15:20:22.123456Z", str(uuid.uuid4()),
        json.dumps(props), 0,
    )  # fmt: skip


def _otlp(events: list[StoredEvent], dropped: dict[str, int] | None = None) -> bytes:
    return encode_otlp(HEADER, events, dropped or {}, SENT_AT).body


@pytest.fixture
def col(tmp_path: Path) -> Any:
    with collector(tmp_path / "c.db", "--max-body-bytes", "200000") as c:
        yield c


def test_otlp_host_flush_reaches_the_collector_exactly_once(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    db = tmp_path / "c.db"
    with collector(db) as c:
        t = Telemetry(
            app="demo",
            version="1.0.0",
            state_dir=state_dir,
            endpoint=c.base + "/v1/logs",
            format="otlp",
            allow_in_ci=True,
        )
        commands = ("eval", "dashboard", "telemetry", "other")
        for i in range(300):
            t.track("cli_command", cli_command=commands[i % 4])
            t.track("call_completed", latency_ms=i * 10, duration_seconds=i, cost_usd=i / 8)
        t.track("no_such_event")  # a sanitizer drop, reported in the OTLP drop record
        before = spooled(state_dir)
        assert len(before) >= 600
        snapshot(state_dir, tmp_path / "copy")

        result = t.flush(timeout=60)
        t.close()
        assert result.outcome == "empty", result
        assert spooled(state_dir) == []

        # Exactly the spooled events, field for field (props re-sanitized, unchanged).
        assert stored(db) == sorted(before)
        stats = c.stats()
        assert stats["events"] == len(before) and stats["duplicates"] == 0
        assert stats["rejected_events"] == 0 and stats["rejections"] == {}
        # Only events lost count here; error.* are swallowed-error counts (a
        # brief lock contention with the host's own uploader is legitimate).
        drops = {k: v for k, v in stats["dropped_reported"].items() if not k.startswith("error.")}
        assert drops == {"unknown_event": 1}
        assert stats["requests"] == {"200": stats["batches"]}
        with sqlite3.connect(db) as conn:
            formats = {f for (f,) in conn.execute("SELECT DISTINCT format FROM batches")}
            apps = {a for (a,) in conn.execute("SELECT DISTINCT app FROM events")}
        assert formats == {"otlp"} and apps == {"demo"}

        # The same events again (a re-send after a lost response): nothing stored twice.
        done = run_uploader(tmp_path / "copy", "--force")
        assert done["outcome"] == "empty" and done["sent"] == len(before)
        assert stored(db) == sorted(before)
        again = c.stats()
        assert again["events"] == len(before)
        assert again["duplicates"] == len(before)


def test_identity_body_is_accepted_and_answered_as_otlp(col: Collector) -> None:
    events = [_event("cli_command", {"cli_command": "eval"}) for _ in range(3)]
    status, body = col.post(_otlp(events), {"Content-Type": "application/json"}, path="/v1/logs")
    assert (status, body) == (200, {})  # an ExportLogsServiceResponse: full success
    assert col.stats()["events"] == 3


def test_duplicate_records_are_counted_not_stored(col: Collector) -> None:
    events = [_event("cli_command", {"cli_command": "eval"}) for _ in range(4)]
    assert col.post(gzip.compress(_otlp(events)), OTLP_GZ, path="/v1/logs")[0] == 200
    extra = _event("cli_command", {"cli_command": "dashboard"})
    status, body = col.post(gzip.compress(_otlp([*events[2:], extra])), OTLP_GZ, path="/v1/logs")
    assert (status, body) == (200, {})
    stats = col.stats()
    assert stats["events"] == 5 and stats["duplicates"] == 2


def test_schema_is_enforced_on_otlp_records(col: Collector, tmp_path: Path) -> None:
    events = [
        _event("cli_command", {"cli_command": "eval", "home": "/home/alice"}),
        _event("credit_card_number", {"number": "4111"}),
    ]
    status, body = col.post(gzip.compress(_otlp(events)), OTLP_GZ, path="/v1/logs")
    assert status == 200
    assert body["partialSuccess"]["rejectedLogRecords"] == "1"
    stats = col.stats()
    assert stats["events"] == 1
    assert stats["rejections"] == {"event:unknown_event": 1, "prop:unknown_property": 1}
    assert [props for *_, props in stored(tmp_path / "c.db")] == [{"cli_command": "eval"}]


def test_drop_record_is_stored_as_reported_drops(col: Collector) -> None:
    body = _otlp([_event("cli_command", {"cli_command": "eval"})], {"evicted": 3, "rejected": 2})
    assert col.post(gzip.compress(body), OTLP_GZ, path="/v1/logs")[0] == 200
    stats = col.stats()
    assert stats["events"] == 1 and stats["dropped_reported"] == {"evicted": 3, "rejected": 2}


def test_otlp_size_limits_match_the_json_path(col: Collector) -> None:
    big = b'{"resourceLogs":[' + b" " * 300_000 + b"]}"
    assert col.post(big, {"Content-Type": "application/json"}, path="/v1/logs")[0] == 413
    # 64 MiB of whitespace inside valid gzip: under the body limit, over the inflate limit.
    bomb = gzip.compress(b'{"resourceLogs":[' + b" " * (64 << 20) + b"]}", 9)
    assert len(bomb) < 200_000
    status, body = col.post(bomb, OTLP_GZ, path="/v1/logs")
    assert status == 413 and "inflates" in body["error"]
    assert col.stats()["events"] == 0


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (gzip.compress(b"not json"), OTLP_GZ, 400),
        (gzip.compress(b'{"resourceLogs": {}}'), OTLP_GZ, 400),
        # A record without telespool.event.id cannot be deduplicated: refused.
        (
            gzip.compress(
                b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"eventName":"cli_command"}]}]}]}'
            ),
            OTLP_GZ,
            400,
        ),
        (b"\x0a\x00", {"Content-Type": "application/x-protobuf"}, 415),
    ],
)
def test_malformed_otlp_is_refused(
    col: Collector, body: bytes, headers: dict[str, str], expected: int
) -> None:
    assert col.post(body, headers, path="/v1/logs")[0] == expected
    assert col.stats()["events"] == 0
