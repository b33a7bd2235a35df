"""Which certificate authorities the uploader trusts.

In order, the first that is set wins:

1. ``ca_certs`` given in code, or ``TELESPOOL_CA_BUNDLE``: that file only;
2. ``SSL_CERT_FILE`` and/or ``SSL_CERT_DIR`` (OpenSSL's, curl's and pip's
   variables): only the CAs they name, as curl does, so a corporate bundle is
   used on every platform, not just where OpenSSL happens to read them;
3. the operating system's trust store through ``truststore`` (as pip does):
   macOS Keychain and Windows certificate store, where a company's MDM puts
   its TLS-inspection CA and where Python's own default context does not look;
4. Python's default context (OpenSSL's system paths) when truststore is absent.

A file or directory that cannot be read raises ``TLSConfigError``: the caller
counts it and backs off (never sends with weaker trust instead).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping

__all__ = ["CA_BUNDLE_ENV", "TLSConfigError", "tls_context"]

CA_BUNDLE_ENV = "TELESPOOL_CA_BUNDLE"


class TLSConfigError(ValueError):
    """A configured CA file or directory that cannot be used."""


def tls_context(ca_certs: str | None, env: Mapping[str, str]) -> ssl.SSLContext:
    """A verifying client context (CERT_REQUIRED, host names checked)."""
    cafile = ca_certs or env.get(CA_BUNDLE_ENV) or None
    capaths: list[str] = []
    if cafile is None:
        cafile = env.get("SSL_CERT_FILE") or None
        # A path list, as OpenSSL reads it: every entry is searched.
        capaths = [d for d in (env.get("SSL_CERT_DIR") or "").split(os.pathsep) if d]
    if cafile is not None or capaths:
        try:
            ctx = ssl.create_default_context(cafile=cafile, capath=capaths[0] if capaths else None)
            for capath in capaths[1:]:
                ctx.load_verify_locations(capath=capath)
            return ctx
        except (OSError, ssl.SSLError) as exc:
            what = "CA bundle" if cafile is not None else "CA directory"
            raise TLSConfigError(f"{what} cannot be loaded: {exc}") from exc
    try:
        import truststore
    except ImportError:
        return ssl.create_default_context()
    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
