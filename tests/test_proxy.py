"""The uploader behind a proxy: a real proxy.py process, CONNECT for https.

The endpoint's host name, ``telemetry.test``, resolves only inside the proxy
(its plugin maps it to 127.0.0.1; see tests/proxy_plugin.py), so an event
that arrives went through the proxy. Nothing is sent anywhere but loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from spool import Telemetry
from spool._errors import ConfigError
from tests.hosts import host_env
from tests.proxy_plugin import PROXY_ONLY_HOST
from tests.servers import (
    REPO,
    ScriptedServer,
    fill,
    fixed,
    meta,
    queued,
    refused_port,
    run_uploader,
    start_uploader,
    wait_for,
)
from uploader import drain
from uploader._proxy import DIRECT, ProxyConfigError, bypasses, choose_proxy

pytest.importorskip("proxy", reason="proxy.py (PyPI proxy-py) is in the test extra")

FAST = {"connect_timeout_s": 2.0, "read_timeout_s": 2.0}
SECRET = "s3cr3t-Pw"
USER = "telemetry-user"


@dataclass
class Proxy:
    port: int
    log: Path

    def url(self, auth: str = "") -> str:
        return f"http://{auth + '@' if auth else ''}127.0.0.1:{self.port}"

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


@contextlib.contextmanager
def proxy_py(tmp_path: Path, basic_auth: str | None = None) -> Iterator[Proxy]:
    """Run proxy.py as a real subprocess on a free loopback port."""
    port_file = tmp_path / "proxy.port"
    log = tmp_path / "proxy.log"
    args = [
        sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0",
        "--port-file", str(port_file), "--num-workers", "1", "--num-acceptors", "1",
        "--plugins", "tests.proxy_plugin.LoopbackOnly",
    ]  # fmt: skip
    if basic_auth:
        args += ["--basic-auth", basic_auth]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TELESPOOL_TEST_PROXY_LOG": str(log)}
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(tmp_path)
    )
    try:

        def ready() -> bool:
            # Ready handshake: proxy.py writes the port file once it listens.
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise AssertionError(f"proxy.py did not start: {err}")
            return port_file.exists() and bool(port_file.read_text().strip())

        wait_for(ready, timeout=60)  # the timeout is a hang guard only
        yield Proxy(int(port_file.read_text()), log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(tmp_path: Path, ca: trustme.CA) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@contextlib.contextmanager
def proxy_only_endpoint(ca: trustme.CA) -> Iterator[tuple[ScriptedServer, str]]:
    """An https server on loopback whose certificate names ``telemetry.test``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(PROXY_ONLY_HOST).configure_cert(ctx)
    with ScriptedServer(fixed(200), tls=ctx) as server:
        yield server, f"https://{PROXY_ONLY_HOST}:{server.port}/v1/events"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in host_env().items() if "proxy" not in k.lower()}
    env.pop("SSL_CERT_DIR", None)
    env.update(extra)
    return env


# -- through a real proxy ---------------------------------------------------------------------
def test_an_endpoint_only_the_proxy_can_resolve_is_reached_through_connect(
    tmp_path: Path, state_dir: Path, ca: trustme.CA, ca_file: str
) -> None:
    with proxy_py(tmp_path) as proxy, proxy_only_endpoint(ca) as (server, endpoint):
        fill(state_dir, 30, endpoint, **FAST)
        done = run_uploader(state_dir, env=_env(HTTPS_PROXY=proxy.url(), SSL_CERT_FILE=ca_file))
        assert done["outcome"] == "empty" and done["sent"] == 30
        assert len(set(server.event_ids)) == 30
        seen = proxy.requests()
    assert seen and all(r["method"] == "CONNECT" for r in seen)
    assert {(r["host"], r["port"]) for r in seen} == {(PROXY_ONLY_HOST, server.port)}


@pytest.mark.parametrize("var", ["https_proxy", "ALL_PROXY", "all_proxy"])
def test_either_case_and_all_proxy_are_honoured(
    tmp_path: Path, state_dir: Path, ca: trustme.CA, ca_file: str, var: str
) -> None:
    with proxy_py(tmp_path) as proxy, proxy_only_endpoint(ca) as (_, endpoint):
        fill(state_dir, 5, endpoint, **FAST)
        result = drain(state_dir, env=_env(**{var: proxy.url(), "SSL_CERT_FILE": ca_file}))
        assert result.outcome == "empty" and result.sent == 5, result
        assert proxy.requests()[0]["method"] == "CONNECT"


def test_proxy_credentials_authenticate_and_never_reach_the_spool_logs_or_status(
    tmp_path: Path, state_dir: Path, ca: trustme.CA, ca_file: str
) -> None:
    with proxy_py(tmp_path, basic_auth=f"{USER}:{SECRET}") as proxy:
        with proxy_only_endpoint(ca) as (_, endpoint):
            fill(state_dir, 10, endpoint, **FAST)
            # A wrong password first: refused by the proxy (407), counted, retried later.
            wrong = _env(HTTPS_PROXY=proxy.url(f"{USER}:{SECRET}-wrong"), SSL_CERT_FILE=ca_file)
            with start_uploader(state_dir, env=wrong) as bad:
                out, err = bad.proc.communicate(timeout=60)
            assert json.loads(out.splitlines()[-1])["outcome"] == "backoff"
            assert meta(state_dir, "upload")["last_error"] == "proxy"
            # The percent-encoded form is what a URL carries.
            good = _env(HTTPS_PROXY=proxy.url(f"{USER}:{SECRET.replace('-', '%2D')}"))
            done = run_uploader(state_dir, "--force", env={**good, "SSL_CERT_FILE": ca_file})
            assert done["outcome"] == "empty" and done["sent"] == 10
            assert all(r["auth"] for r in proxy.requests())
        t = Telemetry("demo", "1.0.0", state_dir=state_dir, endpoint=endpoint, allow_in_ci=True)
        status = json.dumps(t.status())
        t.close()
    leaked = [out, err, status, json.dumps(meta(state_dir, "upload"))]
    leaked += [p.read_bytes().decode("latin-1") for p in state_dir.iterdir() if p.is_file()]
    assert not [text for text in leaked if SECRET in text or "%2D" in text.replace("%2d", "%2D")]


def test_a_proxy_set_in_code_is_used_and_stored_without_credentials(
    tmp_path: Path, state_dir: Path, ca: trustme.CA, ca_file: str
) -> None:
    with (
        proxy_py(tmp_path, basic_auth=f"{USER}:{SECRET}") as proxy,
        proxy_only_endpoint(ca) as (_, endpoint),
    ):
        fill(state_dir, 5, endpoint, proxy=proxy.url(), **FAST)
        # The code names the proxy; the environment's URL for it carries the credentials.
        env = _env(HTTPS_PROXY=proxy.url(f"{USER}:{SECRET}"), SSL_CERT_FILE=ca_file)
        done = run_uploader(state_dir, env=env)
        assert done["outcome"] == "empty" and done["sent"] == 5
    assert meta(state_dir, "config")["policy"]["proxy"] == proxy.url()


def test_a_proxy_override_with_credentials_is_refused_without_echoing_them(
    state_dir: Path,
) -> None:
    with pytest.raises(ConfigError) as info:
        Telemetry("demo", "1.0.0", state_dir=state_dir, proxy=f"http://me:{SECRET}@proxy:3128")
    assert SECRET not in str(info.value)
    assert not state_dir.exists()


def test_an_unusable_proxy_value_is_counted_and_nothing_goes_around_it(
    state_dir: Path, ca: trustme.CA, ca_file: str
) -> None:
    with proxy_only_endpoint(ca) as (server, endpoint):
        fill(state_dir, 5, endpoint, **FAST)
        env = _env(HTTPS_PROXY="ftp://proxy.corp:21", SSL_CERT_FILE=ca_file)
        result = drain(state_dir, env=env)
        assert server.requests == 0
    assert result.outcome == "backoff"
    assert meta(state_dir, "upload")["errors"] == {"proxy_config": 1}
    assert queued(state_dir) == 5


def test_a_proxy_that_is_down_is_counted_as_a_proxy_error(
    state_dir: Path, ca: trustme.CA, ca_file: str
) -> None:
    with proxy_only_endpoint(ca) as (_, endpoint):
        fill(state_dir, 5, endpoint, **FAST)
        env = _env(HTTPS_PROXY=f"http://127.0.0.1:{refused_port()}", SSL_CERT_FILE=ca_file)
        result = drain(state_dir, env=env)
    assert result.outcome == "backoff"
    assert meta(state_dir, "upload")["errors"] == {"proxy": 1}
    assert queued(state_dir) == 5


# -- which proxy, by the rules of curl and requests ------------------------------------------
URL = "https://api.example.com/v1/events"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HTTPS_PROXY": "http://p:3128"}, "http://p:3128"),
        ({"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2"}, "http://lower:1"),
        ({"HTTP_PROXY": "http://p:3128"}, None),  # http's proxy is not https's
        ({"ALL_PROXY": "http://all:8080"}, "http://all:8080"),
        ({"HTTPS_PROXY": "http://own:1", "ALL_PROXY": "http://all:2"}, "http://own:1"),
        ({"HTTPS_PROXY": "proxy.corp:3128"}, "http://proxy.corp:3128"),  # bare host:port
        ({"HTTPS_PROXY": "https://secure.corp"}, "https://secure.corp:443"),
        ({"HTTPS_PROXY": ""}, None),
    ],
)
def test_the_proxy_variable_for_the_scheme_is_chosen(
    env: dict[str, str], expected: str | None
) -> None:
    choice = choose_proxy(URL, env)
    assert (choice.url if choice else None) == expected


@pytest.mark.parametrize(
    ("no_proxy", "bypassed"),
    [
        ("*", True),
        ("example.com", True),  # a domain matches its sub-domains
        (".example.com", True),  # a leading dot is ignored
        ("EXAMPLE.COM", True),
        ("ample.com", False),  # a suffix of a label is not a domain match
        ("other.org, api.example.com", True),
        ("api.example.com:443", True),
        ("api.example.com:8443", False),
        ("", False),
    ],
)
def test_no_proxy_matches_hosts_domains_and_star(no_proxy: str, bypassed: bool) -> None:
    assert bypasses("api.example.com", 443, no_proxy) is bypassed
    for name in ("no_proxy", "NO_PROXY"):
        env = {"HTTPS_PROXY": "http://p:3128", name: no_proxy}
        assert (choose_proxy(URL, env) is None) is bypassed, name


def test_no_proxy_matches_ip_addresses_and_ranges() -> None:
    assert bypasses("10.1.2.3", 443, "10.0.0.0/8")
    assert bypasses("192.168.0.7", 443, "192.168.0.7")
    assert not bypasses("192.168.0.8", 443, "192.168.0.7,10.0.0.0/8")
    assert bypasses("::1", 443, "[::1]")


def test_loopback_and_direct_never_use_a_proxy() -> None:
    env = {"HTTPS_PROXY": "http://p:3128", "HTTP_PROXY": "http://p:3128"}
    assert choose_proxy("http://127.0.0.1:9/v1/events", env) is None
    assert choose_proxy("https://localhost:9/v1/events", env) is None
    assert choose_proxy(URL, env, DIRECT) is None


def test_the_upper_case_http_proxy_is_ignored_under_cgi() -> None:
    env = {"HTTP_PROXY": "http://attacker:1", "REQUEST_METHOD": "GET"}
    assert choose_proxy("http://api.example.com/", env) is None


def test_a_code_proxy_takes_credentials_only_from_the_environment_for_the_same_proxy() -> None:
    env = {"HTTPS_PROXY": f"http://{USER}:{SECRET}@corp:3128"}
    same = choose_proxy(URL, env, "http://corp:3128")
    assert same is not None and same.password == SECRET and SECRET not in same.safe_url
    other = choose_proxy(URL, env, "http://elsewhere:3128")
    assert other is not None and other.password is None


def test_a_bad_proxy_value_raises_a_config_error_without_the_value() -> None:
    with pytest.raises(ProxyConfigError) as info:
        choose_proxy(URL, {"HTTPS_PROXY": f"http://{USER}:{SECRET}@corp:notaport"})
    assert SECRET not in str(info.value)
