"""Schema files: validation with exact places, hashing and round trips."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spool import Schema, SchemaError

REFERENCE = Path(__file__).parent.parent / "spool" / "schema" / "reference.json"


def minimal() -> dict[str, Any]:
    return {
        "name": "acme-cli",
        "version": 1,
        "events": {"run": {"props": {"mode": {"type": "enum", "values": ["fast", "slow"]}}}},
    }


def problems(doc: Any) -> list[str]:
    with pytest.raises(SchemaError) as info:
        Schema(doc)
    return info.value.problems


def test_the_reference_schema_loads_and_is_getpatters_version_8() -> None:
    schema = Schema.reference()
    assert (schema.name, schema.version) == ("voice-agent-sdk", 8)
    assert schema.hash.startswith("sha256:") and len(schema.hash) == 7 + 64
    assert schema.events == {
        "sdk_initialized",
        "first_run",
        "cli_command",
        "feature_used",
        "agent_configured",
        "call_started",
        "call_completed",
        "config_incomplete",
    }


def test_the_hash_is_of_canonical_json_so_formatting_does_not_change_it(tmp_path: Path) -> None:
    doc = json.loads(REFERENCE.read_text())
    ugly = tmp_path / "ugly.json"
    ugly.write_text(json.dumps(doc, indent=None, sort_keys=False, ensure_ascii=True))
    assert Schema.load(ugly).hash == Schema.reference().hash


def test_any_change_changes_the_hash() -> None:
    doc = json.loads(REFERENCE.read_text())
    doc["events"]["cli_command"]["props"]["cli_command"]["values"].append("deploy")
    assert Schema(doc).hash != Schema.reference().hash


def test_the_reference_schema_round_trips_through_a_file(tmp_path: Path) -> None:
    schema = Schema.reference()
    schema.dump(tmp_path / "copy.json")
    again = Schema.load(tmp_path / "copy.json")
    assert again == schema and again.doc == schema.doc and again.hash == schema.hash
    assert Schema.loads(schema.to_json(indent=None)).hash == schema.hash


def test_a_schema_keeps_its_own_copy_of_the_document() -> None:
    doc = minimal()
    schema = Schema(doc)
    doc["events"]["run"]["props"]["mode"]["values"].append("jane@example.com")
    assert schema.doc["events"]["run"]["props"]["mode"]["values"] == ["fast", "slow"]


_token = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda s: not s.startswith("ctx_")
)
_prop = st.one_of(
    st.lists(_token, min_size=1, max_size=4, unique=True).map(
        lambda v: {"type": "enum", "values": v}
    ),
    st.just({"type": "bool"}),
    st.tuples(st.integers(-1000, 1000), st.integers(0, 1000)).map(
        lambda t: {"type": "int", "min": t[0], "max": t[0] + t[1]}
    ),
    st.tuples(st.floats(-1e6, 1e6), st.floats(0, 1e6), st.integers(0, 6)).map(
        lambda t: {"type": "float", "min": t[0], "max": t[0] + t[1], "digits": t[2]}
    ),
    st.integers(0, 10**6).map(lambda m: {"type": "count", "max": m}),
    st.lists(st.integers(-100, 100), min_size=1, max_size=5, unique=True).map(
        lambda e: {
            "type": "bucket",
            "edges": sorted(e),
            "labels": [f"b{i}" for i in range(len(e) + 1)],
        }
    ),
    st.just({"type": "version", "values": ["none"]}),
)
_doc = st.fixed_dictionaries(
    {
        "name": st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True),
        "version": st.integers(0, 2**31 - 1),
        "events": st.dictionaries(
            _token,
            st.fixed_dictionaries({"props": st.dictionaries(_token, _prop, max_size=5)}),
            min_size=1,
            max_size=4,
        ),
    }
)


@settings(max_examples=200, deadline=None)
@given(doc=_doc)
def test_any_valid_schema_round_trips_with_the_same_hash(doc: dict[str, Any]) -> None:
    schema = Schema(doc)
    again = Schema.loads(schema.to_json())
    assert again.doc == schema.doc == json.loads(json.dumps(doc))
    assert again.hash == schema.hash
    assert again.events == set(doc["events"])


# -- errors name the exact place --------------------------------------------------------------
def with_prop(spec: Any) -> dict[str, Any]:
    doc = minimal()
    doc["events"]["run"]["props"]["p"] = spec
    return doc


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            with_prop({"type": "int", "min": 0, "max": "a lot"}),
            "events.run.props.p.max: must be an integer",
        ),
        (
            with_prop({"type": "float", "min": 0, "max": "x"}),
            "events.run.props.p.max: must be a number",
        ),
        (
            with_prop({"type": "int", "min": 5, "max": 1}),
            "events.run.props.p.max: must not be less than min",
        ),
        (with_prop({"type": "text"}), "events.run.props.p.type: must be one of"),
        (
            with_prop({"type": "enum", "values": []}),
            "events.run.props.p.values: must be a list of at least 1",
        ),
        (
            with_prop({"type": "enum", "values": ["ok", "Not OK"]}),
            "events.run.props.p.values[1]: must match",
        ),
        (
            with_prop({"type": "enum", "values": ["a", "a"]}),
            "events.run.props.p.values: must not repeat",
        ),
        (with_prop({"type": "bool", "colour": "red"}), "events.run.props.p.colour: unknown key"),
        (
            with_prop({"type": "bucket", "edges": [5, 1], "labels": ["a", "b", "c"]}),
            "events.run.props.p.edges: must be strictly ascending",
        ),
        (
            with_prop({"type": "bucket", "edges": [1], "labels": ["a"]}),
            "events.run.props.p.labels: must have len(edges)+1 = 2 entries",
        ),
        (
            with_prop({"type": "float", "min": 0, "max": 1, "digits": 9}),
            "events.run.props.p.digits: must be from 0 to 6",
        ),
        (with_prop({"ref": "nope"}), "events.run.props.p.ref: names no type"),
        (
            with_prop({"type": "bool", "auto": "hostname"}),
            "events.run.props.p.auto: must be one of",
        ),
        (
            with_prop({"type": "model", "vendor_prop": "nope"}),
            "events.run.props.p.vendor_prop: must name another property",
        ),
        (with_prop("enum"), "events.run.props.p: must be an object, got string"),
        ({**minimal(), "version": "5"}, "version: must be an integer"),
        ({**minimal(), "name": "Acme CLI"}, "name: must match"),
        ({**minimal(), "format": 2}, "format: must be 1"),
        ({**minimal(), "evnets": {}}, "evnets: unknown key"),
        ({**minimal(), "events": {}}, "events: must declare at least one event"),
        ({**minimal(), "events": {"Run!": {}}}, "events.Run!: event name must match"),
        (
            {**minimal(), "lifecycle": {"initialized": "boot"}},
            "lifecycle.initialized: names no declared event",
        ),
        ({**minimal(), "models": {"acme": ["(unclosed"]}}, "models.acme[0]: invalid pattern"),
        (
            {**minimal(), "env_probes": {"carrier": [["TWILIO", "Twilio Inc"]]}},
            "env_probes.carrier[0]: must be [ENV_VAR, token]",
        ),
    ],
)
def test_schema_errors_name_the_exact_place(doc: Any, expected: str) -> None:
    found = problems(doc)
    assert any(p.startswith(expected) for p in found), found


def test_context_prefix_is_reserved() -> None:
    doc = minimal()
    doc["events"]["run"]["props"]["ctx_os"] = {"type": "bool"}
    assert any(
        p.startswith("events.run.props.ctx_os: the prefix 'ctx_' is reserved")
        for p in problems(doc)
    )


def test_every_problem_is_reported_at_once() -> None:
    doc = with_prop({"type": "int", "min": "low", "max": "high"})
    doc["version"] = -1
    found = problems(doc)
    assert len(found) == 3, found
    assert str(SchemaError(found)).count("\n") == 3


def test_load_reports_bad_json_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SchemaError, match=r"\(root\): not valid JSON"):
        Schema.load(tmp_path / "bad.json")
    with pytest.raises(SchemaError, match=r"\(file\): cannot read"):
        Schema.load(tmp_path / "missing.json")
    with pytest.raises(SchemaError, match=r"\(root\): must be an object, got list"):
        Schema.loads("[]")


def test_a_schema_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Schema({})


def test_named_types_are_resolved_into_each_event() -> None:
    doc = minimal()
    doc["types"] = {"speed": {"type": "enum", "values": ["fast"], "description": "How fast."}}
    doc["events"]["run"]["props"]["mode"] = {"ref": "speed"}
    schema = Schema(doc)
    assert schema.props["run"]["mode"] == {
        "type": "enum",
        "values": ["fast"],
        "description": "How fast.",
    }


def test_nan_in_a_schema_file_is_refused() -> None:
    text = json.dumps(with_prop({"type": "float", "min": 0, "max": 1})).replace(
        '"max": 1', '"max": NaN'
    )
    with pytest.raises(SchemaError, match=r"events.run.props.p.max: must be finite"):
        Schema.loads(text)


def test_copying_the_reference_document_gives_an_equal_schema() -> None:
    schema = Schema.reference()
    assert Schema(copy.deepcopy(schema.doc)) == schema


def test_the_bundled_file_passes_full_validation_including_patterns() -> None:
    from spool.schema._check import check_document

    assert check_document(json.loads(REFERENCE.read_text())) == []
    assert Schema.load(REFERENCE) == Schema.reference()


def test_the_reference_schema_is_built_once_per_process() -> None:
    assert Schema.reference() is Schema.reference()
