"""The HTTP transport: one POST, classified into a ``Result``. Never raises.

urllib3 with explicit connect/read timeouts, ``retries=False`` and no
redirects (the drain loop owns retries). Trust comes from ``_tls`` (a given
bundle, ``SSL_CERT_FILE``/``SSL_CERT_DIR``, or the OS store), the route from
``_proxy`` (``HTTPS_PROXY``/``NO_PROXY``... or the ``proxy`` policy option,
CONNECT for https). Plain http is refused unless the host is loopback.

urllib3's read timeout bounds each ``recv``, not the request: a server that
drips one byte per second would hold a POST forever. A watchdog thread
(``_watchdog``) shuts the socket down at the request's deadline, on every
platform and from any thread; no signal is involved.

Proxy credentials travel only in the ``Proxy-Authorization`` header: every
error detail this module returns (stored as ``last_error``, shown by
``status()``) has them redacted.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from spool._policy import ERROR_DETAIL_CHARS, MAX_RESPONSE_BYTES, MIN_REQUEST_TIMEOUT_S
from spool.install._endpoint import validate_endpoint

from ._backoff import parse_retry_after
from ._proxy import ProxyChoice, ProxyConfigError, choose_proxy, redact
from ._result import Result, Retry, classify_status
from ._tls import CA_BUNDLE_ENV, TLSConfigError, tls_context
from ._watchdog import Watchdog

__all__ = ["CA_BUNDLE_ENV", "Transport"]

_USER_AGENT = "telespool-uploader/0.1"


class Transport:
    def __init__(
        self,
        endpoint: str,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        ca_certs: str | None = None,
        proxy: str = "",
        env: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        # Raises spool.ConfigError (a ValueError) for http to a non-loopback host.
        self.endpoint = validate_endpoint(endpoint) or ""
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.proxy: ProxyChoice | None = None
        self._watchdog = Watchdog()
        # A setting that cannot be used is user input: counted at every POST, never raised.
        self._config_error: Retry | None = None
        self._pool: urllib3.PoolManager | None = None
        try:
            self.proxy = choose_proxy(self.endpoint, env, proxy)
            self._pool = _pool_manager(self.proxy, tls_context(ca_certs, env), self._watchdog)
        except ProxyConfigError as exc:
            self._config_error = Retry("proxy_config", detail=str(exc))
        except TLSConfigError as exc:
            self._config_error = Retry("tls_config", detail=str(exc))
        except ImportError as exc:  # socks:// without PySocks installed
            self._config_error = Retry("proxy_config", detail=f"socks proxy: {exc}")

    def post(self, body: bytes, headers: Mapping[str, str], budget_s: float) -> Result:
        """POST ``body``; the whole request is bounded by timeouts and ``budget_s``."""
        if self._pool is None:
            assert self._config_error is not None
            return self._config_error
        floor = MIN_REQUEST_TIMEOUT_S
        connect = max(min(self.connect_timeout_s, budget_s), floor)
        read = max(min(self.read_timeout_s, budget_s), floor)
        total = max(min(self.connect_timeout_s + self.read_timeout_s, budget_s), 2 * floor)
        all_headers = {"User-Agent": _USER_AGENT, **headers}
        self._watchdog.arm(total)
        try:
            resp = self._pool.request(
                "POST",
                self.endpoint,
                body=body,
                headers=all_headers,
                timeout=urllib3.Timeout(connect=connect, read=read),
                retries=False,
                redirect=False,
                preload_content=False,
            )
            complete = False
            try:
                resp.read(MAX_RESPONSE_BYTES, decode_content=False)
                complete = resp.read(1, decode_content=False) == b""
            finally:
                if complete:
                    resp.release_conn()
                else:
                    # Unread bytes left: the connection cannot be reused.
                    resp.close()
            status = resp.status
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except Exception as exc:  # classified, never raised: the loop decides
            fired = self._watchdog.disarm()
            self._pool.clear()
            if fired:
                return Retry("timeout", detail=f"request exceeded {total:.3g}s")
            result = _classify_exception(exc)
            return Retry(result.error, detail=redact(result.detail, self.proxy))
        if self._watchdog.disarm():
            self._pool.clear()  # answered just in time; the socket is shut now
        return classify_status(status, retry_after)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.clear()
        self._watchdog.close()


def _pool_manager(
    proxy: ProxyChoice | None, context: ssl.SSLContext, watchdog: Watchdog
) -> urllib3.PoolManager:
    kw: dict[str, Any] = {
        "num_pools": 1,
        "maxsize": 1,
        "cert_reqs": "CERT_REQUIRED",
        "ssl_context": context,
        "retries": False,
    }
    manager: urllib3.PoolManager
    if proxy is None:
        manager = urllib3.PoolManager(**kw)
    elif proxy.is_socks:
        from urllib3.contrib.socks import SOCKSProxyManager  # needs PySocks

        manager = SOCKSProxyManager(
            proxy.url, username=proxy.username, password=proxy.password, **kw
        )
    else:
        proxy_headers = None
        if proxy.username is not None:
            auth = f"{proxy.username}:{proxy.password or ''}"
            proxy_headers = urllib3.make_headers(proxy_basic_auth=auth)
        manager = urllib3.ProxyManager(
            proxy.url,
            proxy_headers=proxy_headers,
            # An https proxy is verified with the same trust as the endpoint.
            proxy_ssl_context=context if proxy.url.startswith("https:") else None,
            **kw,
        )
    _watch_connections(manager, watchdog)
    return manager


def _watch_connections(manager: urllib3.PoolManager, watchdog: Watchdog) -> None:
    """Make every connection ``manager`` opens hand its socket to ``watchdog``."""
    pools: dict[str, Any] = {}
    classes: dict[str, Any] = dict(manager.pool_classes_by_scheme)
    for scheme, pool_cls in classes.items():
        base: Any = pool_cls.ConnectionCls

        def _new_conn(self: Any, _base: Any = base) -> Any:
            sock = _base._new_conn(self)
            watchdog.watch(sock)
            return sock

        conn_cls = type(f"Watched{base.__name__}", (base,), {"_new_conn": _new_conn})
        pools[scheme] = type(pool_cls.__name__, (pool_cls,), {"ConnectionCls": conn_cls})
    manager.pool_classes_by_scheme = pools


def _classify_exception(exc: BaseException) -> Retry:
    detail = f"{type(exc).__name__}: {exc}"[:ERROR_DETAIL_CHARS]
    reason = getattr(exc, "reason", None)
    chain = [exc, reason, exc.__cause__, exc.__context__, getattr(exc, "original_error", None)]
    if any(isinstance(e, (SSLError, ssl.SSLError, ssl.CertificateError)) for e in chain):
        return Retry("tls", detail=detail)
    # Before "refused": a proxy that is down or refuses us (407) is a proxy problem.
    if isinstance(exc, ProxyError):
        return Retry("proxy", detail=detail)
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or (
        isinstance(exc, NewConnectionError) and "refused" in str(exc).lower()
    ):
        return Retry("refused", detail=detail)
    # After "refused": urllib3's NewConnectionError subclasses ConnectTimeoutError.
    if any(isinstance(e, ConnectTimeoutError) for e in chain):
        return Retry("connect_timeout", detail=detail)
    if any(isinstance(e, (ReadTimeoutError, TimeoutError)) for e in chain):
        return Retry("timeout", detail=detail)
    if any(isinstance(e, (ConnectionResetError, BrokenPipeError)) for e in chain) or isinstance(
        exc, ProtocolError
    ):
        return Retry("reset", detail=detail)
    return Retry("network", detail=detail)
