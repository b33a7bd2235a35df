"""What every wire encoding shares: the per-pass header, the encoded body, the
encoder signature, and the one JSON string encoder.

Kept apart from the encoders so each of them (json, otlp, otlp-proto) and the
format registry import this module, and none of them imports another's types:
that is what used to make ``_encode`` and ``_otlp`` import each other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Callable

from spool._protocol import UploaderConfig
from spool.store._rows import StoredEvent

__all__ = ["Encoded", "Encoder", "EnvelopeHeader", "json_string"]

# json's own string encoder: the C one when available (escapes quotes and
# controls, keeps non-ASCII as UTF-8), exactly what json.dumps uses.
json_string: Callable[[str], str] = json.encoder.encode_basestring


@dataclass(frozen=True)
class EnvelopeHeader:
    """The per-pass part of every envelope (who sends, which schema)."""

    schema: str
    schema_version: int
    schema_hash: str
    app: str
    app_version: str
    install_id: str | None

    @classmethod
    def from_config(cls, config: UploaderConfig, install_id: str | None) -> EnvelopeHeader:
        return cls(
            schema=config.schema_name,
            schema_version=config.schema_version,
            schema_hash=config.schema_hash,
            app=config.app,
            app_version=config.app_version,
            install_id=install_id,
        )


@dataclass(frozen=True)
class Encoded:
    body: bytes  # uncompressed
    content_type: str
    # Sent with Content-Encoding: gzip. Protobuf is already compact, and
    # protobuf-only OTLP receivers (oteltap) refuse a gzip body with a 400.
    gzip: bool = True


Encoder = Callable[[EnvelopeHeader, Sequence[StoredEvent], Mapping[str, int], str], Encoded]
