"""Sanitize straight to JSON: the call path's fused sanitizer and encoder.

``Schema.sanitize`` returns a dict that ``json`` then encodes; on the call path
that is two passes and a dict nobody keeps. Here each event's properties are
compiled once into a *plan*: for enum and bool properties, every allowed value
maps to its finished JSON fragment (``"engine":"pipeline"``), so the common
case is two dict lookups per property and one ``join``. Anything else goes
through the very same checker ``Schema.sanitize`` uses, so both paths accept,
coerce, drop and count identically (a hypothesis test holds them equal).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ._sanitize import BOOL, DROP, Allowed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    # (exact class a fragment lookup needs, value -> fragment, checker, '"key":')
    Step = tuple[type, dict[object, str], Any, str]

__all__ = ["compile_plan", "encode_scalar", "run_plan"]

_encode_str = json.encoder.encode_basestring  # the C version when available, as json.dumps


def encode_scalar(value: object) -> str:
    """JSON for a sanitized value, byte-for-byte what ``json.dumps`` writes."""
    cls = value.__class__
    if cls is str:
        return _encode_str(value)  # type: ignore[arg-type]
    if cls is bool:
        return "true" if value else "false"
    if cls is int:
        return int.__repr__(value)
    if cls is float:
        return float.__repr__(value)  # finite: the checkers ensure it
    return json.dumps(value, ensure_ascii=False, allow_nan=False)  # not reached by checkers


def compile_plan(checks: Mapping[str, Any]) -> dict[str, Step]:
    """One event's plan from its compiled checkers (``Schema._checks[event]``)."""
    plan: dict[str, Step] = {}
    for key, check in checks.items():
        prefix = _encode_str(key) + ":"
        if check.__class__ is Allowed:
            frags: dict[object, str] = {v: prefix + _encode_str(v) for v in check}
            plan[key] = (str, frags, check.check, prefix)
        elif check is BOOL:
            plan[key] = (bool, {True: prefix + "true", False: prefix + "false"}, check, prefix)
        else:
            plan[key] = (_NoFastPath, {}, check, prefix)
    return plan


class _NoFastPath:
    """A class no value has: the property always takes its checker."""


def run_plan(
    plan: Mapping[str, Step],
    props: Mapping[str, object],
    count: Callable[[str], None],
    tail: str,
) -> str:
    """``{...sanitized props, tail}`` as compact JSON; ``tail`` is a ready fragment.

    Counts exactly what ``Schema.sanitize`` counts. May raise on a hostile
    Mapping; the caller guards.
    """
    parts: list[str] = []
    append = parts.append
    get = plan.get
    for key, value in props.items():
        if value is None:
            continue  # absent, as if not passed (see _sanitize)
        # Exact str keys only: a str subclass could fake its hash/eq.
        step = get(key) if key.__class__ is str else None
        if step is None:
            count("unknown_property")
            continue
        cls, frags, check, prefix = step
        if value.__class__ is cls:
            frag = frags.get(value)
            if frag is not None:
                append(frag)
                continue
        clean = check(value, props, count)
        if clean is not DROP:
            append(prefix + encode_scalar(clean))
    if tail:
        append(tail)
    return "{" + ",".join(parts) + "}"
