"""The programmer's arguments to ``Telemetry()``, checked once at construction.

These come from code, so a bad one raises ``ConfigError`` (a ``ValueError``)
right away, where the SDK author sees it in their first test run. Values from
the environment are the user's and never raise: see spool/install/_env.py.
"""

from __future__ import annotations

import re

from ._errors import ConfigError
from ._policy import VERSION_MAX_CHARS
from .store._paths import env_prefix

__all__ = ["FORMATS", "check_args", "valid_prefix"]

FORMATS = ("json", "otlp", "otlp-proto")
# An environment variable's prefix: what shells and every OS accept, uppercase.
_PREFIX_RE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


def check_args(version: object, format: object, enabled: object, notice: object) -> None:
    """Raise ``ConfigError`` for the first argument that is not usable."""
    if not isinstance(version, str) or not version or len(version) > VERSION_MAX_CHARS:
        raise ConfigError(
            f"version must be a non-empty string of at most {VERSION_MAX_CHARS} chars, "
            f"got {version!r}"
        )
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}, got {format!r}")
    if not isinstance(enabled, bool):
        raise ConfigError(f"enabled must be a bool, got {enabled!r}")
    if notice is not None and not isinstance(notice, str):
        raise ConfigError(f"notice must be a string or None, got {type(notice).__name__}")


def valid_prefix(prefix: object, app: str) -> str:
    """The env-var prefix: ``app``'s by default (getpatter's app is "getpatter",
    its prefix ``PATTER``, so the seed passes it)."""
    if prefix is None:
        return env_prefix(app)
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise ConfigError(f"env_prefix must match {_PREFIX_RE.pattern}, got {prefix!r}")
    return prefix
