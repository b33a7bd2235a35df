"""Client-side sampling of the events a schema marks sampleable.

``{PREFIX}_TELEMETRY_SAMPLE`` is a rate in [0, 1]; unset, unparsable, NaN or
out of range means 1.0 (keep everything), so a bad value can never silently
drop data. The keep decision is made once per run, from the run id, exactly as
getpatter 0.7.0's client makes it: the first 8 hex digits of
``sha256(run_id)`` over ``0xFFFFFFFF``, kept when below the rate. A whole run
keeps or drops its sampleable events together; a per-event coin would bias
short runs. Events matching the schema's ``always_keep`` (an error
``call_completed``) are kept whatever the decision. Kept events carry the rate
(``sampling.rate_prop``) so totals can be re-weighted; dropped ones are counted
``sampled``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..schema._schema import Schema

__all__ = ["Sampler", "keep_run", "make_sampler", "parse_rate"]


def parse_rate(raw: str | None) -> tuple[float, bool]:
    """``(rate, valid)``: the seed's ``env.sample_rate()``; invalid input is ``(1.0, False)``."""
    if raw is None:
        return 1.0, True
    try:
        rate = float(raw.strip())
    except (TypeError, ValueError):
        return 1.0, False
    if rate != rate or rate < 0.0 or rate > 1.0:
        return 1.0, False
    return rate, True


def keep_run(run_id: str, rate: float) -> bool:
    """Whether this run keeps its sampleable events (deterministic per run id)."""
    if rate >= 1.0:
        return True
    ratio = int(hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return ratio < rate


class Sampler:
    """Built only when the rate is below 1: ``apply`` is then one dict lookup per event."""

    __slots__ = ("events", "keep", "rate", "rate_prop")

    def __init__(
        self,
        events: Mapping[str, Mapping[str, Any]],
        rate: float,
        keep: bool,
        rate_prop: str | None,
    ) -> None:
        self.events = dict(events)  # {event: always_keep rules}
        self.rate = rate
        self.keep = keep
        self.rate_prop = rate_prop

    def apply(self, name: str, props: dict[str, Any]) -> bool:
        """True to keep (``props`` then carries the rate), False to drop. May mutate ``props``."""
        rules = self.events[name]
        if not self.keep and not _forced(rules, props):
            return False
        if self.rate_prop is not None:
            props[self.rate_prop] = self.rate
        return True


def _forced(rules: Mapping[str, Any], props: Mapping[str, Any]) -> bool:
    # On the raw props, as the seed does: outcome == "error" or error_code passed at all.
    for prop, when in rules.items():
        if when == "present":
            if prop in props:
                return True
        else:
            value = props.get(prop)
            if isinstance(value, str) and str.__str__(value) in when:
                return True
    return False


def make_sampler(
    schema: Schema, env: Mapping[str, str], prefix: str, run_id: str
) -> Sampler | None:
    """The run's sampler from ``{prefix}_TELEMETRY_SAMPLE``; None when every event is kept.

    A bad value is the user's: read as 1 (keep all), and counted as error
    ``config`` by the environment check (spool/install/_env.py).
    """
    rate, _ = parse_rate(env.get(f"{prefix}_TELEMETRY_SAMPLE"))
    if rate >= 1.0 or not schema.sampleable:
        return None
    return Sampler(schema.sampleable, rate, keep_run(run_id, rate), schema.sampling_rate_prop)
