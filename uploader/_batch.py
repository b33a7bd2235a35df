"""The next batch, read in id order and made ready to POST: body and headers.

The drain loop only asks "what is next, and what is it"; how each format reads
the spool (json takes the fast path, events SQLite already rendered as JSON
objects) and whether its body travels gzipped lives here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from spool.store._store import Spool

from .wire._envelope import Encoded, Encoder, EnvelopeHeader
from .wire._formats import gzip_body
from .wire._json import encode_json_fragments

__all__ = ["Batches", "Outgoing"]


@dataclass(frozen=True)
class Outgoing:
    """One request: the rows it carries (id range and uuids) and what goes on the wire."""

    first: int
    last: int
    uuids: list[str]
    body: bytes
    headers: dict[str, str]


class Batches:
    """Reads and encodes one pass's batches for one format and envelope header."""

    def __init__(
        self, spool: Spool, fmt: str, encoder: Encoder, header: EnvelopeHeader, max_bytes: int
    ) -> None:
        self._spool = spool
        self._fast = fmt == "json"
        self._encoder = encoder
        self._header = header
        self._max_bytes = max_bytes

    def after(
        self, after_id: int, limit: int, dropped: Mapping[str, int], sent_at: str
    ) -> Outgoing | None:
        """The batch after ``after_id``, at most ``limit`` events; None when none is left."""
        encoded: Encoded
        if self._fast:
            # Fast path: SQLite renders each event object in C.
            wire = self._spool.read_wire_batch(after_id, limit, self._max_bytes)
            if wire is None:
                return None
            first, last, uuids = wire.first_id, wire.last_id, wire.uuids
            encoded = encode_json_fragments(self._header, wire.fragments, dropped, sent_at)
        else:
            batch = self._spool.read_batch(after_id, limit, self._max_bytes)
            if not batch:
                return None
            first, last, uuids = batch[0].id, batch[-1].id, [e.uuid for e in batch]
            encoded = self._encoder(self._header, batch, dropped, sent_at)
        headers = {"Content-Type": encoded.content_type}
        if encoded.gzip:
            headers["Content-Encoding"] = "gzip"
            body = gzip_body(encoded.body)
        else:
            body = encoded.body
        return Outgoing(first, last, uuids, body, headers)
