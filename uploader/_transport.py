"""The HTTP transport: one POST, classified into a ``Result``. Never raises.

urllib3 with explicit connect/read timeouts, ``retries=False`` and no
redirects (the drain loop owns retries), TLS verified against the system store
or ``TELESPOOL_CA_BUNDLE``. Plain http is refused unless the host is loopback.

urllib3's read timeout bounds each ``recv``, not the request: a server that
drips one byte per second would hold a POST forever. On POSIX a per-request
deadline (``setitimer``) interrupts it. Windows has no ``setitimer``; there
only the per-recv timeouts apply (untested branch).
"""

from __future__ import annotations

import os
import signal
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import FrameType

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from spool._endpoint import validate_endpoint

from ._backoff import parse_retry_after
from ._result import Result, Retry, classify_status

__all__ = ["CA_BUNDLE_ENV", "Transport"]

CA_BUNDLE_ENV = "TELESPOOL_CA_BUNDLE"
# A response body is a few bytes of status; more than this is not read.
_MAX_RESPONSE_BYTES = 64 * 1024
_USER_AGENT = "telespool-uploader/0.1"


class _DeadlineExceeded(Exception):
    """Raised by the interval timer inside a POST that ran past its deadline."""


class Transport:
    def __init__(
        self,
        endpoint: str,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        ca_certs: str | None = None,
    ) -> None:
        # Raises spool.ConfigError (a ValueError) for http to a non-loopback host.
        self.endpoint = validate_endpoint(endpoint) or ""
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        ca = ca_certs if ca_certs is not None else os.environ.get(CA_BUNDLE_ENV) or None
        self._pool = urllib3.PoolManager(
            num_pools=1,
            maxsize=1,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca,
            retries=False,
        )

    def post(self, body: bytes, headers: Mapping[str, str], budget_s: float) -> Result:
        """POST ``body``; the whole request is bounded by timeouts and ``budget_s``."""
        connect = max(min(self.connect_timeout_s, budget_s), 0.01)
        read = max(min(self.read_timeout_s, budget_s), 0.01)
        total = max(min(self.connect_timeout_s + self.read_timeout_s, budget_s), 0.02)
        all_headers = {"User-Agent": _USER_AGENT, **headers}
        try:
            with _deadline(total):
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
                    resp.read(_MAX_RESPONSE_BYTES, decode_content=False)
                    complete = resp.read(1, decode_content=False) == b""
                finally:
                    if complete:
                        resp.release_conn()
                    else:
                        # Unread bytes left: the connection cannot be reused.
                        resp.close()
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except _DeadlineExceeded:
            self._pool.clear()
            return Retry("timeout", detail=f"request exceeded {total:.3g}s")
        except Exception as exc:  # classified, never raised: the loop decides
            self._pool.clear()
            return _classify_exception(exc)
        return classify_status(status, retry_after)

    def close(self) -> None:
        self._pool.clear()


def _classify_exception(exc: BaseException) -> Retry:
    detail = f"{type(exc).__name__}: {exc}"[:300]
    reason = getattr(exc, "reason", None)
    chain = [exc, reason, exc.__cause__, exc.__context__]
    if any(isinstance(e, (SSLError, ssl.SSLError, ssl.CertificateError)) for e in chain):
        return Retry("tls", detail=detail)
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


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise _DeadlineExceeded in this thread after ``seconds`` (POSIX main thread only)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise _DeadlineExceeded()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
