"""The receiver's side of ``otlp``: an OTLP/HTTP JSON logs body back into envelope form.

Used by the reference collector (scripts/_collector_intake.py) and the tests,
never by the uploader: it lives apart from the encoder so a drain never loads
it, and so the encoder stays one job. It reads what ``_otlp.encode_otlp``
writes, and what any protobuf-JSON writer produces for the same message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from ._otlp import DROPPED_EVENT, DROPPED_PREFIX, EVENT_ID_KEY, EVENT_NAME_KEY, NS, RUN_ID_KEY

__all__ = ["OtlpDecodeError", "decode_otlp"]


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
    sec, ns = divmod(nanos, NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{ns // 1000:06d}Z"
