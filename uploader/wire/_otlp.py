"""The ``otlp`` wire encoding: OTLP/HTTP JSON logs, and its inverse.

``encode_otlp`` turns a batch into the protobuf-JSON mapping of
``opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest``: one
resource (app, version, schema), one scope (telespool), one LogRecord per
event, plus one ``telespool.dropped`` record when drops are reported. The
mapping is documented in docs/wire-format.md; an OpenTelemetry Collector's
otlphttp receiver accepts the body as-is (POST /v1/logs, gzip).

``decode_otlp`` reads such a body back into the JSON envelope's fields, so the
reference collector can accept either encoding.

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
from spool.store._rows import StoredEvent

from ._encode import Encoded, EnvelopeHeader

__all__ = [
    "CONTENT_TYPE",
    "DROPPED_EVENT",
    "DROPPED_PREFIX",
    "EVENT_ID_KEY",
    "RUN_ID_KEY",
    "SCOPE_NAME",
    "OtlpDecodeError",
    "decode_otlp",
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
_NS = 1_000_000_000
# Bound the memo tables: a drain of millions of distinct props must not grow them.
_CACHE_MAX = 4096
# Props memo: at most this many entries of at most _PROPS_MEMO_CHARS each (~3 MB).
_PROPS_MEMO_MAX = 1024
_PROPS_MEMO_CHARS = 1024

_STR: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring", None) or (
    json.encoder.py_encode_basestring
)


# json.loads minus its whitespace checks: props are compact JSON written by the spool.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().raw_decode


# -- encoding -------------------------------------------------------------------------------
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
    s = _STR
    observed = _nanos(sent_at)
    obs = f',"observedTimeUnixNano":"{observed}",'
    names = _NAME_CACHE
    attrs = _PROPS_CACHE
    records = []
    for e in events:
        head = names.get(e.name)
        if head is None:
            head = _name_fragment(e.name)
            if len(names) >= _CACHE_MAX:
                names.clear()
            names[e.name] = head
        tail = attrs.get(e.props)
        if tail is None:
            tail = _props_fragment(e.props)
            if len(e.props) <= _PROPS_MEMO_CHARS:
                if len(attrs) >= _PROPS_MEMO_MAX:
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
    n = _STR(name)
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
    s = _STR
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
    return f',{{"key":{_STR(str(key))},"value":{_any_value(value)}}}'


def _any_value(v: object) -> str:
    """The protobuf-JSON AnyValue for one JSON value (exact type kept)."""
    cls = v.__class__
    if cls is str:
        return f'{{"stringValue":{_STR(v)}}}'  # type: ignore[arg-type]
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
    return f'{{"stringValue":{_STR(str(v))}}}'


def _dropped_record(dropped: Mapping[str, int], observed: int) -> str:
    name = _STR(DROPPED_EVENT)
    counts = "".join(
        f',{{"key":{_STR(DROPPED_PREFIX + str(reason))},"value":{_any_value(int(n))}}}'
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
            return sec * _NS + int(frac) * 1000
    return _nanos_slow(iso)


def _epoch_seconds(prefix: str) -> int | None:
    try:
        sec = calendar.timegm(time.strptime(prefix, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    if sec < 0:
        return None  # fixed64 has no room before 1970: the slow path clamps to 0
    # Events of one batch share few seconds: remember them.
    if len(_SECONDS_CACHE) >= _CACHE_MAX:
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
    return max((delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000, 0)


# -- decoding -------------------------------------------------------------------------------
class OtlpDecodeError(ValueError):
    """The body is not an OTLP/HTTP JSON logs request telespool could have sent."""


def decode_otlp(body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read an (uncompressed) OTLP JSON logs body back into envelope form.

    Returns ``(header, events)``: ``header`` has the JSON envelope's keys
    (schema, schema_version, schema_hash, app, app_version, install_id,
    sent_at, dropped) taken from the first resource; ``events`` are
    ``{id, name, time, run_id, props}`` from every record, in order. Accepts
    both lowerCamelCase and snake_case field names and int64 as string or
    number, as any protobuf-JSON parser does. Raises ``OtlpDecodeError`` (a
    ``ValueError``) for anything else, including a record without an event id.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OtlpDecodeError(f"not JSON: {exc}") from exc
    resource_logs = _list(_obj(doc, "request"), "resourceLogs", "resource_logs")
    header: dict[str, Any] = {
        "schema": None,
        "schema_version": None,
        "schema_hash": None,
        "app": None,
        "app_version": None,
        "install_id": None,
        "sent_at": None,
        "dropped": {},
    }
    events: list[dict[str, Any]] = []
    dropped: dict[str, int] = {}
    for i, rl in enumerate(resource_logs):
        rl = _obj(rl, "resourceLogs[]")
        if i == 0:
            resource = _obj(rl.get("resource") or {}, "resource")
            attrs = _attributes(resource)
            header["app"] = attrs.get("service.name")
            header["app_version"] = attrs.get("service.version")
            header["schema"] = attrs.get("telespool.schema.name")
            header["schema_version"] = attrs.get("telespool.schema.version")
            header["schema_hash"] = attrs.get("telespool.schema.hash")
            header["install_id"] = attrs.get("telespool.install_id")
        for sl in _list(rl, "scopeLogs", "scope_logs"):
            for rec in _list(_obj(sl, "scopeLogs[]"), "logRecords", "log_records"):
                rec = _obj(rec, "logRecords[]")
                attrs = _attributes(rec)
                observed = _field(rec, "observedTimeUnixNano", "observed_time_unix_nano")
                if header["sent_at"] is None and observed is not None:
                    header["sent_at"] = _iso(_uint(observed, "observedTimeUnixNano"))
                event_id = attrs.pop(EVENT_ID_KEY, None)
                name = _field(rec, "eventName", "event_name") or attrs.get(EVENT_NAME_KEY)
                if event_id is None and name == DROPPED_EVENT:
                    for key, n in attrs.items():
                        if key.startswith(DROPPED_PREFIX) and isinstance(n, int):
                            reason = key[len(DROPPED_PREFIX) :]
                            dropped[reason] = dropped.get(reason, 0) + n
                    continue
                if not isinstance(event_id, str):
                    raise OtlpDecodeError(f"log record without a string {EVENT_ID_KEY}")
                if not isinstance(name, str):
                    raise OtlpDecodeError(f"event {event_id}: no event name")
                attrs.pop(EVENT_NAME_KEY, None)
                run_id = attrs.pop(RUN_ID_KEY, None)
                t = _field(rec, "timeUnixNano", "time_unix_nano")
                events.append(
                    {
                        "id": event_id,
                        "name": name,
                        "time": _iso(_uint(t, "timeUnixNano")) if t is not None else None,
                        "run_id": run_id,
                        "props": attrs,
                    }
                )
    header["dropped"] = dropped
    return header, events


def _obj(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise OtlpDecodeError(f"{where}: expected an object")
    return value


def _field(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _list(obj: Mapping[str, Any], camel: str, snake: str) -> list[Any]:
    value = _field(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpDecodeError(f"{camel}: expected a list")
    return value


def _attributes(obj: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in _list(obj, "attributes", "attributes"):
        kv = _obj(kv, "attribute")
        key = kv.get("key")
        if not isinstance(key, str):
            raise OtlpDecodeError("attribute without a string key")
        out[key] = _value(kv.get("value") or {})
    return out


def _value(av: object) -> Any:
    """A JSON value for one protobuf-JSON AnyValue."""
    av = _obj(av, "AnyValue")
    if not av:
        return None
    if len(av) != 1:
        raise OtlpDecodeError(f"AnyValue with several values: {sorted(av)}")
    kind, v = next(iter(av.items()))
    if kind in ("stringValue", "string_value") and isinstance(v, str):
        return v
    if kind in ("boolValue", "bool_value") and isinstance(v, bool):
        return v
    if kind in ("intValue", "int_value"):
        return _int(v, "intValue")
    if kind in ("doubleValue", "double_value"):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        if v in ("NaN", "Infinity", "-Infinity"):
            return float(v.replace("Infinity", "inf"))
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                pass
    if kind in ("arrayValue", "array_value"):
        return [_value(x) for x in _list(_obj(v, kind), "values", "values")]
    if kind in ("kvlistValue", "kvlist_value"):
        return _attributes({"attributes": _list(_obj(v, kind), "values", "values")})
    raise OtlpDecodeError(f"unsupported AnyValue {kind}={v!r}")


def _int(value: object, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise OtlpDecodeError(f"{where}: expected an integer, got {value!r}")


def _uint(value: object, where: str) -> int:
    n = _int(value, where)
    if n < 0:
        raise OtlpDecodeError(f"{where}: negative")
    return n


def _iso(nanos: int) -> str:
    """The spool's time format, exact to the microsecond (integer math, no float)."""
    sec, ns = divmod(nanos, _NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{ns // 1000:06d}Z"
