"""The ``otlp`` wire encoding: every body parses as opentelemetry-proto's
ExportLogsServiceRequest (strict protobuf-JSON parsing) and nothing is lost in
the mapping; ``decode_otlp`` inverts it; a real uploader posts it (gzip) to a
real loopback server."""

from __future__ import annotations

import calendar
import datetime as dt
import gzip
import json
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

# No stubs ship for protobuf's runtime (types-protobuf is not a test dependency).
from google.protobuf import json_format  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from spool import Telemetry, __version__
from spool.store._rows import StoredEvent
from tests.servers import Reply, ScriptedServer
from uploader.wire._envelope import EnvelopeHeader
from uploader.wire._formats import ENCODERS
from uploader.wire._otlp import DROPPED_EVENT, EVENT_ID_KEY, RUN_ID_KEY, encode_otlp
from uploader.wire._otlp_decode import OtlpDecodeError, decode_otlp

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
RESERVED = {"event.name", EVENT_ID_KEY, RUN_ID_KEY}
LIFECYCLE = {"first_run", "sdk_initialized"}


# -- helpers ----------------------------------------------------------------------------------
def parse(body: bytes) -> ExportLogsServiceRequest:
    """Strict: unknown fields, wrong JSON types or bad int64 strings all raise."""
    msg: ExportLogsServiceRequest = json_format.Parse(body, ExportLogsServiceRequest())
    return msg


def py_value(av: AnyValue) -> tuple[str, Any]:
    kind = av.WhichOneof("value")
    assert kind is not None, "an attribute lost its value"
    return kind, getattr(av, kind)


def attr_map(attributes: Any) -> dict[str, tuple[str, Any]]:
    keys = [kv.key for kv in attributes]
    assert len(keys) == len(set(keys)), f"duplicate attribute keys: {keys}"
    return {kv.key: py_value(kv.value) for kv in attributes}


def expected_value(v: object) -> tuple[str, Any]:
    """How a stored prop value must arrive (protobuf field, Python value)."""
    if isinstance(v, bool):
        return "bool_value", v
    if isinstance(v, int):
        if INT64_MIN <= v <= INT64_MAX:
            return "int_value", v
        return "string_value", str(v)  # OTLP has no wider integer: digits kept
    if isinstance(v, float):
        return "double_value", v
    assert isinstance(v, str)
    return "string_value", v


def nanos(moment: dt.datetime) -> int:
    return calendar.timegm(moment.utctimetuple()) * 10**9 + moment.microsecond * 1000


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stored(
    i: int, uuid: str, name: str, when: str, run_id: str, props: Mapping[str, Any]
) -> StoredEvent:
    # The spool's own serialization of props (compact, non-ASCII kept).
    text = json.dumps(props, separators=(",", ":"), ensure_ascii=False)
    return StoredEvent(i, uuid, name, when, run_id, text, len(text))


HEADER = EnvelopeHeader("voice-agent-sdk", 5, "h" * 64, "demo", "1.2.3", "inst-1")


# -- strategies -------------------------------------------------------------------------------
names = st.from_regex(r"[a-z][a-z0-9_]{0,63}", fullmatch=True)
values = st.one_of(
    st.text(max_size=40),
    st.booleans(),
    st.integers(),  # unbounded: small, negative, int64 edges and beyond
    st.sampled_from([INT64_MIN, INT64_MAX, INT64_MIN - 1, INT64_MAX + 1, 0, -1]),
    st.floats(allow_nan=False, allow_infinity=False),
)
props_st = st.dictionaries(names, values, max_size=12)
moments = st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2200, 1, 1)).map(
    lambda m: m.replace(tzinfo=dt.timezone.utc)
)
events_st = st.lists(
    st.tuples(st.uuids().map(str), names, moments, st.uuids().map(str), props_st), max_size=25
)
dropped_st = st.dictionaries(
    st.from_regex(r"[a-z][a-z_]{0,23}", fullmatch=True), st.integers(1, 2**40), max_size=5
)
headers_st = st.builds(
    EnvelopeHeader,
    schema=st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,63}", fullmatch=True),
    schema_version=st.integers(0, 10**6),
    schema_hash=st.text("0123456789abcdef", min_size=64, max_size=64),
    app=st.from_regex(r"[a-z0-9][a-z0-9_-]{0,63}", fullmatch=True),
    app_version=st.text(min_size=1, max_size=64),
    install_id=st.none() | st.uuids().map(str),
)


# -- the mapping, checked with opentelemetry-proto -------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(header=headers_st, raw=events_st, dropped=dropped_st, sent=moments)
def test_every_body_parses_and_nothing_is_lost(
    header: EnvelopeHeader,
    raw: list[tuple[str, str, dt.datetime, str, dict[str, Any]]],
    dropped: dict[str, int],
    sent: dt.datetime,
) -> None:
    batch = [stored(i, u, n, iso(m), r, p) for i, (u, n, m, r, p) in enumerate(raw, 1)]
    encoded = encode_otlp(header, batch, dropped, iso(sent))
    assert encoded.content_type == "application/json"
    req = parse(encoded.body)

    assert len(req.resource_logs) == 1
    rl = req.resource_logs[0]
    resource = attr_map(rl.resource.attributes)
    assert resource["service.name"] == ("string_value", header.app)
    assert resource["service.version"] == ("string_value", header.app_version)
    assert resource["telespool.schema.name"] == ("string_value", header.schema)
    assert resource["telespool.schema.version"] == ("int_value", header.schema_version)
    assert resource["telespool.schema.hash"] == ("string_value", header.schema_hash)
    if header.install_id is None:
        assert "telespool.install_id" not in resource
    else:
        assert resource["telespool.install_id"] == ("string_value", header.install_id)
    assert len(rl.scope_logs) == 1
    scope = rl.scope_logs[0]
    assert (scope.scope.name, scope.scope.version) == ("telespool", __version__)

    records = list(scope.log_records)
    assert len(records) == len(batch) + (1 if dropped else 0)
    for (uuid, name, moment, run_id, props), rec in zip(raw, records):
        assert rec.event_name == name
        assert rec.body.string_value == name
        assert rec.time_unix_nano == nanos(moment)  # to the microsecond
        assert rec.observed_time_unix_nano == nanos(sent)
        attrs = attr_map(rec.attributes)
        assert attrs.pop("event.name") == ("string_value", name)
        assert attrs.pop(EVENT_ID_KEY) == ("string_value", uuid)
        assert attrs.pop(RUN_ID_KEY) == ("string_value", run_id)
        assert attrs == {k: expected_value(v) for k, v in props.items()}
        # Same order as stored, and -0.0 keeps its sign.
        assert [kv.key for kv in rec.attributes][3:] == list(props)
        for k, v in props.items():
            if isinstance(v, float):
                assert repr(attrs[k][1]) == repr(v)
    if dropped:
        rec = records[-1]
        assert rec.event_name == DROPPED_EVENT
        assert rec.time_unix_nano == nanos(sent)
        attrs = attr_map(rec.attributes)
        assert attrs.pop("event.name") == ("string_value", DROPPED_EVENT)
        assert EVENT_ID_KEY not in attrs
        assert attrs == {f"telespool.dropped.{r}": ("int_value", n) for r, n in dropped.items()}


@settings(max_examples=300, deadline=None)
@given(header=headers_st, raw=events_st, dropped=dropped_st, sent=moments)
def test_decode_inverts_encode(
    header: EnvelopeHeader,
    raw: list[tuple[str, str, dt.datetime, str, dict[str, Any]]],
    dropped: dict[str, int],
    sent: dt.datetime,
) -> None:
    batch = [stored(i, u, n, iso(m), r, p) for i, (u, n, m, r, p) in enumerate(raw, 1)]
    body = encode_otlp(header, batch, dropped, iso(sent)).body
    got_header, got_events = decode_otlp(body)
    assert got_header == {
        "schema": header.schema,
        "schema_version": header.schema_version,
        "schema_hash": header.schema_hash,
        "app": header.app,
        "app_version": header.app_version,
        "install_id": header.install_id,
        "sent_at": iso(sent) if batch or dropped else None,
        "dropped": dropped,
    }
    assert got_events == [
        {
            "id": e.uuid,
            "name": e.name,
            "time": e.time,
            "run_id": e.run_id,
            "props": {
                k: str(v) if type(v) is int and not INT64_MIN <= v <= INT64_MAX else v
                for k, v in json.loads(e.props).items()
            },
        }
        for e in batch
    ]


@settings(max_examples=100, deadline=None)
@given(header=headers_st, raw=events_st, dropped=dropped_st, sent=moments)
def test_decode_reads_what_protobuf_itself_writes(
    header: EnvelopeHeader,
    raw: list[tuple[str, str, dt.datetime, str, dict[str, Any]]],
    dropped: dict[str, int],
    sent: dt.datetime,
) -> None:
    # Another producer (an OTel SDK, a collector re-exporting) writes the canonical
    # mapping, camelCase or snake_case: decode_otlp must read both the same way.
    batch = [stored(i, u, n, iso(m), r, p) for i, (u, n, m, r, p) in enumerate(raw, 1)]
    body = encode_otlp(header, batch, dropped, iso(sent)).body
    msg = parse(body)
    camel = json_format.MessageToJson(msg).encode()
    snake = json_format.MessageToJson(msg, preserving_proto_field_name=True).encode()
    assert decode_otlp(camel) == decode_otlp(body)
    assert decode_otlp(snake) == decode_otlp(body)


def test_registered_under_otlp_in_encoders() -> None:
    batch = [stored(1, "u1", "cli_command", "2026-11-24T15:20:22.123456Z", "r1", {"a": 1})]
    via_registry = ENCODERS["otlp"](HEADER, batch, {}, "2026-11-24T15:20:23.000000Z")
    assert via_registry == encode_otlp(HEADER, batch, {}, "2026-11-24T15:20:23.000000Z")


def test_repeated_props_are_typed_the_same_each_time() -> None:
    # The memo of props fragments must not confuse 1, 1.0 and true.
    batch = [
        stored(1, "u1", "e", "2026-11-24T15:20:22.000001Z", "r", {"x": 1}),
        stored(2, "u2", "e", "2026-11-24T15:20:22.000002Z", "r", {"x": 1.0}),
        stored(3, "u3", "e", "2026-11-24T15:20:22.000003Z", "r", {"x": True}),
        stored(4, "u4", "e", "2026-11-24T15:20:22.000004Z", "r", {"x": 1}),
    ]
    recs = parse(encode_otlp(HEADER, batch, {}, "2026-11-24T15:20:23.000000Z").body)
    log_records = recs.resource_logs[0].scope_logs[0].log_records
    kinds = [attr_map(r.attributes)["x"] for r in log_records]
    assert kinds == [
        ("int_value", 1),
        ("double_value", 1.0),
        ("bool_value", True),
        ("int_value", 1),
    ]


def test_other_time_forms_are_read_and_garbage_becomes_unknown() -> None:
    batch = [
        stored(1, "u1", "e", "2026-11-24T15:20:22Z", "r", {}),
        stored(2, "u2", "e", "2026-11-24T15:20:22.5+00:00", "r", {}),
        stored(3, "u3", "e", "yesterday", "r", {}),
    ]
    recs = parse(encode_otlp(HEADER, batch, {}, "2026-11-24T15:20:23.000000Z").body)
    times = [r.time_unix_nano for r in recs.resource_logs[0].scope_logs[0].log_records]
    base = calendar.timegm((2026, 11, 24, 15, 20, 22)) * 10**9
    assert times == [base, base + 500_000_000, 0]  # 0 is OTLP's "unknown"


def test_unreadable_props_travel_as_one_string_instead_of_failing_the_batch() -> None:
    bad = StoredEvent(1, "u1", "e", "2026-11-24T15:20:22.000000Z", "r", "{not json", 9)
    recs = parse(encode_otlp(HEADER, [bad], {}, "2026-11-24T15:20:23.000000Z").body)
    attrs = attr_map(recs.resource_logs[0].scope_logs[0].log_records[0].attributes)
    assert attrs["telespool.props"] == ("string_value", "{not json")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"resourceLogs": {}}',
        b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"attributes":[]}]}]}]}',
        b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"eventName":"e","attributes":'
        b'[{"key":"telespool.event.id","value":{"stringValue":"u"}},'
        b'{"key":"n","value":{"intValue":"1.5"}}]}]}]}]}',
    ],
)
def test_decode_rejects_bodies_telespool_never_sends(body: bytes) -> None:
    with pytest.raises(OtlpDecodeError):
        decode_otlp(body)
    assert issubclass(OtlpDecodeError, ValueError)


# -- end to end: a real Telemetry, the real uploader child, a real loopback server --------
@pytest.fixture
def recorder() -> Iterator[ScriptedServer]:
    # The OTLP success reply is an empty ExportLogsServiceResponse: "{}".
    ok = Reply(200, {"Content-Type": "application/json"})
    with ScriptedServer(lambda envelope: ok, path="/v1/logs") as server:
        yield server


def spooled(state_dir: Path) -> list[tuple[str, str, str, str, str]]:
    # The spool is for people too: read it the way they would.
    with sqlite3.connect(state_dir / "spool.db") as conn:
        return conn.execute(
            "SELECT uuid, name, time, run_id, props FROM events ORDER BY id"
        ).fetchall()


def test_flush_posts_gzip_otlp_json_that_a_collector_parses(
    tmp_path: Path, recorder: ScriptedServer
) -> None:
    state_dir = tmp_path / "state"
    t = Telemetry(
        app="demo",
        version="1.0.0",
        state_dir=state_dir,
        endpoint=recorder.url,
        format="otlp",
        allow_in_ci=True,
    )
    commands = ("eval", "dashboard", "telemetry", "other")
    for i in range(120):
        t.track("cli_command", command=commands[i % 4])
        t.track(
            "agent_configured",
            builtin_tool_count=i % 7,
            custom_tool_count=i,
            noise_reduction=i % 2 == 0,
            integration="mcp",
        )
        t.track("call_completed", latency_ms=i * 10, duration_seconds=i, cost_usd=i / 8)
    t.track("no_such_event")  # a sanitizer drop, reported with a batch
    before = spooled(state_dir)
    # The tracked events are queued (below the early-trigger threshold); only the
    # lifecycle events written at construction may have left already.
    assert len([row for row in before if row[1] not in LIFECYCLE]) == 360
    result = t.flush(timeout=60)
    t.close()
    assert result.outcome == "empty", result
    assert spooled(state_dir) == []

    assert recorder.received
    received: dict[str, Any] = {}
    drops: dict[str, int] = {}
    for path, headers, raw in ((r.path, r.headers, r.body) for r in recorder.received):
        lower = {k.lower(): v for k, v in headers.items()}
        assert path == "/v1/logs"  # the endpoint URL is used as given
        assert lower["content-type"] == "application/json"
        assert lower["content-encoding"] == "gzip"
        body = gzip.decompress(raw)
        req = parse(body)
        resource = attr_map(req.resource_logs[0].resource.attributes)
        assert resource["service.name"] == ("string_value", "demo")
        assert resource["service.version"] == ("string_value", "1.0.0")
        assert resource["telespool.schema.name"] == ("string_value", "voice-agent-sdk")
        for rec in req.resource_logs[0].scope_logs[0].log_records:
            attrs = attr_map(rec.attributes)
            if rec.event_name == DROPPED_EVENT:
                for key, (_, n) in attrs.items():
                    if key.startswith("telespool.dropped."):
                        reason = key.removeprefix("telespool.dropped.")
                        drops[reason] = drops.get(reason, 0) + n
                continue
            received[attrs[EVENT_ID_KEY][1]] = rec
        header, _ = decode_otlp(body)
        assert header["app"] == "demo"

    assert sum(drops.values()) >= 1  # the unknown event's drop was reported
    # Every spooled event arrived, unchanged; anything else is a lifecycle event
    # an uploader started at construction sent before the snapshot.
    assert set(received) >= {row[0] for row in before}
    extra = set(received) - {row[0] for row in before}
    assert {received[u].event_name for u in extra} <= LIFECYCLE
    for uuid, name, when, run_id, props in before:
        rec = received[uuid]
        attrs = attr_map(rec.attributes)
        assert rec.event_name == name
        assert attrs[RUN_ID_KEY] == ("string_value", run_id)
        moment = dt.datetime.strptime(when, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
        assert rec.time_unix_nano == nanos(moment)
        got = {k: v for k, v in attrs.items() if k not in RESERVED}
        assert got == {k: expected_value(v) for k, v in json.loads(props).items()}
