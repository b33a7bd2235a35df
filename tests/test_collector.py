"""The reference collector as a real subprocess: limits, validation, dedup."""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Collector, collector

GZ = {"Content-Type": "application/json", "Content-Encoding": "gzip"}


def _event(name: str = "cli_command", **props: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "time": "2026-11-24T15:20:22.123456Z",
        "run_id": str(uuid.uuid4()),
        "props": props or {"cli_command": "eval"},
    }


def _envelope(events: list[dict[str, Any]], **extra: Any) -> bytes:
    env = {
        "schema": "voice-agent-sdk",
        "schema_version": 5,
        "schema_hash": "sha256:x",
        "app": "demo",
        "app_version": "1.0.0",
        "install_id": None,
        "sent_at": "2026-11-24T15:20:23.000000Z",
        "dropped": {},
        "events": events,
        **extra,
    }
    return gzip.compress(json.dumps(env).encode())


@pytest.fixture
def col(tmp_path: Path) -> Any:
    with collector(tmp_path / "c.db", "--max-body-bytes", "200000") as c:
        yield c


def test_healthz_answers_ok(col: Collector) -> None:
    import urllib.request

    with urllib.request.urlopen(col.base + "/healthz", timeout=10) as resp:
        assert resp.status == 200 and resp.read() == b"ok\n"


def test_stores_events_and_deduplicates_by_id(col: Collector) -> None:
    events = [_event() for _ in range(10)]
    assert col.post(_envelope(events), GZ)[1]["accepted"] == 10
    status, body = col.post(_envelope([*events[5:], _event()]), GZ, path="/")
    assert status == 200 and body == {"accepted": 1, "duplicates": 5, "rejected": 0}
    stats = col.stats()
    assert stats["events"] == 11 and stats["duplicates"] == 5 and stats["batches"] == 2


def test_off_list_event_is_not_stored_but_counted(col: Collector) -> None:
    events = [_event(), _event("credit_card_number", number="4111")]
    status, body = col.post(_envelope(events), GZ)
    assert status == 200 and body["accepted"] == 1 and body["rejected"] == 1
    stats = col.stats()
    assert stats["events"] == 1
    assert stats["rejections"] == {"event:unknown_event": 1}


def test_unknown_property_is_stripped_and_the_event_stored(col: Collector, tmp_path: Path) -> None:
    import sqlite3

    status, _ = col.post(_envelope([_event(cli_command="eval", home="/home/alice")]), GZ)
    assert status == 200
    assert col.stats()["rejections"] == {"prop:unknown_property": 1}
    conn = sqlite3.connect(tmp_path / "c.db")
    (props,) = conn.execute("SELECT props FROM events").fetchone()
    conn.close()
    assert json.loads(props) == {"cli_command": "eval"}


def test_reported_drop_counts_are_stored(col: Collector) -> None:
    col.post(_envelope([_event()], dropped={"evicted": 3, "rejected": 2}), GZ)
    assert col.stats()["dropped_reported"] == {"evicted": 3, "rejected": 2}


def test_zip_bomb_gets_413_without_inflating_it(col: Collector) -> None:
    # 64 MiB of zeros compress to ~64 KiB: under the body limit, far over the inflate limit.
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(c.compress(b"\0" * (1 << 20)) for _ in range(64)) + c.flush()
    assert len(bomb) < 200_000
    status, body = col.post(bomb, GZ)
    assert status == 413 and "inflates" in body["error"]
    assert col.stats()["events"] == 0
    assert col.post(_envelope([_event()]), GZ)[0] == 200  # still serving


def test_oversized_body_gets_413(col: Collector) -> None:
    status, _ = col.post(b"x" * 300_000, {"Content-Type": "application/json"})
    assert status == 413


@pytest.mark.parametrize(
    "body",
    [gzip.compress(b"not json"), gzip.compress(b"[]"), b"\x1f\x8b garbage"],
)
def test_malformed_envelope_gets_400(col: Collector, body: bytes) -> None:
    assert col.post(body, GZ)[0] == 400


def test_json_envelope_on_the_otlp_path_gets_400(col: Collector) -> None:
    # /v1/logs takes OTLP/HTTP JSON (tests/test_collector_otlp.py); an envelope there is a mistake.
    status, body = col.post(_envelope([_event()]), GZ, path="/v1/logs")
    assert status == 400 and "/v1/events" in body["error"]
    assert col.stats()["events"] == 0


def test_prints_counts_on_sigterm(tmp_path: Path) -> None:
    with collector(tmp_path / "c.db") as c:
        c.post(_envelope([_event()]), GZ)
    assert c.proc.returncode == 0
    counts = json.loads(c.final_output.strip().splitlines()[-1])
    assert counts["events"] == 1 and counts["batches"] == 1
