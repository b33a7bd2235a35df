"""The ``otlp-proto`` wire encoding: OTLP/HTTP protobuf logs (``application/x-protobuf``).

Most OpenTelemetry backends and vendors accept only protobuf on OTLP/HTTP. The
request is the same ``ExportLogsServiceRequest`` as ``otlp`` (JSON) sends: the
JSON encoder builds it, and protobuf's own JSON mapping turns that into the
message, so the two encodings cannot drift apart (docs/wire-format.md has the
mapping once). That costs a parse per batch, off the call path.

Needs the ``otlp-proto`` extra (``opentelemetry-proto``): imported only here,
only by the uploader, never by ``spool``. Sent without gzip: the protobuf is
already compact and protobuf-only receivers (oteltap) refuse compressed
bodies. ``missing_extra()`` says what to install when it is absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from spool.store._rows import StoredEvent

from ._envelope import Encoded, EnvelopeHeader
from ._otlp import encode_otlp

__all__ = ["CONTENT_TYPE", "encode_otlp_proto", "missing_extra"]

CONTENT_TYPE = "application/x-protobuf"
_INSTALL = "format 'otlp-proto' needs the extra: pip install 'telespool[otlp-proto]'"


def missing_extra() -> str | None:
    """None when protobuf encoding is available, else what to install."""
    try:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2  # noqa: F401
    except ImportError as exc:
        return f"{_INSTALL} ({exc})"
    return None


def encode_otlp_proto(
    header: EnvelopeHeader,
    events: Sequence[StoredEvent],
    dropped: Mapping[str, int],
    sent_at: str,
) -> Encoded:
    """The batch as a serialized ExportLogsServiceRequest; records keep the spool order."""
    from google.protobuf import json_format  # type: ignore[import-untyped]
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
    )

    as_json = encode_otlp(header, events, dropped, sent_at).body
    # ignore_unknown_fields: an opentelemetry-proto older than OTLP 1.5 has no
    # LogRecord.event_name; the name still travels as body and event.name.
    message = json_format.Parse(as_json, ExportLogsServiceRequest(), ignore_unknown_fields=True)
    return Encoded(message.SerializeToString(), CONTENT_TYPE, gzip=False)
