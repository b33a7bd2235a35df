"""An independent oracle: is this sanitized value allowed by the schema?

Written from the schema document (not from the compiled checkers), so the
property tests compare two implementations of the same rules.
"""

from __future__ import annotations

import math
import re
from typing import Any

from spool import Schema

_TOKEN = re.compile(r"[a-z0-9][a-z0-9._-]{0,79}")
VERSION = re.compile(r"[0-9]+(\.[0-9]+){0,3}([-.]?[a-z]+\.?[0-9]*)*")


def allowed(schema: Schema, event: str, prop: str, value: Any, raw_props: dict[str, Any]) -> bool:
    spec = schema.props[event][prop]
    kind = spec["type"]
    if kind == "enum":
        return isinstance(value, str) and (value in spec["values"] or value == "other")
    if kind == "number":
        return (
            type(value) in (int, float)
            and math.isfinite(value)
            and spec["min"] <= value <= spec["max"]
            and (
                type(value) is int or "digits" not in spec or round(value, spec["digits"]) == value
            )
        )
    if kind == "string":
        return isinstance(value, str) and re.fullmatch(spec["pattern"], value) is not None
    if kind == "id":
        return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{32}", value) is not None
    if kind == "bool":
        return value is True or value is False
    if kind in ("int", "count"):
        lo, hi = spec.get("min", 0), spec.get("max", 1_000_000)
        return type(value) is int and lo <= value <= hi
    if kind == "float":
        return (
            type(value) is float
            and math.isfinite(value)
            and spec["min"] <= value <= spec["max"]
            and round(value, spec.get("digits", 2)) == value
        )
    if kind == "bucket":
        other = spec.get("invalid") == "other" and value == "other"
        return isinstance(value, str) and (value in spec["labels"] or other)
    if kind == "version":
        if value == "other" or value in spec.get("values", ()):
            return True
        return isinstance(value, str) and len(value) <= 32 and VERSION.fullmatch(value) is not None
    if kind == "model" and schema.doc.get("model_tokens", {}).get("rule") == "seed":
        # The seed's rule: "{vendor}-{token}" for a listed vendor, in the token shape.
        vendors = schema.doc["model_tokens"]["vendors"]
        shape = schema.doc["model_tokens"]["token_pattern"]
        return (
            isinstance(value, str)
            and re.fullmatch(shape, value) is not None
            and any(value.startswith(v + "-") and len(value) > len(v) + 1 for v in vendors)
        )
    if kind == "model":
        if value == "other":
            return True
        vendors = schema.doc.get("models", {})
        for vendor, patterns in vendors.items():
            if value == f"{vendor}-other":
                return True
            if isinstance(value, str) and value.startswith(vendor + "-"):
                rest = value[len(vendor) + 1 :]
                if _TOKEN.fullmatch(rest) and any(re.fullmatch(p, rest) for p in patterns):
                    return True
        return False
    return False
