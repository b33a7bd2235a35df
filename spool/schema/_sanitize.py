"""Value checkers: one precompiled closure per schema property.

``Schema`` validates the file; this module turns each validated property into
a closure ``check(value, props, count) -> value | DROP`` that does the least
possible work on the call path: an exact-type test, a frozenset lookup or a
clamp. Nothing here raises on any input (the caller still guards, as a last
line of defence), and nothing returns a string the schema did not allow.

Drop reasons counted here:
    invalid_value   wrong type, NaN/inf, or a string off the allowlist
                    (enums and versions become "other", other types are removed;
                    shaped strings and ids off their shape are removed, never coerced)
    out_of_range    a number clamped into [min, max]

``None`` is not a value: a property passed as None is absent, as if the host
had not passed it (``direction=maybe_known``), and is not counted.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Mapping

from .._policy import SHAPED_MAX_CHARS
from ._models import ModelSanitizer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    Checker = Callable[[object, Mapping[str, object], Callable[[str], None]], object]

__all__ = [
    "BOOL",
    "DROP",
    "ID_SHAPES",
    "OTHER",
    "VERSION_PATTERN",
    "Allowed",
    "compile_prop",
    "sanitize_version",
]

OTHER = "other"


class _Drop:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()

# Versions are not free text: digits and dots, an optional PEP 440 / semver
# pre-release or dev tag, at most 32 chars. Local versions ("+abc") never pass:
# they can carry a hostname or a commit of a private fork.
VERSION_PATTERN = (
    r"(?:0|[1-9][0-9]{0,5})(?:\.(?:0|[1-9][0-9]{0,5})){0,3}"
    r"(?:-?(?:a|b|c|rc|alpha|beta|pre|dev|post)\.?[0-9]{0,6})?"
    r"(?:\.?(?:dev|post)[0-9]{0,6})?"
)
_VERSION_CACHE: dict[str, bool] = {}
_VERSION_RE: list[re.Pattern[str]] = []  # compiled on first use: keeps ``import spool`` cheap


def _version_re() -> re.Pattern[str]:
    if not _VERSION_RE:
        _VERSION_RE.append(re.compile(VERSION_PATTERN, re.ASCII))
    return _VERSION_RE[0]


def sanitize_version(value: object, extra: frozenset[str] = frozenset()) -> str | None:
    """``value`` if it is a plain version string (or in ``extra``), else None."""
    if not isinstance(value, str):
        return None
    value = str.__str__(value)
    if value in extra:
        return value
    ok = _VERSION_CACHE.get(value)
    if ok is None:
        ok = len(value) <= 32 and _version_re().fullmatch(value) is not None
        if len(_VERSION_CACHE) >= 256:
            _VERSION_CACHE.clear()
        _VERSION_CACHE[value] = ok
    return value if ok else None


def _as_number(value: object) -> float | int | None:
    """A finite int or float, or None. bool is not a number here."""
    cls = value.__class__
    if cls is int:
        return value  # type: ignore[return-value]  # exact int, checked above
    if cls is float:
        f: float = value  # type: ignore[assignment]  # exact float, checked above
        return f if math.isfinite(f) else None
    if cls is bool:
        return None
    # Subclasses (numpy.float64, IntEnum...): take the plain value without
    # calling anything the subclass may have overridden.
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        f = float.__float__(value)
        return f if math.isfinite(f) else None
    return None


def _as_str(value: object) -> str | None:
    if value.__class__ is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)  # a StrEnum member: its plain text
    return None


# The shapes an ``id`` property may take: random ids only, so an id type can
# never be turned into a free-text field by a schema author.
ID_SHAPES = {
    "hex32": r"[0-9a-f]{32}",
    "uuid": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
}


def compile_prop(
    spec: Mapping[str, Any],
    models: ModelSanitizer,
    vendor_check: Checker | None = None,
) -> Checker:
    """Build the checker for one validated property spec.

    ``vendor_check`` is the checker of a model property's ``vendor_prop``: the
    model token is built under the vendor that property sanitizes to.
    """
    kind = spec["type"]
    if kind == "enum":
        return _enum(frozenset(spec["values"]), spec.get("aliases", {}))
    if kind == "bool":
        return _bool
    if kind in ("int", "count"):
        lo = int(spec.get("min", 0))
        hi = int(spec.get("max", 1_000_000))
        return _int(lo, hi)
    if kind == "float":
        return _float(float(spec["min"]), float(spec["max"]), int(spec.get("digits", 2)))
    if kind == "bucket":
        edges = tuple(float(e) for e in spec["edges"])
        return _bucket(edges, tuple(spec["labels"]), spec.get("invalid") == OTHER)
    if kind == "version":
        return _version(frozenset(spec.get("values", ())))
    if kind == "number":
        digits = spec.get("digits")
        return _number(spec["min"], spec["max"], None if digits is None else int(digits))
    if kind == "string":
        return _shaped(re.compile(spec["pattern"], re.ASCII).fullmatch)
    if kind == "id":
        return _shaped(re.compile(ID_SHAPES[spec["shape"]], re.ASCII).fullmatch)
    if kind == "model":
        return _model(models, spec.get("vendor_prop"), vendor_check)
    raise ValueError(f"unknown property type {kind!r}")  # unreachable after validation


class Allowed(frozenset):  # type: ignore[type-arg]
    """An enum's allowed values, with its full checker for the slow path.

    ``Schema.sanitize`` tests ``value in allowed`` inline for exact strings,
    which saves a function call on the commonest property type.
    """

    check: Checker


def _enum(values: frozenset[str], aliases: Mapping[str, str]) -> Checker:
    alias = dict(aliases)  # input spelling -> one of ``values`` (validated)

    def check(value: object, props: Mapping[str, object], count: Callable[[str], None]) -> object:
        if value.__class__ is str and value in values:
            return value
        s = _as_str(value)
        if s is not None:
            if s in values:
                return s
            hit = alias.get(s)
            if hit is not None:
                return hit
        count("invalid_value")
        return OTHER

    allowed = Allowed(values)
    allowed.check = check
    return allowed  # type: ignore[return-value]


def _bool(value: object, props: Mapping[str, object], count: Callable[[str], None]) -> object:
    if value is True or value is False:
        return value
    count("invalid_value")
    return DROP


BOOL: Checker = _bool  # the one bool checker, so callers can recognise it


def _in_range(n: Any, lo: Any, hi: Any, count: Callable[[str], None]) -> Any:
    """``n`` clamped to [lo, hi]; a clamp is counted ``out_of_range`` (the value is kept)."""
    if n < lo:
        count("out_of_range")
        return lo
    if n > hi:
        count("out_of_range")
        return hi
    return n


def _int(lo: int, hi: int) -> Checker:
    def check(value: object, props: Mapping[str, object], count: Callable[[str], None]) -> object:
        n = value if value.__class__ is int else _as_number(value)
        if n is None:
            count("invalid_value")
            return DROP
        n = _in_range(n, lo, hi, count)
        return n if n.__class__ is int else round(n)

    return check


def _float(lo: float, hi: float, digits: int) -> Checker:
    def check(value: object, props: Mapping[str, object], count: Callable[[str], None]) -> object:
        n = _as_number(value)
        if n is None:
            count("invalid_value")
            return DROP
        return round(float(_in_range(n, lo, hi, count)), digits)

    return check


def _bucket(edges: tuple[float, ...], labels: tuple[str, ...], to_other: bool) -> Checker:
    label_set = frozenset(labels)
    invalid = OTHER if to_other else DROP  # "invalid": "other" coerces like an enum

    def check(value: object, props: Mapping[str, object], count: Callable[[str], None]) -> object:
        n = _as_number(value)
        if n is not None:
            # A huge int compares fine against float edges; no conversion needed.
            return labels[bisect_right(edges, n)]
        s = _as_str(value)
        if s is not None and s in label_set:
            return s  # already bucketed by the host
        count("invalid_value")
        return invalid

    return check


def _version(extra: frozenset[str]) -> Checker:
    def check(value: object, props: Mapping[str, object], count: Callable[[str], None]) -> object:
        v = sanitize_version(value, extra)
        if v is None:
            count("invalid_value")
            return OTHER
        return v

    return check


def _number(lo: float, hi: float, digits: int | None) -> Checker:
    """A number as the host gave it: an int stays an int, a float a float."""

    def check(value: object, props: Mapping[str, object], count: Callable[[str], None]) -> object:
        n = _as_number(value)
        if n is None:
            count("invalid_value")
            return DROP
        n = _in_range(n, lo, hi, count)
        if n.__class__ is float and digits is not None:
            return round(n, digits)
        return n

    return check


def _shaped(fullmatch: Callable[[str], object]) -> Checker:
    """A string kept only when all of it has the shape; anything else is removed."""

    def check(value: object, props: Mapping[str, object], count: Callable[[str], None]) -> object:
        s = _as_str(value)
        if s is not None and len(s) <= SHAPED_MAX_CHARS and fullmatch(s) is not None:
            return s
        count("invalid_value")
        return DROP

    return check


def _silent(reason: str) -> None:
    pass


def _model(
    models: ModelSanitizer, vendor_prop: str | None, vendor_check: Checker | None
) -> Checker:
    def check(value: object, props: Mapping[str, object], count: Callable[[str], None]) -> object:
        # Either a (vendor, model) pair, or a name whose vendor is another prop.
        if isinstance(value, tuple) and len(value) == 2:
            vendor, model = value
        else:
            vendor = props.get(vendor_prop) if vendor_prop is not None else None
            model = value
        if vendor_check is not None and vendor is not None:
            # The vendor as its own property stores it (aliases applied); that
            # property counts its own faults, so none are counted twice.
            vendor = vendor_check(vendor, props, _silent)
        token = models(vendor, model)
        if token is None:
            count("invalid_value")
            return DROP
        if token == OTHER or token.endswith("-other"):
            count("invalid_value")
        return token

    return check
