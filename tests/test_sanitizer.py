"""The sanitizer's rules, one sentence each."""

from __future__ import annotations

import enum
from collections import Counter
from typing import Any

import pytest

from spool.schema._models import ModelSanitizer
from tests.format_fixture import FIXTURE

SCHEMA = FIXTURE


def sanitize(name: Any, **props: Any) -> tuple[dict[str, object] | None, Counter[str]]:
    counts: Counter[str] = Counter()

    def count(reason: str) -> None:
        counts[reason] += 1

    return SCHEMA.sanitize(name, props, count), counts


def test_known_values_pass_unchanged() -> None:
    clean, counts = sanitize(
        "call_started", engine="realtime", provider="openai", direction="inbound"
    )
    assert clean == {"engine": "realtime", "provider": "openai", "direction": "inbound"}
    assert not counts


def test_unknown_event_is_dropped_and_counted() -> None:
    assert sanitize("user_signed_up", email="a@b.c") == (None, Counter(unknown_event=1))


@pytest.mark.parametrize("name", [None, 42, b"cli_command", ["cli_command"], {"x": 1}])
def test_a_non_string_event_name_is_an_unknown_event(name: object) -> None:
    assert sanitize(name) == (None, Counter(unknown_event=1))


def test_unknown_property_is_removed_and_counted() -> None:
    clean, counts = sanitize("cli_command", command="eval", path="/home/jane/x", email="j@x.io")
    assert clean == {"command": "eval"}
    assert counts == Counter(unknown_property=2)


def test_context_keys_cannot_be_set_by_the_host() -> None:
    clean, counts = sanitize("cli_command", command="eval", ctx_app_version="jane@example.com")
    assert clean == {"command": "eval"} and counts == Counter(unknown_property=1)


def test_off_list_enum_becomes_other() -> None:
    clean, counts = sanitize("cli_command", command="deploy --token sk-abc")
    assert clean == {"command": "other"} and counts == Counter(invalid_value=1)


def test_a_str_enum_member_passes_as_its_plain_value() -> None:
    class Direction(str, enum.Enum):
        INBOUND = "inbound"

    clean, _ = sanitize("call_started", direction=Direction.INBOUND)
    assert clean == {"direction": "inbound"} and type(clean["direction"]) is str


@pytest.mark.parametrize("value", [1, "true", [True]])
def test_a_bool_property_takes_only_bools(value: object) -> None:
    clean, counts = sanitize("agent_configured", noise_reduction=value)
    assert clean == {} and counts == Counter(invalid_value=1)


@pytest.mark.parametrize("prop", ["noise_reduction", "engine", "latency_ms", "nope"])
def test_a_none_value_is_absent_and_not_counted(prop: str) -> None:
    # ``direction=maybe_known`` is the host saying "unknown", as getpatter's build_event reads it.
    event = "call_completed" if prop in ("engine", "latency_ms") else "agent_configured"
    assert sanitize(event, **{prop: None}) == ({}, Counter())


@pytest.mark.parametrize(
    ("value", "stored", "reasons"),
    [
        (812, 812, {}),
        (812.6, 813, {}),
        (-5, 0, {"out_of_range": 1}),
        (10**100, 60000, {"out_of_range": 1}),
        (float("inf"), None, {"invalid_value": 1}),
        (float("nan"), None, {"invalid_value": 1}),
        (True, None, {"invalid_value": 1}),
        ("812", None, {"invalid_value": 1}),
    ],
)
def test_int_is_rounded_and_clamped(value: object, stored: object, reasons: dict[str, int]) -> None:
    clean, counts = sanitize("call_completed", latency_ms=value)
    assert clean == ({} if stored is None else {"latency_ms": stored})
    assert counts == Counter(reasons)


def test_float_is_rounded_to_its_digits() -> None:
    clean, _ = sanitize("call_completed", cost_usd=0.123456)
    assert clean == {"cost_usd": 0.1235}


@pytest.mark.parametrize(
    ("turns", "label"), [(0, "0"), (1, "1"), (4, "2-4"), (5, "5-9"), (99, "50-99"), (10**9, "100+")]
)
def test_bucket_maps_a_number_to_its_label(turns: int, label: str) -> None:
    assert sanitize("call_completed", turn_count_bucket=turns)[0] == {"turn_count_bucket": label}


def test_bucket_accepts_its_own_labels() -> None:
    assert sanitize("call_completed", turn_count_bucket="5-9")[0] == {"turn_count_bucket": "5-9"}


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("1.2.3", "1.2.3"),
        ("2.0.0rc1", "2.0.0rc1"),
        ("none", "none"),
        ("1.2.3+jane.laptop", "other"),
    ],
)
def test_version_property_keeps_only_plain_versions(value: str, stored: str) -> None:
    clean, _ = sanitize("sdk_initialized", previous_sdk_version=value)
    assert clean == {"previous_sdk_version": stored}


def test_a_model_takes_its_vendor_from_the_provider_property() -> None:
    clean, counts = sanitize(
        "feature_used",
        stt_provider="deepgram",
        stt_model="nova-3",
        llm_provider="anthropic",
        llm_model="claude-opus-4-8",
    )
    assert clean is not None
    assert clean["stt_model"] == "deepgram-nova-3"
    assert clean["llm_model"] == "anthropic-claude-opus-4-8"
    assert not counts


def test_a_model_may_be_given_as_a_vendor_model_pair() -> None:
    clean, _ = sanitize("feature_used", llm_model=("anthropic", "claude-opus-4-8"))
    assert clean == {"llm_model": "anthropic-claude-opus-4-8"}


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


class HostileMapping(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        raise RuntimeError("no")


@pytest.mark.parametrize(
    "value",
    [Unprintable(), b"\xff\xfe", {"nested": {"deep": [1, 2]}}, "x" * 1_000_000, object(), 1j],
)
def test_hostile_values_never_raise(value: object) -> None:
    clean, counts = sanitize("call_completed", outcome=value, latency_ms=value, error_code=value)
    assert clean is not None
    assert set(clean) <= {"outcome", "error_code"}
    assert all(v == "other" for v in clean.values())
    assert counts["invalid_value"] == 3


def test_a_mapping_that_raises_costs_the_event_not_the_host() -> None:
    counts: Counter[str] = Counter()

    def count(reason: str) -> None:
        counts[reason] += 1

    assert SCHEMA.sanitize("cli_command", HostileMapping(command="eval"), count) is None
    assert counts == Counter(error=1)


# -- the model-name sanitizer ---------------------------------------------------------------
MODELS = SCHEMA.models


@pytest.mark.parametrize(
    ("vendor", "model", "token"),
    [
        ("anthropic", "claude-opus-4-8", "anthropic-claude-opus-4-8"),
        ("deepgram", "nova-3", "deepgram-nova-3"),
        ("Anthropic", "Claude-Sonnet-4-5-20250929", "anthropic-claude-sonnet-4-5-20250929"),
        ("openai", "gpt-4o-mini", "openai-gpt-4o-mini"),
        (
            "openai",
            "gpt-4o-realtime-preview-2024-12-17",
            "openai-gpt-4o-realtime-preview-2024-12-17",
        ),
        ("google", "gemini-2.5-flash", "google-gemini-2.5-flash"),
        ("elevenlabs", "eleven_flash_v2_5", "elevenlabs-eleven_flash_v2_5"),
        ("anthropic", "anthropic-claude-opus-4-8", "anthropic-claude-opus-4-8"),
        ("openai", "ft:gpt-4o-mini:acme:support:abc123", "openai-other"),
        ("openai", "/models/jane/llama.gguf", "openai-other"),
        ("openai", "C:\\models\\mine.bin", "openai-other"),
        ("groq", "openai/gpt-oss-120b", "groq-other"),
        ("anthropic", "claude-opus-4-8 jane@example.com", "anthropic-other"),
        ("anthropic", "my-private-model", "anthropic-other"),
        ("deepgram", "", "deepgram-other"),
        ("acme-ai", "nova-3", "other"),
        ("jane@example.com", "gpt-4o", "other"),
        (None, "gpt-4o", "other"),
        ("openai", None, "openai-other"),
        ("openai", 42, "openai-other"),
    ],
)
def test_model_sanitizer(vendor: Any, model: Any, token: str) -> None:
    assert MODELS(vendor, model) == token


def test_vendors_and_patterns_are_data_not_code() -> None:
    models = ModelSanitizer({"acme": ["rocket-[0-9]"]})
    assert models("acme", "rocket-7") == "acme-rocket-7"
    assert models("acme", "rocket-77") == "acme-other"
    assert models("anthropic", "claude-opus-4-8") == "other"


def test_the_model_cache_stays_bounded() -> None:
    models = ModelSanitizer({"acme": ["rocket-[0-9]+"]})
    for i in range(5000):
        assert models("acme", f"rocket-{i}") == f"acme-rocket-{i}"
    assert len(models._cache) <= 256
