"""The model-name sanitizer: ``(vendor, model)`` -> one allowlisted token.

Two rules, chosen by the schema's ``model_tokens.rule`` (data, not code, so
another SDK sharing the schema file agrees on the output):

``known`` (strict; the default, and what ``docs/privacy.md`` recommends)
    The known vendors and their model-name patterns are in ``"models"``. A
    name that no pattern matches (fine-tunes, paths, ``org/model``,
    self-hosted, custom or simply new models) becomes ``"{vendor}-other"``; an
    unknown vendor becomes ``"other"``. The raw name is never returned unless
    a pattern written by the schema author matched all of it.
``seed``
    getpatter 0.7.0's ``stack.model_token``: lower-cased, ``_`` -> ``-``, a
    trailing ``-YYYYMMDD`` stripped; anything with a character outside
    ``[a-z0-9._-]`` or over 40 characters becomes ``"{vendor}-other"``; a
    vendor off ``model_tokens.vendors`` is ``other``. It lets any short custom
    name through (``acme-support-bot`` -> ``openai-acme-support-bot``), which
    is why it is not the default. A token off ``model_tokens.token_pattern``
    is removed, as the seed's ``build_event`` removes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .._policy import MODEL_CACHE_MAX

__all__ = ["ModelSanitizer", "compile_pattern", "seed_token"]

# Every token we emit must look like this, whatever a pattern allowed.
_TOKEN_PATTERN = r"[a-z0-9][a-z0-9._-]{0,79}"  # re caches it; not compiled at import


def seed_token(vendor: str, raw: object) -> str:
    """getpatter 0.7.0 ``stack.model_token``, step for step (the oracle tests hold it)."""
    if not isinstance(raw, str) or not raw:
        return f"{vendor}-other"
    m = str.__str__(raw).strip().lower()
    if len(m) > 40 or re.search(r"[^a-z0-9._-]", m):
        return f"{vendor}-other"
    token = re.sub(r"-\d{8}$", "", m.replace("_", "-")).strip("-.")
    return f"{vendor}-{token}" if token else f"{vendor}-other"


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a schema model pattern (matched against the whole lower-cased name)."""
    return re.compile(pattern, re.ASCII)


class ModelSanitizer:
    """Maps ``(vendor, model)`` to ``vendor-model``, ``vendor-other`` or ``other``."""

    def __init__(
        self,
        vendors: Mapping[str, Sequence[str]],
        tokens: Mapping[str, object] | None = None,
    ) -> None:
        # Compiled on first use per vendor: a process meets one or two vendors,
        # and compiling ~50 patterns up front would cost milliseconds at start.
        self._sources: dict[str, tuple[str, ...]] = {v: tuple(p) for v, p in vendors.items()}
        self._patterns: dict[str, tuple[re.Pattern[str], ...]] = {}
        self._cache: dict[tuple[str, str], str | None] = {}
        t = tokens or {}
        self.rule = str(t.get("rule", "known"))
        seed_vendors = t.get("vendors", ())
        self._seed_vendors = frozenset(seed_vendors if isinstance(seed_vendors, list) else ())
        self._token_pattern = str(t.get("token_pattern", _TOKEN_PATTERN))

    @property
    def vendors(self) -> frozenset[str]:
        return self._seed_vendors if self.rule == "seed" else frozenset(self._sources)

    def __call__(self, vendor: object, model: object) -> str | None:
        """The sanitized token, or None to remove it. Never raises; non-strings count as unknown."""
        if vendor.__class__ is str and model.__class__ is str:
            hit = self._cache.get((vendor, model))
            if hit is not None:
                return hit
        if self.rule == "seed":
            return self._seed(vendor, model)
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
        if len(self._cache) >= MODEL_CACHE_MAX:
            self._cache.clear()
        self._cache[key] = token
        return token

    def _seed(self, vendor: object, model: object) -> str | None:
        v = str.__str__(vendor) if isinstance(vendor, str) else "other"
        if v not in self._seed_vendors:
            v = "other"  # the seed's vendor_of(): off the list is "other"
        key = (v, str.__str__(model)) if isinstance(model, str) else None
        if key is not None:
            hit = self._cache.get(key, False)
            if hit is not False:
                return hit  # type: ignore[return-value]  # a cached token or None
        token: str | None = seed_token(v, model)
        if token is not None and not re.fullmatch(self._token_pattern, token, re.ASCII):
            token = None  # too long with its vendor: the seed's build_event drops it
        if key is not None:
            if len(self._cache) >= MODEL_CACHE_MAX:
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
