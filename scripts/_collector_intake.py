"""The reference collector's intake: read a request body within limits, decode
either wire encoding, and re-validate every event against the server's schema.

Both encodings end in the same rows, ``(id, name, time, run_id, props_json)``,
so storage and deduplication (``collector.CollectorDB``) do not know which one
arrived:

- ``json``: the telespool envelope (docs/wire-format.md, "JSON envelope");
- ``otlp``: OTLP/HTTP JSON logs, read back by ``uploader.wire._otlp_decode.decode_otlp``.

Stdlib plus ``spool`` and ``uploader.wire._otlp_decode``; imported by scripts/collector.py
from its own directory.
"""

from __future__ import annotations

import json
import re
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any

from spool import Schema
from uploader.wire._otlp_decode import OtlpDecodeError, decode_otlp

__all__ = [
    "BadRequest",
    "Decoded",
    "decode_json_envelope",
    "decode_otlp_logs",
    "otlp_response",
    "read_body",
]

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Context keys the host merges into every event; anything else ctx_* is stripped.
_CTX_KEYS = frozenset({"ctx_app_version", "ctx_schema_version", "ctx_python", "ctx_os", "ctx_arch"})
_CTX_MAX_LEN = 64

Row = tuple[str, str, str, str, str]
# (envelope header, clean rows, rejections by reason, events in the request)
Decoded = tuple[dict[str, Any], list[Row], Counter[str], int]


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def read_body(handler: BaseHTTPRequestHandler, max_body: int, max_decoded: int) -> bytes:
    """The request body, inflated, within both limits (BadRequest otherwise)."""
    if handler.headers.get("Transfer-Encoding"):
        raise BadRequest(411, "chunked bodies are not accepted; send Content-Length")
    try:
        length = int(handler.headers.get("Content-Length", ""))
    except ValueError:
        raise BadRequest(411, "Content-Length required") from None
    if length < 0:
        raise BadRequest(400, "bad Content-Length")
    if length > max_body:
        raise BadRequest(413, f"body over {max_body} bytes")
    encoding = (handler.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding not in ("gzip", "identity"):
        raise BadRequest(415, f"unsupported Content-Encoding {encoding!r}")
    inflate = zlib.decompressobj(31) if encoding == "gzip" else None
    out: list[bytes] = []
    produced = 0
    left = length
    while left > 0:
        chunk = handler.rfile.read(min(left, 64 * 1024))
        if not chunk:
            raise BadRequest(400, "body shorter than Content-Length")
        left -= len(chunk)
        if inflate is None:
            out.append(chunk)
            continue
        data = chunk
        while data:
            try:
                piece = inflate.decompress(data, max_decoded - produced + 1)
            except zlib.error as exc:
                raise BadRequest(400, f"bad gzip data: {exc}") from None
            produced += len(piece)
            if produced > max_decoded:
                raise BadRequest(413, f"body inflates past {max_decoded} bytes")
            out.append(piece)
            data = inflate.unconsumed_tail
    if inflate is not None:
        if not inflate.eof:
            raise BadRequest(400, "truncated gzip stream")
        out.append(inflate.flush())
    return b"".join(out)


def decode_json_envelope(body: bytes, schema: Schema) -> Decoded:
    """Validate a json envelope; returns (envelope, clean events, rejections, total)."""
    try:
        envelope = json.loads(body)
    except ValueError as exc:
        raise BadRequest(400, f"body is not JSON: {exc}") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("events"), list):
        raise BadRequest(400, "envelope must be an object with an 'events' list")
    dropped = envelope.get("dropped", {})
    if dropped is not None and not isinstance(dropped, dict):
        raise BadRequest(400, "'dropped' must be an object")
    return _clean_all(envelope, envelope["events"], schema)


def decode_otlp_logs(body: bytes, content_type: str | None, schema: Schema) -> Decoded:
    """Validate an OTLP/HTTP JSON logs body exactly like a json envelope.

    Each LogRecord maps back to ``{id, name, time, run_id, props}`` (the event
    id from ``telespool.event.id``), so the same schema checks and the same
    dedup key apply. Protobuf bodies get 415: this collector reads OTLP's JSON
    form only, which is what telespool sends.
    """
    ctype = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise BadRequest(415, f"only OTLP/HTTP JSON (application/json) is accepted, got {ctype}")
    try:
        header, events = decode_otlp(body)
    except OtlpDecodeError as exc:
        raise BadRequest(400, f"not an OTLP logs request telespool sends: {exc}") from None
    if not events and not header["dropped"] and _is_envelope(body):
        # An empty OTLP request is valid, but a json envelope on this path is a
        # misconfigured host: say so instead of acknowledging nothing.
        raise BadRequest(400, "a telespool json envelope: POST it to /v1/events, not /v1/logs")
    return _clean_all(header, events, schema)


def _is_envelope(body: bytes) -> bool:
    doc = json.loads(body)  # decode_otlp parsed it already: this cannot fail
    return isinstance(doc, dict) and "events" in doc


def otlp_response(rejected: Counter[str]) -> dict[str, Any]:
    """An ``ExportLogsServiceResponse`` in protobuf JSON: ``{}`` when every record
    was taken (duplicates included), else ``partialSuccess`` for the refused ones."""
    refused = sum(n for reason, n in rejected.items() if not reason.startswith("prop:"))
    if not refused:
        return {}
    reasons = ", ".join(
        f"{k}={v}" for k, v in sorted(rejected.items()) if not k.startswith("prop:")
    )
    # int64 is a decimal string in the JSON mapping.
    return {"partialSuccess": {"rejectedLogRecords": str(refused), "errorMessage": reasons}}


def _clean_all(header: dict[str, Any], events: list[Any], schema: Schema) -> Decoded:
    rejected: Counter[str] = Counter()
    clean: list[Row] = []
    for event in events:
        row = _clean_event(event, schema, rejected)
        if row is not None:
            clean.append(row)
    return header, clean, rejected, len(events)


def _clean_event(event: object, schema: Schema, rejected: Counter[str]) -> Row | None:
    if not isinstance(event, dict):
        rejected["malformed_event"] += 1
        return None
    uid, name, when, run_id, props = (
        event.get("id"),
        event.get("name"),
        event.get("time"),
        event.get("run_id"),
        event.get("props"),
    )
    if not (
        isinstance(uid, str)
        and _UUID_RE.fullmatch(uid)
        and isinstance(name, str)
        and isinstance(when, str)
        and len(when) <= 40
        and isinstance(run_id, str)
        and len(run_id) <= 64
        and isinstance(props, dict)
    ):
        rejected["malformed_event"] += 1
        return None
    ctx = {k: props[k] for k in props if isinstance(k, str) and k.startswith("ctx_")}
    plain = {k: v for k, v in props.items() if k not in ctx}
    stripped: list[str] = []
    out = schema.sanitize(name, plain, stripped.append)
    if out is None:
        # Off-list event: not stored, counted (see collector.py's docstring).
        rejected[f"event:{stripped[0] if stripped else 'unknown_event'}"] += 1
        return None
    for reason in stripped:
        rejected[f"prop:{reason}"] += 1
    for key, value in ctx.items():
        if key in _CTX_KEYS and (
            (isinstance(value, str) and len(value) <= _CTX_MAX_LEN)
            or (isinstance(value, int) and not isinstance(value, bool))
        ):
            out[key] = value
        else:
            rejected["prop:unknown_context"] += 1
    props_json = json.dumps(out, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return uid, name, when, run_id, props_json
