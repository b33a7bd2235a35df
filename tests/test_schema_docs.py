"""docs/schema.md is generated from the reference schema and must not go stale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from spool import Schema

ROOT = Path(__file__).resolve().parent.parent


def test_docs_schema_md_matches_the_reference_schema() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_schema_docs.py"), "--check"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_docs_schema_md_names_every_event_and_property() -> None:
    text = (ROOT / "docs" / "schema.md").read_text(encoding="utf-8")
    schema = Schema.reference()
    assert schema.hash in text
    for event, props in schema.props.items():
        assert f"### `{event}`" in text
        for prop in props:
            assert f"| `{prop}` |" in text
