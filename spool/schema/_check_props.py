"""Checks of one property spec, and the small checks every section uses.

Split from the document walk (spool/schema/_check.py) so each half reads on
its own: this one knows what each property ``type`` accepts (``PROP_TYPES``),
the other which sections a document has. Every problem is recorded with its
dotted place, never raised, so ``Schema.load`` reports all of them at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from ._sanitize import ID_SHAPES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["NAME_RE", "PROP_TYPES", "TOKEN_RE", "PropChecker"]

NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
TOKEN_RE = re.compile(r"[a-z0-9][a-z0-9_.+-]{0,63}")
_COMMON = frozenset({"type", "description", "auto"})
PROP_TYPES: dict[str, frozenset[str]] = {
    "enum": _COMMON | {"values", "aliases"},
    "bool": _COMMON,
    "int": _COMMON | {"min", "max"},
    "count": _COMMON | {"max"},
    "float": _COMMON | {"min", "max", "digits"},
    "bucket": _COMMON | {"edges", "labels", "invalid"},
    "version": _COMMON | {"values"},
    "number": _COMMON | {"min", "max", "digits"},
    "string": _COMMON | {"pattern"},
    "id": _COMMON | {"shape"},
    "model": _COMMON | {"vendor_prop"},
}


class PropChecker:
    """Collects problems as ``"<place>: <what is wrong>"``."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def obj(self, where: str, value: object) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.bad(where, f"must be an object, got {_kind(value)}")
            return None
        return value

    def keys(self, where: str, value: Mapping[str, Any], allowed: frozenset[str]) -> None:
        for key in value:
            if key not in allowed:
                self.bad(
                    f"{where}.{key}" if where else key,
                    f"unknown key (allowed: {', '.join(sorted(allowed))})",
                )

    def tokens(self, where: str, value: object, *, min_len: int = 1) -> list[str]:
        if not isinstance(value, list) or len(value) < min_len:
            self.bad(where, f"must be a list of at least {min_len} strings")
            return []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not TOKEN_RE.fullmatch(item):
                self.bad(f"{where}[{i}]", f"must match {TOKEN_RE.pattern}, got {item!r}")
        if len(set(map(repr, value))) != len(value):
            self.bad(where, "must not repeat a value")
        return [v for v in value if isinstance(v, str)]

    def number(self, where: str, value: object, *, integer: bool = False) -> bool:
        if integer:
            if not isinstance(value, int) or isinstance(value, bool):
                self.bad(where, "must be an integer")
                return False
            return True
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            self.bad(where, "must be a number")
            return False
        if not math.isfinite(value):
            self.bad(where, "must be finite")
            return False
        return True

    def pattern(self, where: str, pattern: object) -> None:
        if not isinstance(pattern, str) or not 0 < len(pattern) <= 200:
            self.bad(where, "must be a pattern string of 1-200 chars")
            return
        try:
            re.compile(pattern, re.ASCII)
        except re.error as exc:
            self.bad(where, f"invalid pattern: {exc}")

    def prop_type(
        self, where: str, spec: Mapping[str, Any], event_props: Mapping[str, Any] | None
    ) -> None:
        kind = spec.get("type")
        if kind not in PROP_TYPES:
            self.bad(f"{where}.type", f"must be one of {', '.join(PROP_TYPES)}, got {kind!r}")
            return
        self.keys(where, spec, PROP_TYPES[kind])
        if "description" in spec and not isinstance(spec["description"], str):
            self.bad(f"{where}.description", "must be a string")
        if kind == "enum":
            values = self.tokens(f"{where}.values", spec.get("values"))
            aliases = self.obj(f"{where}.aliases", spec.get("aliases", {}))
            for alias, target in (aliases or {}).items():
                if not TOKEN_RE.fullmatch(alias) or target not in values:
                    self.bad(
                        f"{where}.aliases.{alias}",
                        f"must map a token to one of the values, got {target!r}",
                    )
        elif kind in ("number", "int", "float"):
            self.bounds(where, spec, integer=kind == "int")
        elif kind == "string":
            self.pattern(f"{where}.pattern", spec.get("pattern"))
        elif kind == "id":
            if spec.get("shape") not in ID_SHAPES:
                self.bad(
                    f"{where}.shape",
                    f"must be one of {', '.join(ID_SHAPES)}, got {spec.get('shape')!r}",
                )
        elif kind == "version" and "values" in spec:
            self.tokens(f"{where}.values", spec["values"])
        elif kind == "count" and "max" in spec:
            if self.number(f"{where}.max", spec["max"], integer=True) and spec["max"] < 0:
                self.bad(f"{where}.max", "must not be negative")
        elif kind == "bucket":
            self.bucket(where, spec)
        elif kind == "model" and "vendor_prop" in spec:
            vp = spec["vendor_prop"]
            if not isinstance(vp, str) or (event_props is not None and vp not in event_props):
                self.bad(
                    f"{where}.vendor_prop", f"must name another property of this event, got {vp!r}"
                )

    def bounds(self, where: str, spec: Mapping[str, Any], *, integer: bool) -> None:
        """``min`` <= ``max`` (integers for an int) and 0-6 rounding ``digits``."""
        lo_ok = self.number(f"{where}.min", spec.get("min"), integer=integer)
        hi_ok = self.number(f"{where}.max", spec.get("max"), integer=integer)
        if lo_ok and hi_ok and spec["min"] > spec["max"]:
            self.bad(f"{where}.max", "must not be less than min")
        if "digits" in spec:
            digits = spec["digits"]
            if self.number(f"{where}.digits", digits, integer=True) and not 0 <= digits <= 6:
                self.bad(f"{where}.digits", "must be from 0 to 6")

    def bucket(self, where: str, spec: Mapping[str, Any]) -> None:
        if spec.get("invalid", "drop") not in ("drop", "other"):
            self.bad(f"{where}.invalid", f"must be 'drop' or 'other', got {spec['invalid']!r}")
        edges = spec.get("edges")
        if not isinstance(edges, list) or not edges:
            self.bad(f"{where}.edges", "must be a non-empty list of numbers")
            return
        ok = all(self.number(f"{where}.edges[{i}]", e) for i, e in enumerate(edges))
        if ok and any(a >= b for a, b in zip(edges, edges[1:])):
            self.bad(f"{where}.edges", "must be strictly ascending")
        labels = self.tokens(f"{where}.labels", spec.get("labels"))
        if labels and len(labels) != len(edges) + 1:
            self.bad(
                f"{where}.labels",
                f"must have len(edges)+1 = {len(edges) + 1} entries, got {len(labels)}",
            )


def _kind(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )
