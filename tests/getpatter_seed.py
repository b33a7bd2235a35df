"""getpatter 0.7.0's own telemetry modules, loaded as the oracle for the parity tests.

How it is loaded (and why): the wheel needs Python >= 3.11, and importing the
top-level ``getpatter`` package pulls fastapi, uvicorn, twilio, openai,
websockets and cryptography. Its ``getpatter/telemetry/`` modules import only
the stdlib (``client.py`` imports httpx lazily, inside a send). So:

1. ``pip download --no-deps --require-hashes`` fetches the pinned wheel
   (tests/data/getpatter-0.7.0.txt holds the version and its sha256) into
   ``.cache/getpatter-0.7.0/`` at the repository root, once;
2. only ``getpatter/telemetry/*.py`` is unpacked from it;
3. a stub parent package ``getpatter`` (a bare module whose ``__path__`` is the
   unpacked directory, ``__version__ = "0.7.0"``) goes into ``sys.modules``,
   and the real ``getpatter.telemetry.*`` modules import under it unchanged.

scripts/test runs ``python -m tests.getpatter_seed`` on a fresh machine, so the
fetch happens before pytest starts; the tests fetch lazily too. On Python 3.10
the tests skip with ``SKIP_REASON``. A failed download fails the tests (it
never skips them): CI must not pass without its oracle.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VERSION = "0.7.0"
REQUIREMENT = ROOT / "tests" / "data" / f"getpatter-{VERSION}.txt"
CACHE = ROOT / ".cache" / f"getpatter-{VERSION}"
WHEEL = f"getpatter-{VERSION}-py3-none-any.whl"
AVAILABLE = sys.version_info >= (3, 11)
SKIP_REASON = (
    f"getpatter {VERSION} (the oracle) needs Python >= 3.11; "
    f"this is {sys.version_info.major}.{sys.version_info.minor}"
)
MODULES = (
    "env",
    "stack",
    "install_id",
    "consent",
    "environment",
    "events",
    "client",
    "call_metrics",
)


def fetch() -> Path:
    """The unpacked ``getpatter/`` directory, downloading the pinned wheel if needed."""
    pkg = CACHE / "getpatter"
    if (pkg / "telemetry" / "events.py").exists():
        return pkg
    wheel = CACHE / WHEEL
    if not wheel.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "-r",
            str(REQUIREMENT),
            "-d",
            str(CACHE),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0 or not wheel.exists():
            raise RuntimeError(
                f"could not fetch the oracle wheel {WHEEL} ({' '.join(cmd)}):\n{proc.stderr}"
            )
    tmp = CACHE / "unpack.tmp"
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith("getpatter/telemetry/") and name.endswith(".py"):
                zf.extract(name, tmp)
    # Renamed into place whole, so a half-unpacked tree is never taken for the oracle.
    (tmp / "getpatter").rename(pkg)
    tmp.rmdir()
    return pkg


def load() -> dict[str, Any]:
    """``{"events": module, "stack": module, ...}``: the seed's telemetry modules."""
    if not AVAILABLE:
        raise RuntimeError(SKIP_REASON)
    pkg = fetch()
    parent = sys.modules.get("getpatter")
    if parent is None:
        parent = types.ModuleType("getpatter")
        parent.__path__ = [str(pkg)]
        parent.__version__ = VERSION  # type: ignore[attr-defined]  # what cli/client read
        sys.modules["getpatter"] = parent
    return {m: importlib.import_module(f"getpatter.telemetry.{m}") for m in MODULES}


if __name__ == "__main__":
    if not AVAILABLE:
        print(f"== oracle: {SKIP_REASON}: skipped")
    else:
        print(f"== oracle: getpatter {VERSION} telemetry at {fetch()}")


def call_site_function(module: str, name: str) -> Any:
    """A stdlib-only helper defined in one of the SDK's heavy modules (e.g. the
    count buckets in ``getpatter/client.py``), compiled alone from the wheel's source.

    Importing ``getpatter.client`` would pull fastapi and twilio; the function
    bodies themselves use nothing but builtins, so they are taken verbatim.
    """
    import ast

    with zipfile.ZipFile(fetch().parent / WHEEL) as zf:
        source = zf.read(f"getpatter/{module}.py").decode("utf-8")
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            namespace: dict[str, Any] = {}
            exec(compile(ast.Module([node], []), f"getpatter/{module}.py", "exec"), namespace)
            return namespace[name]
    raise LookupError(f"{name} is not defined in getpatter/{module}.py")


def call_site_source(module: str) -> str:
    """The text of one of the SDK's modules, read from the wheel (never imported)."""
    with zipfile.ZipFile(fetch().parent / WHEEL) as zf:
        return zf.read(f"getpatter/{module}.py").decode("utf-8")
