"""The schema the format's own rule tests run on.

It is the reference schema as it was at v5 (before it became getpatter's
telemetry): one file that uses every property type and the ``known`` model
rule, so the sanitizer's rules keep a fixed subject while the reference
schema follows the SDK it reproduces.
"""

from __future__ import annotations

from pathlib import Path

from spool import Schema

FIXTURE_PATH = Path(__file__).with_name("data") / "format_fixture_v5.json"
FIXTURE = Schema.load(FIXTURE_PATH)
