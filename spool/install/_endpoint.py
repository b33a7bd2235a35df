"""Endpoint validation: https everywhere, plain http only to loopback."""

from __future__ import annotations

from urllib.parse import urlsplit

from .._errors import ConfigError

__all__ = ["endpoint_problem", "is_loopback_host", "validate_endpoint"]


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress  # only when an endpoint is configured

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def endpoint_problem(endpoint: object) -> str | None:
    """What is wrong with an endpoint, in words that never quote it, or None if fine.

    Never quoting the value matters for environment variables: a proxy URL
    with a password pasted there must not reach status() or a log.
    """
    if not isinstance(endpoint, str) or not endpoint.strip():
        return "must be a URL string"
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an http(s) URL with a host"
    if parts.username or parts.password:
        return "must not embed credentials"
    if parts.scheme == "http" and not is_loopback_host(host):
        return "must use https: plain http is only allowed to loopback hosts"
    return None


def validate_endpoint(endpoint: object) -> str | None:
    """Return the endpoint unchanged, or raise ConfigError saying what is wrong.

    For the host's ``endpoint=`` argument: a bad one is a programmer error.
    """
    if endpoint is None:
        return None
    problem = endpoint_problem(endpoint)
    if problem is None:
        assert isinstance(endpoint, str)
        return endpoint
    if problem == "must not embed credentials":
        raise ConfigError("endpoint must not embed credentials")
    raise ConfigError(f"endpoint {problem}, got {endpoint!r}")
