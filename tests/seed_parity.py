"""What getpatter 0.7.0 emits for the dimensions a host passes, and what telespool does.

``seed_emit`` is the oracle: the seed's own ``events.build_event``, fed what its
call sites would pass for the same raw inputs. telespool takes four inputs raw
that the seed's call sites transform before ``build_event`` (a host moving onto
telespool passes the raw value and telespool does the step):

- a layer's provider key (``cartesia_tts``): the seed's ``stack.vendor_of``;
- a layer's model name (``claude-haiku-4-5-20251001``): ``stack.model_token``;
- a count of custom tools, MCP servers or turns, and a whole number of days
  since install: the seed's bucket functions (``client.py``, ``call_metrics.py``,
  ``install_id.py``);
- ``cost_usd``: ``max(0.0, round(float(cost), 4))`` as in ``call_metrics.py``.

Everything else goes to ``build_event`` exactly as the host passed it.

``expected_telespool`` is ``seed_emit`` with each intended difference applied,
one named function per difference (``DIFFERENCES``; docs/migrating.md lists the
same names with their reasons). ``telespool_emit`` is the reference schema's
sanitizer on the same input. The parity tests assert the two agree, and count
for which dimensions no difference was ever needed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from spool import Schema

SCHEMA = Schema.reference()
# The envelope build_event adds around the dimensions (telespool's is its ctx_* context).
SEED_ENVELOPE = frozenset(
    {
        "event",
        "schema_version",
        "run_id",
        "install_id",
        "sdk",
        "sdk_version",
        "os",
        "arch",
        "runtime",
        "runtime_version",
        "ci",
    }
)

# Each event's dimensions as its call sites in the wheel send them (read from
# client.py, cli.py, telemetry/call_metrics.py and integrations/patter_tool.py;
# tests/test_seed_oracle.py checks each name appears in its file). ``sample_rate``
# is stamped by the seed's TelemetryClient on the two sampleable events.
_INIT = (
    "carrier",
    "tunnel",
    "invoked_by_agent",
    "container",
    "serverless",
    "cloud",
    "package_manager",
    "days_since_install_bucket",
    "previous_sdk_version",
)
CALL_SITES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sdk_initialized": ("client", _INIT),
    "first_run": ("client", _INIT),
    "cli_command": ("cli", ("cli_command",)),
    "feature_used": (
        "client",
        (
            "engine",
            "provider",
            "stt_provider",
            "stt_model",
            "tts_provider",
            "tts_model",
            "llm_provider",
            "llm_model",
        ),
    ),
    "agent_configured": (
        "client",
        (
            "builtin_tool_count",
            "custom_tool_count_bucket",
            "integration",
            "integration_kind",
            "mcp_server_count_bucket",
            "noise_reduction",
            "turn_detection",
            "preambles_used",
            "per_tool_timeouts_set",
            "llm_fallback_configured",
        ),
    ),
    "config_incomplete": ("client", ("missing",)),
    "call_started": (
        "telemetry/call_metrics",
        ("engine", "provider", "carrier", "direction", "call_uid", "time_to_first_call_bucket"),
    ),
    "call_completed": (
        "telemetry/call_metrics",
        (
            "outcome",
            "direction",
            "call_uid",
            "engine",
            "provider",
            "carrier",
            "duration_seconds",
            "latency_ms",
            "cost_usd",
            "turn_count_bucket",
            "stt_latency_ms",
            "llm_ttft_ms",
            "tts_first_byte_ms",
            "eou_latency_ms",
            "error_code",
            "error_layer",
            "disconnect_reason",
            "time_to_first_call_bucket",
        ),
    ),
}
SAMPLEABLE = ("call_started", "call_completed")


def event_dimensions() -> dict[str, tuple[str, ...]]:
    """Every event's dimensions, ``sample_rate`` included where the client stamps it."""
    out = {e: dims for e, (_, dims) in CALL_SITES.items()}
    for e in SAMPLEABLE:
        out[e] = (*out[e], "sample_rate")
    return out


_LAYERS = {"stt_model": "stt_provider", "tts_model": "tts_provider", "llm_model": "llm_provider"}
_COUNT_BUCKETS = {
    "custom_tool_count_bucket": ("client", "_telemetry_bucket_custom_tools"),
    "mcp_server_count_bucket": ("client", "_telemetry_bucket_mcp"),
    "turn_count_bucket": ("telemetry/call_metrics", "_turn_count_bucket"),
}


def _days_bucket(days: int) -> str:
    # install_id.days_since_install_bucket after its int(days) step (it reads an mtime).
    if days <= 0:
        return "0"
    if days <= 7:
        return "1_7"
    if days <= 30:
        return "8_30"
    return "30_plus"


def _is_int(value: object) -> bool:
    # A count: an int (an IntEnum too), never a bool.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Seed:
    """The seed's modules plus the call-site steps telespool takes over."""

    def __init__(self, modules: Mapping[str, Any], function: Callable[[str, str], Any]) -> None:
        self.m = modules
        self.buckets = {k: function(mod, name) for k, (mod, name) in _COUNT_BUCKETS.items()}
        # build_event reads the install id; a fixed one keeps it off the disk.
        modules["install_id"]._install_id = "0" * 32

    def call_site(self, event: str, dims: Mapping[str, Any]) -> dict[str, Any]:
        """What the seed's call sites pass to build_event for these raw inputs."""
        stack = self.m["stack"]
        out = dict(dims)
        for key, value in dims.items():
            if key in _LAYERS.values() and event == "feature_used" and value is not None:
                out[key] = stack.vendor_of(value if isinstance(value, str) else None)
            elif key in _LAYERS and event == "feature_used" and value is not None:
                pk = dims.get(_LAYERS[key])
                vendor = stack.vendor_of(pk if isinstance(pk, str) else None)
                out[key] = stack.model_token(vendor, value if isinstance(value, str) else "")
            elif key in self.buckets and _is_int(value):
                out[key] = self.buckets[key](value)
            elif key == "days_since_install_bucket" and _is_int(value):
                out[key] = _days_bucket(value)
            elif key == "cost_usd" and _is_number(value):
                out[key] = max(0.0, round(float(value), 4))
        return out

    def emit(self, event: str, dims: Mapping[str, Any]) -> dict[str, Any] | None:
        """The dimensions build_event puts on the wire, or None when the seed loses the event."""
        try:
            built = self.m["events"].build_event(
                event, sdk_version="0.7.0", dimensions=self.call_site(event, dims)
            )
        except (TypeError, ValueError):
            return None  # its client.record() swallows this: the whole event is gone
        return {k: v for k, v in built.items() if k not in SEED_ENVELOPE}


def telespool_emit(event: str, dims: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reference schema's props for these inputs, as track() encodes them."""
    text = SCHEMA.sanitize_json(event, dict(dims), lambda reason: None)
    return None if text is None else dict(json.loads(text))


# -- the intended differences, each a named step from the seed's output to telespool's --
def _spec(event: str, key: str) -> Mapping[str, Any]:
    return SCHEMA.props[event][key]


def non_finite(event: str, key: str, raw: object, seed: object) -> object:
    """NaN and ±inf are removed: the seed sends them and json.dumps writes ``NaN``, not JSON."""
    if isinstance(seed, float) and not math.isfinite(seed):
        return _DROPPED
    if key == "cost_usd" and isinstance(raw, float) and not math.isfinite(raw):
        return _DROPPED  # the seed's max(0.0, round(nan)) turns NaN into 0.0
    return seed


def range_clamp(event: str, key: str, raw: object, seed: object) -> object:
    """Numbers are clamped into the schema's [min, max] (the seed sends -5 ms or a rate of 7)."""
    spec = _spec(event, key)
    if spec["type"] == "number" and _is_number(seed):
        assert isinstance(seed, (int, float))
        return min(max(seed, spec["min"]), spec["max"])
    return seed


def trailing_newline(event: str, key: str, raw: object, seed: object) -> object:
    """A shaped string or id ending in ``\\n`` is removed: the seed's ``re.match(...$)`` lets one
    trailing newline through."""
    if isinstance(seed, str) and seed.endswith("\n"):
        return _DROPPED
    return seed


def unhashable(event: str, key: str, raw: object, seed: object) -> object:
    """An unhashable value (list, dict) under an enum becomes ``other``; in the seed,
    ``value not in frozenset`` raises and the whole event is lost."""
    return seed


def stack_none(event: str, key: str, raw: object, seed: object) -> object:
    """A layer's vendor ``none`` is kept (it is in DIMENSION_VALUES); the seed's call site
    maps it through ``vendor_of`` to ``other``."""
    if key in _LAYERS.values() and raw == "none":
        return "none"
    return seed


def float_count(event: str, key: str, raw: object, seed: object) -> object:
    """A float count is bucketed (2.5 custom tools -> ``2_3``); the seed's call sites only
    ever pass ``len()``, and its build_event turns a number into ``other``."""
    spec = _spec(event, key)
    if spec["type"] == "bucket" and isinstance(raw, float) and math.isfinite(raw):
        edges, labels = spec["edges"], spec["labels"]
        return labels[sum(1 for e in edges if raw >= e)]
    return seed


def per_event_keys(event: str, key: str, raw: object, seed: object) -> object:
    """A dimension is kept only on the events whose call sites send it (``carrier`` on
    ``agent_configured`` is removed); the seed's build_event keeps any of its 45 dimensions
    on any of its 8 events."""
    return seed


def model_pair(event: str, key: str, raw: object, seed: object) -> object:
    """A model dimension may be a ``(vendor, model)`` pair (telespool's own form); the seed's
    build_event removes a non-string."""
    return seed


DIFFERENCES: tuple[Callable[[str, str, object, object], object], ...] = (
    non_finite,
    range_clamp,
    trailing_newline,
    stack_none,
    float_count,
)
# Every intended difference by name, with its reason (docs/migrating.md lists the same).
DOCUMENTED: dict[str, str] = {
    f.__name__: " ".join((f.__doc__ or "").split())
    for f in (*DIFFERENCES, unhashable, per_event_keys, model_pair)
}


class _Dropped:
    def __repr__(self) -> str:
        return "DROPPED"


_DROPPED: Any = _Dropped()


def _canon(value: object) -> object:
    # The wire value: JSON numbers compare by value (3 == 3.0), str subclasses as text.
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else repr(float(value))
    if isinstance(value, str):
        return str.__str__(value)
    return repr(value)


def canon(props: Mapping[str, Any] | None) -> dict[str, object] | None:
    return None if props is None else {k: _canon(v) for k, v in props.items()}


def compare(
    seed: Seed, event: str, dims: Mapping[str, Any]
) -> tuple[dict[str, object] | None, dict[str, object] | None, set[tuple[str, str]]]:
    """``(expected, actual, differences used)``: the seed's output with the intended
    differences applied, telespool's output, and which (dimension, difference) fired."""
    actual = canon(telespool_emit(event, dims))
    if event not in SCHEMA.props:
        return canon(seed.emit(event, dims)), actual, set()
    props = SCHEMA.props[event]
    used: set[tuple[str, str]] = set()
    dims = dict(dims)
    for key, raw in list(dims.items()):
        if isinstance(raw, tuple) and len(raw) == 2 and key in _LAYERS and key in props:
            # telespool's (vendor, model) pair: the seed's call site on that vendor and name.
            used.add((key, "model_pair"))
            pair = seed.emit(event, {_LAYERS[key]: raw[0], key: raw[1]}) or {}
            dims[key] = _Token(pair.get(key))
    passed = seed.call_site(event, {k: v for k, v in dims.items() if not isinstance(v, _Token)})
    enums = seed.m["events"].DIMENSION_VALUES
    bad = {k for k, v in passed.items() if k in enums and _unhashable(v)}
    if bad:
        used |= {(k, "unhashable") for k in bad}
    seed_out = seed.emit(
        event, {k: v for k, v in dims.items() if k not in bad and not isinstance(v, _Token)}
    )
    assert seed_out is not None, f"the seed lost {event} {dims!r} for another reason"
    seed_out.update({k: "other" for k in bad if k in props})
    seed_out.update({k: v.token for k, v in dims.items() if isinstance(v, _Token) and v.token})
    for key in [k for k in seed_out if k not in props]:
        used.add((key, "per_event_keys"))
        del seed_out[key]
    expected: dict[str, object] = {}
    for key in set(seed_out) | {k for k in dims if k in props}:
        value: object = seed_out.get(key, _DROPPED)
        raw = dims.get(key)
        for difference in DIFFERENCES:
            new = difference(event, key, raw, value)
            if _canon(new) != _canon(value):
                used.add((key, difference.__name__))
                value = new
        if value is not _DROPPED:
            expected[key] = _canon(value)
    return expected, actual, used


class _Token:
    __slots__ = ("token",)

    def __init__(self, token: object) -> None:
        self.token = token


def _unhashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return True
    return False
