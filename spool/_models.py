"""The model-name sanitizer: ``(vendor, model)`` -> one allowlisted token.

The known vendors and their model-name patterns are data in the schema
(``"models"``), not code, so another SDK sharing the schema file agrees on the
output. A name that no pattern matches (fine-tunes, paths, ``org/model``,
self-hosted or simply new models) becomes ``"{vendor}-other"``; an unknown
vendor becomes ``"other"``. The raw name is never returned unless a pattern
written by the schema author matched all of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = ["ModelSanitizer", "compile_pattern"]

# Every token we emit must look like this, whatever a pattern allowed.
_TOKEN_PATTERN = r"[a-z0-9][a-z0-9._-]{0,79}"  # re caches it; not compiled at import
# Results are cached: a process uses a handful of models, and the regex then
# runs once per distinct name. Bounded so hostile input cannot grow memory.
_CACHE_MAX = 256


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a schema model pattern (matched against the whole lower-cased name)."""
    return re.compile(pattern, re.ASCII)


class ModelSanitizer:
    """Maps ``(vendor, model)`` to ``vendor-model``, ``vendor-other`` or ``other``."""

    def __init__(self, vendors: Mapping[str, Sequence[str]]) -> None:
        # Compiled on first use per vendor: a process meets one or two vendors,
        # and compiling ~50 patterns up front would cost milliseconds at start.
        self._sources: dict[str, tuple[str, ...]] = {v: tuple(p) for v, p in vendors.items()}
        self._patterns: dict[str, tuple[re.Pattern[str], ...]] = {}
        self._cache: dict[tuple[str, str], str] = {}

    @property
    def vendors(self) -> frozenset[str]:
        return frozenset(self._sources)

    def __call__(self, vendor: object, model: object) -> str:
        """The sanitized token. Never raises; non-strings count as unknown."""
        if vendor.__class__ is str and model.__class__ is str:
            hit = self._cache.get((vendor, model))
            if hit is not None:
                return hit
        if not isinstance(vendor, str) or not isinstance(model, str):
            if isinstance(vendor, str):
                v = str.__str__(vendor).strip().lower()
                return f"{v}-other" if v in self._sources else "other"
            return "other"
        key = (str.__str__(vendor), str.__str__(model))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        token = self._sanitize(*key)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = token
        return token

    def _sanitize(self, vendor: str, model: str) -> str:
        v = vendor.strip().lower()
        sources = self._sources.get(v)
        if sources is None:
            return "other"
        patterns = self._patterns.get(v)
        if patterns is None:
            patterns = self._patterns[v] = tuple(compile_pattern(p) for p in sources)
        m = model.strip().lower()
        # Cheap structural refusals first: fine-tune ids ("ft:..."), paths,
        # "org/model" and anything with spaces or odd characters.
        if len(m) > 80 or not re.fullmatch(_TOKEN_PATTERN, m):
            return f"{v}-other"
        # A vendor prefix the host already added ("anthropic-claude-...") is fine.
        prefix = v + "-"
        bare = m[len(prefix) :] if m.startswith(prefix) else m
        for pattern in patterns:
            if pattern.fullmatch(bare):
                return f"{v}-{bare}"
        return f"{v}-other"
