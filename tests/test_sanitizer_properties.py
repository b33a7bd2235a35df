"""Property tests: whatever a host passes, only allowlisted data is stored."""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spool import Schema, Telemetry
from spool.install import _ids
from tests.format_fixture import FIXTURE
from tests.schema_oracle import allowed

SCHEMA = FIXTURE
EVENTS = sorted(SCHEMA.events)
PROPS = sorted({p for e in EVENTS for p in SCHEMA.props[e]})
CONTEXT_KEYS = set(SCHEMA.context("1.0.0"))
CONTEXT_JSON = json.dumps(SCHEMA.context("1.0.0"), separators=(",", ":"))[1:-1]
ALLOWED_VALUES = sorted(
    {v for e in EVENTS for s in SCHEMA.props[e].values() for v in s.get("values", [])}
    | {v for e in EVENTS for s in SCHEMA.props[e].values() for v in s.get("labels", [])}
)


class RaisingStr:
    def __str__(self) -> str:
        raise RuntimeError("boom")

    __repr__ = __str__


class EvilStr(str):
    """A str subclass whose every hook raises or lies."""

    def __str__(self) -> str:
        raise RuntimeError("boom")

    def __hash__(self) -> int:
        raise RuntimeError("boom")

    def __eq__(self, other: object) -> bool:
        return True


class EvilFloat(float):
    def __float__(self) -> float:
        raise RuntimeError("boom")


_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12)
_digits = st.integers(0, 10**12)
pii_text = st.one_of(
    st.builds(lambda u, d: f"{u}@{d}.com", _word, _word),  # e-mail addresses
    st.builds(lambda n: f"+1 ({n % 1000:03d}) {n % 10**7:07d}", _digits),  # phone numbers
    st.builds(lambda u, f: f"/home/{u}/{f}", _word, _word),  # file paths
    st.builds(lambda u, f: f"C:\\Users\\{u}\\{f}", _word, _word),
    st.builds(lambda p, k: f"{p}{k}", st.sampled_from(["sk-", "sk-ant-", "AKIA", "ghp_"]), _word),
    st.builds(lambda m: f"ft:gpt-4o:{m}", _word),  # fine-tune ids and org/model names
    st.builds(lambda o, m: f"{o}/{m}", _word, _word),
    st.text(max_size=20),
    st.integers(200, 3000).map(lambda n: "jane.doe@example.com /home/jane " * n),
    st.sampled_from(ALLOWED_VALUES),
    st.sampled_from(ALLOWED_VALUES).map(lambda v: v + "@evil.com"),
    st.sampled_from(["claude-opus-4-8", "nova-3", "gpt-4o", "1.2.3", "1.2.3+host.local"]),
)
scalars = st.one_of(
    pii_text,
    st.binary(max_size=64),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.builds(RaisingStr),
    st.text(max_size=10).map(EvilStr),
    st.floats(allow_nan=True).map(EvilFloat),
    st.tuples(pii_text, pii_text),
    st.tuples(st.sampled_from(["anthropic", "openai", "deepgram"]), pii_text),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=4,
)
names = st.one_of(st.sampled_from(EVENTS), pii_text, st.text(max_size=8).map(EvilStr))
keys = st.one_of(st.sampled_from(PROPS), st.sampled_from(sorted(CONTEXT_KEYS)), pii_text)
props_strategy = st.dictionaries(keys, values, max_size=8)

# The reference schema (getpatter's v8) uses the types the fixture does not:
# number, shaped string, id, enum aliases and the seed's model rule.
REFERENCE = Schema.reference()
REF_EVENTS = sorted(REFERENCE.events)
REF_PROPS = sorted({p for e in REF_EVENTS for p in REFERENCE.props[e]})
ref_scalars = st.one_of(
    scalars,
    st.text(alphabet="0123456789abcdef", min_size=31, max_size=33),  # near call_uid
    st.sampled_from(["cartesia_stt", "openai_tts", "Sonic_2-20250101", "4_6", "1_7", "error"]),
    st.floats(min_value=-2, max_value=2),
)
ref_names = st.one_of(st.sampled_from(REF_EVENTS), pii_text)
ref_keys = st.one_of(st.sampled_from(REF_PROPS), pii_text)
ref_props_strategy = st.dictionaries(ref_keys, ref_scalars, max_size=10)


def assert_only_allowlisted(event: str, clean: dict[str, Any], raw: dict[str, Any]) -> None:
    for key, value in clean.items():
        assert type(key) is str and key in SCHEMA.props[event], key
        assert allowed(SCHEMA, event, key, value, raw), (event, key, value)
        if isinstance(value, float):
            assert math.isfinite(value)


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(name=names, props=props_strategy)
def test_sanitize_stores_only_schema_keys_and_allowlisted_values(
    name: Any, props: dict[str, Any]
) -> None:
    counts: Counter[str] = Counter()

    def count(reason: str) -> None:
        counts[reason] += 1

    clean = SCHEMA.sanitize(name, props, count)
    if clean is None:
        assert counts, "a dropped event is always counted"
        return
    assert type(name) is str and name in SCHEMA.events
    assert_only_allowlisted(name, clean, props)
    # None is absent (not counted); every other removal is.
    removed = sum(1 for k, v in props.items() if k not in clean and v is not None)
    assert counts["unknown_property"] + counts["invalid_value"] >= removed
    json.dumps(clean, allow_nan=False)  # always encodable, strictly


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(name=names, props=props_strategy, tail=st.sampled_from(["", CONTEXT_JSON]))
def test_the_call_paths_fused_sanitizer_equals_sanitize_then_json(
    name: Any, props: dict[str, Any], tail: str
) -> None:
    """track() uses sanitize_json; it must keep, coerce, drop and count as sanitize does."""
    _fused_equals_sanitize(SCHEMA, name, props, tail)


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(name=ref_names, props=ref_props_strategy, tail=st.sampled_from(["", CONTEXT_JSON]))
def test_the_fused_sanitizer_equals_sanitize_then_json_on_the_reference_schema(
    name: Any, props: dict[str, Any], tail: str
) -> None:
    _fused_equals_sanitize(REFERENCE, name, props, tail)


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(name=ref_names, props=ref_props_strategy)
def test_the_reference_schema_stores_only_allowlisted_values(
    name: Any, props: dict[str, Any]
) -> None:
    clean = REFERENCE.sanitize(name, props, lambda reason: None)
    if clean is None:
        return
    for key, value in clean.items():
        assert allowed(REFERENCE, name, key, value, props), (name, key, value)
    json.dumps(clean, allow_nan=False)


def _fused_equals_sanitize(schema: Schema, name: Any, props: dict[str, Any], tail: str) -> None:
    counts: Counter[str] = Counter()
    fused_counts: Counter[str] = Counter()
    SCHEMA = schema  # the body below reads as the fixture test did
    clean = SCHEMA.sanitize(name, props, lambda reason: counts.update([reason]))
    fused = SCHEMA.sanitize_json(name, props, lambda reason: fused_counts.update([reason]), tail)
    assert fused_counts == counts
    if clean is None:
        assert fused is None
        return
    expected = json.dumps(clean, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if tail:
        expected = expected[:-1] + ("," if clean else "") + tail + "}"
    assert fused == expected
    assert json.loads(fused) == {**clean, **(json.loads("{" + tail + "}"))}


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batch=st.lists(st.tuples(names, props_strategy), min_size=1, max_size=5))
def test_what_reaches_a_real_spool_is_only_allowlisted(
    tmp_path: Path, batch: list[tuple[Any, dict[str, Any]]]
) -> None:
    state = tmp_path / _ids.new_run_id()
    with Telemetry("demo", "1.0.0", schema=SCHEMA, state_dir=state, allow_in_ci=True) as t:
        for name, props in batch:
            t.track(name, **{k: v for k, v in props.items() if isinstance(k, str)})
    db = sqlite3.connect(state / "spool.db")
    try:
        rows = db.execute("SELECT name, props FROM events").fetchall()
    finally:
        db.close()
    for name, props_json in rows:
        assert name in SCHEMA.events
        stored = json.loads(props_json)
        host = {k: v for k, v in stored.items() if k not in CONTEXT_KEYS}
        assert_only_allowlisted(name, host, {})
        assert {k: stored[k] for k in CONTEXT_KEYS} == SCHEMA.context("1.0.0")
