"""The ``json`` wire encoding: the batch envelope of DESIGN.md.

Props are already JSON text in the spool, so they are spliced in as-is rather
than parsed and re-serialized: that keeps encoding a small fraction of a
drain's cost. The drain's fast path hands over events SQLite already rendered
as JSON objects (``encode_json_fragments``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from spool._losses import split_errors
from spool.store._rows import StoredEvent

from ._envelope import Encoded, EnvelopeHeader, json_string

__all__ = ["CONTENT_TYPE", "encode_json", "encode_json_fragments"]

CONTENT_TYPE = "application/json"


def encode_json(
    header: EnvelopeHeader,
    events: Sequence[StoredEvent],
    dropped: Mapping[str, int],
    sent_at: str,
) -> Encoded:
    """The DESIGN.md envelope as UTF-8 JSON; ``events`` keep their spool order."""
    s = json_string
    parts = [
        f'{{"id":{s(e.uuid)},"name":{s(e.name)},"time":{s(e.time)},'
        f'"run_id":{s(e.run_id)},"props":{e.props}}}'
        for e in events
    ]
    return encode_json_fragments(header, parts, dropped, sent_at)


def encode_json_fragments(
    header: EnvelopeHeader,
    fragments: Sequence[str],
    dropped: Mapping[str, int],
    sent_at: str,
) -> Encoded:
    """The envelope around events already rendered as JSON objects (by SQLite)."""
    lost, errors = split_errors(dropped)
    head = json.dumps(
        {
            "schema": header.schema,
            "schema_version": header.schema_version,
            "schema_hash": header.schema_hash,
            "app": header.app,
            "app_version": header.app_version,
            "install_id": header.install_id,
            "sent_at": sent_at,
            "dropped": lost,
            # Swallowed errors by kind (host and uploader), counted like drops.
            "errors": errors,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
    text = head[:-1] + ',"events":[' + ",".join(fragments) + "]}"
    return Encoded(text.encode("utf-8"), CONTENT_TYPE)
