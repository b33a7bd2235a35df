"""A proxy.py plugin for tests: names only the proxy can resolve, loopback only.

``telemetry.test`` resolves to 127.0.0.1 inside the proxy and nowhere else (the
test process has no such name), so a request that reaches the test server went
through the proxy. Any other destination that is not loopback is refused before
a connection is made: traffic never leaves the machine. Every request line the
proxy sees is appended to the file named by ``TELESPOOL_TEST_PROXY_LOG`` as
JSON (method, host, port, whether it carried Proxy-Authorization).
"""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Any

from proxy.http.exception import HttpRequestRejected
from proxy.http.proxy import HttpProxyBasePlugin

PROXY_ONLY_HOST = "telemetry.test"


def _loopback(host: str) -> bool:
    if host in ("localhost", PROXY_ONLY_HOST):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoopbackOnly(HttpProxyBasePlugin):
    def resolve_dns(self, host: str, port: int) -> tuple[str | None, Any]:
        if host == PROXY_ONLY_HOST:
            return "127.0.0.1", None
        return None, None

    def before_upstream_connection(self, request: Any) -> Any:
        host = (request.host or b"").decode()
        path = os.environ.get("TELESPOOL_TEST_PROXY_LOG")
        if path:
            with open(path, "a", encoding="utf-8") as f:
                record = {
                    "method": (request.method or b"").decode(),
                    "host": host,
                    "port": request.port,
                    "auth": request.has_header(b"proxy-authorization"),
                }
                f.write(json.dumps(record) + "\n")
        if not _loopback(host):
            raise HttpRequestRejected(status_code=403, reason=b"loopback only")
        return request
