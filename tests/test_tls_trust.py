"""Which CAs the uploader trusts: SSL_CERT_FILE, SSL_CERT_DIR, the OS store.

Each test runs a real TLS server on loopback with a certificate from a fresh
trustme CA, and a real uploader process whose only way to trust it is the
variable under test (TELESPOOL_CA_BUNDLE and the machine's own SSL_CERT_*
are removed from its environment).
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
import trustme

from tests.hosts import host_env
from tests.servers import ScriptedServer, fill, fixed, meta, queued, run_uploader
from uploader._tls import tls_context

FAST = {"connect_timeout_s": 2.0, "read_timeout_s": 2.0}


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return ctx


def _env(**extra: str) -> dict[str, str]:
    env = host_env()
    for var in ("SSL_CERT_FILE", "SSL_CERT_DIR", "TELESPOOL_CA_BUNDLE"):
        env.pop(var, None)
    env.update(extra)
    return env


def test_a_ca_given_only_through_ssl_cert_file_delivers(tmp_path: Path, state_dir: Path) -> None:
    ca = trustme.CA()
    bundle = tmp_path / "corp-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with ScriptedServer(fixed(200), tls=_server_context(ca)) as server:
        fill(state_dir, 20, server.url, **FAST)
        done = run_uploader(state_dir, env=_env(SSL_CERT_FILE=str(bundle)))
    assert done["outcome"] == "empty" and done["sent"] == 20
    assert len(set(server.event_ids)) == 20


def test_a_wrong_ca_in_ssl_cert_file_fails_and_is_counted(tmp_path: Path, state_dir: Path) -> None:
    bundle = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    with ScriptedServer(fixed(200), tls=_server_context(trustme.CA())) as server:
        fill(state_dir, 20, server.url, **FAST)
        done = run_uploader(state_dir, env=_env(SSL_CERT_FILE=str(bundle)))
        assert server.envelopes == []
    assert done["outcome"] == "backoff"
    upload = meta(state_dir, "upload")
    assert upload["errors"] == {"tls": 1} and upload["last_error"] == "tls"
    assert queued(state_dir) == 20


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to rehash")
@pytest.mark.parametrize("listed_after_another", [False, True], ids=["alone", "second-in-list"])
def test_a_ca_directory_given_through_ssl_cert_dir_delivers(
    tmp_path: Path, state_dir: Path, listed_after_another: bool
) -> None:
    ca = trustme.CA()
    certs = tmp_path / "certs"
    certs.mkdir()
    ca.cert_pem.write_to_path(str(certs / "corp-ca.pem"))
    subprocess.run(["openssl", "rehash", str(certs)], check=True, capture_output=True)
    cert_dir = str(certs)
    if listed_after_another:  # OpenSSL reads SSL_CERT_DIR as a path list, every entry
        (tmp_path / "empty").mkdir()
        cert_dir = os.pathsep.join([str(tmp_path / "empty"), cert_dir])
    with ScriptedServer(fixed(200), tls=_server_context(ca)) as server:
        fill(state_dir, 5, server.url, **FAST)
        done = run_uploader(state_dir, env=_env(SSL_CERT_DIR=cert_dir))
    assert done["outcome"] == "empty" and done["sent"] == 5


def test_an_unreadable_ca_bundle_is_counted_and_nothing_is_sent(
    tmp_path: Path, state_dir: Path
) -> None:
    with ScriptedServer(fixed(200), tls=_server_context(trustme.CA())) as server:
        fill(state_dir, 5, server.url, **FAST)
        done = run_uploader(state_dir, env=_env(SSL_CERT_FILE=str(tmp_path / "missing.pem")))
        assert server.requests == 0
    assert done["outcome"] == "backoff"
    assert meta(state_dir, "upload")["errors"] == {"tls_config": 1}
    assert queued(state_dir) == 5


def test_without_ca_variables_the_os_trust_store_is_used(state_dir: Path) -> None:
    truststore = pytest.importorskip("truststore")
    assert isinstance(tls_context(None, {}), truststore.SSLContext)
    # The OS store does not know a CA made a moment ago.
    with ScriptedServer(fixed(200), tls=_server_context(trustme.CA())) as server:
        fill(state_dir, 5, server.url, **FAST)
        done = run_uploader(state_dir, env=_env())
        assert server.envelopes == []
    assert done["outcome"] == "backoff"
    assert meta(state_dir, "upload")["errors"] == {"tls": 1}


def test_an_explicit_bundle_wins_over_ssl_cert_file(tmp_path: Path) -> None:
    ca = trustme.CA()
    mine = tmp_path / "mine.pem"
    ca.cert_pem.write_to_path(str(mine))
    ctx = tls_context(None, {"TELESPOOL_CA_BUNDLE": str(mine), "SSL_CERT_FILE": "/missing"})
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1
