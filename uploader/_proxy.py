"""Which proxy, if any, the uploader goes through: the environment as curl and requests read it.

- ``HTTPS_PROXY`` for an https endpoint, ``HTTP_PROXY`` for http, ``ALL_PROXY``
  for either when the scheme's own variable is unset; each in lower or upper
  case, the lower-case one winning (as curl, requests and urllib do).
  Upper-case ``HTTP_PROXY`` is ignored when ``REQUEST_METHOD`` is set: in a CGI
  process a client's ``Proxy:`` header becomes it ("httpoxy").
- ``NO_PROXY``: comma-separated ``*``, host names (``example.com`` also matches
  ``api.example.com``; a leading dot is ignored), ``host:port``, IP addresses
  and CIDR ranges (``10.0.0.0/8``).
- Loopback endpoints never go through a proxy (as Go's net/http): a proxy's
  ``localhost`` is not ours.
- The host may set the ``proxy`` policy option in code: ``"direct"`` ignores the
  environment, a URL replaces it. The spool stores that URL, so it may not carry
  credentials (the policy refuses them); a proxy that needs them takes them
  from the environment's proxy URL for the same host and port.

The returned ``ProxyChoice`` keeps the credentials apart from the URL, and its
``safe_url`` (what may be logged, stored or shown) never contains them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from spool.install._endpoint import is_loopback_host

__all__ = ["DIRECT", "ProxyChoice", "ProxyConfigError", "bypasses", "choose_proxy", "redact"]

DIRECT = "direct"
_SCHEMES = ("http", "https", "socks5", "socks5h", "socks4", "socks4a")


class ProxyConfigError(ValueError):
    """A proxy setting that cannot be used; the message never holds credentials."""


@dataclass(frozen=True)
class ProxyChoice:
    url: str  # scheme://host:port, no credentials
    username: str | None = None
    password: str | None = None

    @property
    def safe_url(self) -> str:
        return self.url

    @property
    def is_socks(self) -> bool:
        return self.url.startswith("socks")


def choose_proxy(endpoint: str, env: Mapping[str, str], override: str = "") -> ProxyChoice | None:
    """The proxy for ``endpoint``, or None to connect directly.

    Raises ProxyConfigError for a value that names a proxy but cannot be used:
    sending directly instead would go around a proxy the user asked for.
    """
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    if override == DIRECT or is_loopback_host(host):
        return None
    if override:
        choice = _parse(override, "the proxy policy option")
        # Credentials only ever come from the environment (never stored).
        for raw in _env_candidates(scheme, env):
            from_env = _parse(raw, "the proxy environment variable")
            if from_env.url == choice.url and from_env.username is not None:
                return from_env
        return choice
    if bypasses(host, port, _get(env, "no_proxy")):
        return None
    for raw in _env_candidates(scheme, env):
        return _parse(raw, "the proxy environment variable")
    return None


def _get(env: Mapping[str, str], name: str) -> str:
    return env.get(name.lower()) or env.get(name.upper()) or ""


def _env_candidates(scheme: str, env: Mapping[str, str]) -> list[str]:
    if scheme == "https":
        own = _get(env, "https_proxy")
    elif "REQUEST_METHOD" in env:
        own = env.get("http_proxy", "")  # httpoxy: never the upper-case one under CGI
    else:
        own = _get(env, "http_proxy")
    return [v.strip() for v in (own, _get(env, "all_proxy")) if v.strip()][:1]


def _parse(raw: str, where: str) -> ProxyChoice:
    text = raw.strip()
    if "://" not in text:
        text = "http://" + text  # curl and requests read a bare host:port as http
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ProxyConfigError(f"{where} is not a valid proxy URL") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES or not parts.hostname:
        raise ProxyConfigError(f"{where} must be an http, https or socks proxy URL with a host")
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme, 1080)
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return ProxyChoice(f"{scheme}://{host}:{port}", user, password)


def bypasses(host: str, port: int, no_proxy: str) -> bool:
    """True when ``NO_PROXY`` says ``host`` (at ``port``) is reached directly."""
    host = host.lower().strip("[]").rstrip(".")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for entry in no_proxy.replace(" ", ",").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, entry_port = entry, None
        if entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry):
            name, _, tail = entry.rpartition(":")
            if tail.isdigit():
                entry_port = int(tail)
            else:
                name = entry
        if entry_port is not None and entry_port != port:
            continue
        name = name.strip("[]").lstrip(".").rstrip(".")
        if ip is not None:
            try:
                if ip in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def redact(text: str, choice: ProxyChoice | None) -> str:
    """``text`` with the proxy's credentials (raw and percent-encoded) replaced by ***."""
    if choice is None:
        return text
    from urllib.parse import quote

    # A user name of a letter or two would mangle ordinary words; it is no secret.
    for secret in (choice.password, choice.username if len(choice.username or "") >= 3 else None):
        if secret:
            for form in {secret, quote(secret, safe=""), quote(secret)}:
                text = text.replace(form, "***")
    return text
