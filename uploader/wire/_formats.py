"""The format registry: a format name -> its encoder, the extra it needs, and gzip.

The one place that knows every encoding, so the drain loop asks here and no
encoder imports another. ``otlp-proto`` loads protobuf only when a batch is
encoded in it (the extra may be absent); ``missing_extra`` says so before a
pass sends anything.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

from spool._policy import GZIP_LEVEL
from spool.store._rows import StoredEvent

from ._envelope import Encoded, Encoder, EnvelopeHeader
from ._json import encode_json
from ._otlp import encode_otlp

__all__ = ["ENCODERS", "gzip_body", "missing_extra"]


def gzip_body(data: bytes) -> bytes:
    # wbits 31 = a gzip stream (header and CRC), what Content-Encoding: gzip means.
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def _encode_otlp_proto(
    header: EnvelopeHeader,
    events: Sequence[StoredEvent],
    dropped: Mapping[str, int],
    sent_at: str,
) -> Encoded:
    # Imported on first use: it needs the otlp-proto extra (see missing_extra).
    from ._otlp_proto import encode_otlp_proto

    return encode_otlp_proto(header, events, dropped, sent_at)


def missing_extra(fmt: str) -> str | None:
    """What to install before ``fmt`` can be encoded, or None when it can."""
    if fmt != "otlp-proto":
        return None
    from ._otlp_proto import missing_extra as proto_missing

    return proto_missing()


ENCODERS: dict[str, Encoder] = {
    "json": encode_json,
    "otlp": encode_otlp,
    "otlp-proto": _encode_otlp_proto,
}
