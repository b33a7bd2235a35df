"""The ``otlp`` wire encoding: OTLP/HTTP JSON logs.

``encode_otlp`` turns a batch into the protobuf-JSON mapping of
``opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest``: one
resource (app, version, schema), one scope (telespool), one LogRecord per
event, plus one ``telespool.dropped`` record when drops are reported. The
mapping is documented in docs/wire-format.md; an OpenTelemetry Collector's
otlphttp receiver accepts the body as-is (POST /v1/logs, gzip).

Its inverse, for receivers, is ``_otlp_decode``; the attribute keys both
agree on are named here.

Like ``encode_json``, the body is assembled as text: props are small, flat and
already sanitized, so one ``json.loads`` per event plus string splicing is all
the typing OTLP needs, and identical props (the common case) are mapped once.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from spool import __version__
from spool._policy import OTLP_MEMO_CHARS, OTLP_MEMO_ENTRIES, OTLP_NAME_MEMO_ENTRIES
from spool.store._rows import StoredEvent

from ._envelope import Encoded, EnvelopeHeader, json_string

__all__ = [
    "CONTENT_TYPE",
    "DROPPED_EVENT",
    "DROPPED_PREFIX",
    "EVENT_ID_KEY",
    "EVENT_NAME_KEY",
    "NS",
    "RUN_ID_KEY",
    "SCOPE_NAME",
    "encode_otlp",
]

CONTENT_TYPE = "application/json"
SCOPE_NAME = "telespool"
# Receivers deduplicate on this: the event's random uuid, assigned at append time.
EVENT_ID_KEY = "telespool.event.id"
RUN_ID_KEY = "telespool.run_id"
# Before OTLP 1.5 the event name was only an attribute; older receivers still read it.
EVENT_NAME_KEY = "event.name"
# Drops travel as one extra record: a backend can query them like any event.
DROPPED_EVENT = "telespool.dropped"
DROPPED_PREFIX = "telespool.dropped."
# Schema prop names match [a-z][a-z0-9_]*, so these dotted keys never collide.
_RESERVED = frozenset({EVENT_ID_KEY, RUN_ID_KEY, EVENT_NAME_KEY})

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Nanoseconds per second: OTLP times are Unix nanoseconds.
NS = 1_000_000_000


# json.loads minus its whitespace checks: props are compact JSON written by the spool.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().raw_decode


def encode_otlp(
    header: EnvelopeHeader,
    events: Sequence[StoredEvent],
    dropped: Mapping[str, int],
    sent_at: str,
) -> Encoded:
    """An ExportLogsServiceRequest as UTF-8 JSON; records keep the spool order.

    Never raises for odd stored data: an unreadable time becomes 0 (OTLP's
    "unknown"), unreadable props travel as one string attribute.
    """
    s = json_string
    observed = _nanos(sent_at)
    obs = f',"observedTimeUnixNano":"{observed}",'
    names = _NAME_CACHE
    attrs = _PROPS_CACHE
    records = []
    for e in events:
        head = names.get(e.name)
        if head is None:
            head = _name_fragment(e.name)
            if len(names) >= OTLP_NAME_MEMO_ENTRIES:
                names.clear()
            names[e.name] = head
        tail = attrs.get(e.props)
        if tail is None:
            tail = _props_fragment(e.props)
            if len(e.props) <= OTLP_MEMO_CHARS:
                if len(attrs) >= OTLP_MEMO_ENTRIES:
                    attrs.clear()
                attrs[e.props] = tail
        records.append(
            f'{{"timeUnixNano":"{_nanos(e.time)}"{obs}{head}'
            f'{{"key":"{EVENT_ID_KEY}","value":{{"stringValue":{s(e.uuid)}}}}},'
            f'{{"key":"{RUN_ID_KEY}","value":{{"stringValue":{s(e.run_id)}}}}}{tail}]}}'
        )
    if dropped:
        records.append(_dropped_record(dropped, observed))
    text = (
        '{"resourceLogs":[{"resource":{"attributes":['
        + _resource_attributes(header)
        + ']},"scopeLogs":[{"scope":{"name":"'
        + SCOPE_NAME
        + '","version":'
        + s(__version__)
        + '},"logRecords":['
        + ",".join(records)
        + "]}]}]}"
    )
    return Encoded(text.encode("utf-8"), CONTENT_TYPE)


_NAME_CACHE: dict[str, str] = {}
_PROPS_CACHE: dict[str, str] = {}
_SECONDS_CACHE: dict[str, int] = {}


def _name_fragment(name: str) -> str:
    # Everything from eventName up to the open attributes list.
    n = json_string(name)
    return (
        f'"eventName":{n},"body":{{"stringValue":{n}}},"attributes":['
        f'{{"key":"{EVENT_NAME_KEY}","value":{{"stringValue":{n}}}}},'
    )


def _props_fragment(text: str) -> str:
    """``,{attr},{attr}...`` for a stored props JSON object ('' when empty)."""
    try:
        props = _SCAN(text, 0)[0]
    except ValueError:
        props = None
    if not isinstance(props, dict):
        # Not what the sanitizer writes; keep it visible rather than failing the batch.
        return _kv("telespool.props", text) if text not in ("", "{}") else ""
    s = json_string
    out = []
    # The common types inline (this loop is most of an encode); the rest via _kv.
    for k, v in props.items():
        cls = v.__class__
        if cls is str:
            out.append(f',{{"key":{s(k)},"value":{{"stringValue":{s(v)}}}}}')
        elif cls is int and _INT64_MIN <= v <= _INT64_MAX:
            out.append(f',{{"key":{s(k)},"value":{{"intValue":"{v}"}}}}')
        elif cls is bool:
            out.append(f',{{"key":{s(k)},"value":{{"boolValue":{"true" if v else "false"}}}}}')
        else:
            out.append(_kv(k, v))
    return "".join(out)


def _kv(key: str, value: object) -> str:
    return f',{{"key":{json_string(str(key))},"value":{_any_value(value)}}}'


def _any_value(v: object) -> str:
    """The protobuf-JSON AnyValue for one JSON value (exact type kept)."""
    cls = v.__class__
    if cls is str:
        return f'{{"stringValue":{json_string(v)}}}'  # type: ignore[arg-type]
    if cls is bool:
        return '{"boolValue":true}' if v else '{"boolValue":false}'
    if cls is int:
        if _INT64_MIN <= v <= _INT64_MAX:  # type: ignore[operator]
            # int64 is a decimal *string* in the JSON mapping (JS numbers lose bits).
            return f'{{"intValue":"{v}"}}'
        # OTLP has no wider integer: keep every digit as a string.
        return f'{{"stringValue":"{v}"}}'
    if cls is float:
        f: float = v  # type: ignore[assignment]
        if f != f:
            return '{"doubleValue":"NaN"}'
        if f in (float("inf"), float("-inf")):
            return '{"doubleValue":"Infinity"}' if f > 0 else '{"doubleValue":"-Infinity"}'
        return f'{{"doubleValue":{f!r}}}'
    if v is None:
        return "{}"  # an AnyValue with no value set: OTLP's empty value
    if isinstance(v, list):
        return '{"arrayValue":{"values":[' + ",".join(_any_value(x) for x in v) + "]}}"
    if isinstance(v, dict):
        inner = ",".join(_kv(k, x)[1:] for k, x in v.items())
        return '{"kvlistValue":{"values":[' + inner + "]}}"
    return f'{{"stringValue":{json_string(str(v))}}}'


def _dropped_record(dropped: Mapping[str, int], observed: int) -> str:
    name = json_string(DROPPED_EVENT)
    counts = "".join(
        f',{{"key":{json_string(DROPPED_PREFIX + str(reason))},"value":{_any_value(int(n))}}}'
        for reason, n in dropped.items()
    )
    return (
        f'{{"timeUnixNano":"{observed}","observedTimeUnixNano":"{observed}",'
        f'"eventName":{name},"body":{{"stringValue":{name}}},"attributes":['
        f'{{"key":"{EVENT_NAME_KEY}","value":{{"stringValue":{name}}}}}{counts}]}}'
    )


def _resource_attributes(header: EnvelopeHeader) -> str:
    pairs: list[tuple[str, object]] = [
        ("service.name", header.app),
        ("service.version", header.app_version),
        ("telemetry.sdk.name", SCOPE_NAME),
        ("telemetry.sdk.language", "python"),
        ("telemetry.sdk.version", __version__),
        ("telespool.schema.name", header.schema),
        ("telespool.schema.version", header.schema_version),
        ("telespool.schema.hash", header.schema_hash),
    ]
    if header.install_id is not None:
        pairs.append(("telespool.install_id", header.install_id))
    return "".join(_kv(k, v) for k, v in pairs)[1:]


def _nanos(iso: str) -> int:
    """Unix nanoseconds for a spool time (``2026-11-24T15:20:22.123456Z``); 0 if unreadable."""
    if len(iso) == 27 and iso[19] == "." and iso[26] == "Z":
        prefix = iso[:19]
        sec = _SECONDS_CACHE.get(prefix)
        if sec is None:
            sec = _epoch_seconds(prefix)
        frac = iso[20:26]
        if sec is not None and frac.isascii() and frac.isdigit():
            return sec * NS + int(frac) * 1000
    return _nanos_slow(iso)


def _epoch_seconds(prefix: str) -> int | None:
    try:
        sec = calendar.timegm(time.strptime(prefix, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    if sec < 0:
        return None  # fixed64 has no room before 1970: the slow path clamps to 0
    # Events of one batch share few seconds: remember them.
    if len(_SECONDS_CACHE) >= OTLP_NAME_MEMO_ENTRIES:
        _SECONDS_CACHE.clear()
    _SECONDS_CACHE[prefix] = sec
    return sec


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_FRACTION = re.compile(r"(?<=:\d\d)\.(\d{1,6})\d*")


def _nanos_slow(iso: str) -> int:
    # Any other ISO-8601 form (Python 3.10's fromisoformat wants +00:00, not Z,
    # and a fraction of exactly 3 or 6 digits: "22.5" is padded to "22.500000").
    text = iso[:-1] + "+00:00" if iso.endswith("Z") else iso
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "00000")[:6], text, count=1)
    try:
        moment = _dt.datetime.fromisoformat(text)
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    delta = moment - _EPOCH
    return max((delta.days * 86400 + delta.seconds) * NS + delta.microseconds * 1000, 0)
