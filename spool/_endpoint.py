"""Endpoint validation: https everywhere, plain http only to loopback."""

from __future__ import annotations

from urllib.parse import urlsplit

from ._errors import ConfigError

__all__ = ["is_loopback_host", "validate_endpoint"]


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress  # only when an endpoint is configured

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_endpoint(endpoint: object) -> str | None:
    """Return the endpoint unchanged, or raise ConfigError saying what is wrong."""
    if endpoint is None:
        return None
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ConfigError(f"endpoint must be a URL string or None, got {endpoint!r}")
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"endpoint {endpoint!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError(f"endpoint must be an http(s) URL with a host, got {endpoint!r}")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ConfigError(
            f"endpoint {endpoint!r} must use https: plain http is only allowed to loopback hosts"
        )
    if parts.username or parts.password:
        raise ConfigError("endpoint must not embed credentials")
    return endpoint
