"""The house rules of the package layout, checked on the source (docs: DESIGN.md).

- ``spool`` (the host's call path) never imports ``uploader`` (urllib3, filelock).
- No import circles between modules: counting imports that run at module load,
  not those inside functions or under ``TYPE_CHECKING``.
- No module over 400 lines.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("spool", "uploader")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _load_time_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules ``name`` imports when it is loaded."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)

    visit(tree.body)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _load_time_imports(name, path, known) for name, path in mods.items()}


def test_spool_never_imports_uploader() -> None:
    for name, deps in _graph().items():
        if name.split(".")[0] == "spool":
            assert not [d for d in deps if d.split(".")[0] == "uploader"], name


def test_no_import_circles() -> None:
    graph = _graph()
    # A package's __init__ importing its own submodules is not a circle.
    edges = {
        n: {d for d in deps if not n.startswith(d + ".") and not d.startswith(n + ".")}
        for n, deps in graph.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in sorted(edges.get(n, ())):
            if state.get(d) == 1:
                cycle = [*stack[stack.index(d) :], d]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if d not in state:
                walk(d)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            walk(n)


# Where the code names a loss: a literal reason passed to one of the counting doors.
_COUNTED = re.compile(
    r"""(?:_count|count|\.add|\.error|note_error|add_drops\(\{|bump_drops\(conn,|drop_range\([^)]*?,)"""
    r"""\(?\s*(ERROR_PREFIX \+ |f"\{ERROR_PREFIX\})?"([a-z_]+)["{]"""
)


def test_every_reason_the_code_counts_is_in_the_catalogue() -> None:
    from spool._losses import DROP_REASONS, ERROR_KINDS

    found: dict[str, str] = {}
    for path in _modules().values():
        for m in _COUNTED.finditer(path.read_text()):
            is_error = bool(m.group(1)) or m.group(0).startswith(".error")
            found[("error." if is_error else "") + m.group(2)] = path.name
    assert len(found) >= 15, found  # the scan itself works
    unknown = {
        reason: where
        for reason, where in found.items()
        if not (
            reason.removeprefix("error.") in ERROR_KINDS
            if reason.startswith("error.")
            else reason in DROP_REASONS
        )
        and not reason.startswith("error.upload_")
    }
    assert not unknown, f"counted but not in spool/_losses.py's catalogue: {unknown}"
def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules().values()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_docs_layout_md_is_current() -> None:
    """docs/layout.md is generated from the modules' docstrings and sizes."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_layout_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
