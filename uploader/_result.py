"""What one POST came to, as a value; the drain loop decides what each means.

Ack            2xx: delete the rows
Drop(reason)   any other 4xx but 408/413/429: delete and count them
Split          413: the batch is too big for the endpoint, halve it
Retry(...)     408, 429, 5xx, 1xx/3xx or a network error: back off,
               honouring the (capped) Retry-After the server sent
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

__all__ = ["Ack", "Drop", "Result", "Retry", "Split", "classify_status"]


@dataclass(frozen=True)
class Ack:
    status: int


@dataclass(frozen=True)
class Drop:
    status: int
    reason: str = "rejected"


@dataclass(frozen=True)
class Split:
    status: int = 413


@dataclass(frozen=True)
class Retry:
    """Try again later. ``error`` names why (``http_503``, ``timeout``, ``tls``...)."""

    error: str
    retry_after_s: float | None = None
    status: int | None = None
    detail: str = ""


Result = Union[Ack, Drop, Split, Retry]


def classify_status(status: int, retry_after_s: float | None) -> Result:
    """Map an HTTP status to a result, per the response table in DESIGN.md."""
    if 200 <= status < 300:
        return Ack(status)
    if status == 413:
        return Split(status)
    if status in (408, 429) or status >= 500:
        return Retry(f"http_{status}", retry_after_s, status)
    if 400 <= status < 500:
        return Drop(status, "rejected")
    # 1xx/3xx: redirects are never followed (the body would be re-posted to
    # wherever a compromised endpoint points); keep the events and try later.
    return Retry(f"http_{status}", retry_after_s, status)
