"""The schema: which events and properties may be recorded (SKELETON).

This placeholder accepts any snake_case event name and JSON scalar props; the
schema issue replaces it with the declarative two-layer allowlist.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

__all__ = ["Schema"]

_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")


class Schema:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.name: str = str(doc.get("name", "scalars"))
        self.version: int = int(doc.get("version", 0))
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        self.hash = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def reference(cls) -> Schema:
        return cls({"name": "scalars", "version": 0})

    def sanitize(
        self, name: object, props: Mapping[str, object], count: Callable[[str], None]
    ) -> dict[str, object] | None:
        """Return the allowlisted props, or None to drop the event. Never raises.

        ``count(reason)`` is called once per rejected event, property or value.
        """
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            count("unknown_event")
            return None
        out: dict[str, object] = {}
        for key, value in props.items():
            if value is None or isinstance(value, (bool, int, str)):
                out[key] = value
            elif isinstance(value, float) and math.isfinite(value):
                out[key] = value
            else:
                count("invalid_value")
        return out
