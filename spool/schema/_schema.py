"""The schema: which events and properties may be recorded, and nothing else.

A schema is a language-neutral JSON file (``docs/schema-format.md``). Loading
validates it completely and raises ``SchemaError`` listing every problem with
its exact place. It is then compiled once into plain dicts of closures, so
``sanitize()`` on the call path is a dict lookup and one small call per
property.

Two layers, keys then values:
    unknown event name       -> event dropped, counted ``unknown_event``
    unknown property name    -> property removed, counted ``unknown_property``
    value off the allowlist  -> "other" or removed, counted ``invalid_value``
    number out of range      -> clamped, counted ``out_of_range``
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from .._errors import SchemaError
from ..install import _context
from ._models import ModelSanitizer
from ._plan import compile_plan, run_plan
from ._sanitize import DROP, Allowed, compile_prop

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["Schema"]

_REFERENCE = Path(__file__).with_name("reference.json")
_REFERENCE_SCHEMA: Schema | None = None


class Schema:
    """A validated, compiled schema. Immutable after construction.

    ``name``, ``version`` and ``hash`` (``"sha256:<hex>"`` of the canonical
    JSON) travel with every batch.
    """

    def __init__(self, doc: Mapping[str, Any], *, _trusted: bool = False) -> None:
        """Validate ``doc`` (the parsed JSON) and compile it; raises SchemaError."""
        # Imported here: validation is only needed when a schema is built, and
        # its regexes would otherwise add to ``import spool``.
        from ._check import check_document

        if not isinstance(doc, Mapping):
            raise SchemaError([f"(root): must be an object, got {type(doc).__name__}"])
        problems = check_document(doc, compile_patterns=not _trusted)
        if problems:
            raise SchemaError(problems)
        # A private deep copy in the author's order (the hash sorts keys itself):
        # later changes to the caller's dict change nothing.
        self.doc: dict[str, Any] = json.loads(json.dumps(doc, ensure_ascii=False))
        self.name: str = self.doc["name"]
        self.version: int = self.doc["version"]
        import hashlib  # here, not at module import: keeps ``import spool`` cheap

        self.hash = "sha256:" + hashlib.sha256(_canonical(self.doc).encode()).hexdigest()
        self.models = ModelSanitizer(self.doc.get("models", {}), self.doc.get("model_tokens"))
        self.props: dict[str, dict[str, dict[str, Any]]] = {
            event: {p: self._resolve(spec) for p, spec in body.get("props", {}).items()}
            for event, body in self.doc["events"].items()
        }
        # Values are a Checker, or an Allowed frozenset for enums (see sanitize).
        self._checks: dict[str, dict[str, Any]] = {
            event: self._compile_event(props) for event, props in self.props.items()
        }
        # The same checkers, fused with JSON encoding for the call path (see _plan).
        self._plans = {event: compile_plan(checks) for event, checks in self._checks.items()}
        life = self.doc.get("lifecycle", {})
        self.lifecycle: dict[str, str] = {
            k: life[k] for k in ("initialized", "first_run") if k in life
        }
        self.env_probes: dict[str, list[list[str]]] = self.doc.get("env_probes", {})
        # {event: {prop: [raw values that force a keep] or "present"}} (see _sampling).
        sampling = self.doc.get("sampling", {})
        self.sampling_rate_prop: str | None = sampling.get("rate_prop")
        self.sampleable: dict[str, dict[str, Any]] = {
            event: dict(rule.get("always_keep", {}))
            for event, rule in sampling.get("events", {}).items()
        }
        self._contexts: dict[str, dict[str, object]] = {}

    def _compile_event(self, props: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        checks: dict[str, Any] = {p: compile_prop(spec, self.models) for p, spec in props.items()}
        for p, spec in props.items():
            vendor_prop = spec.get("vendor_prop")
            if spec["type"] == "model" and vendor_prop is not None:
                # The model token's vendor is what its vendor property stores.
                vc = checks[vendor_prop]
                vc = vc.check if vc.__class__ is Allowed else vc
                checks[p] = compile_prop(spec, self.models, vc)
        return checks

    def _resolve(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """A property spec with its ``ref`` replaced by the named type."""
        if "ref" not in spec:
            return dict(spec)
        out = dict(self.doc["types"][spec["ref"]])
        out.update((k, v) for k, v in spec.items() if k != "ref")
        return out

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def loads(cls, text: str | bytes) -> Schema:
        """Parse and validate schema JSON text; raises SchemaError."""
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SchemaError([f"(root): not valid JSON: {exc}"]) from exc
        return cls(doc)

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        """Read, validate and compile a schema file; raises SchemaError."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise SchemaError([f"(file): cannot read {path}: {exc}"]) from exc
        return cls.loads(data)

    @classmethod
    def reference(cls) -> Schema:
        """The bundled reference schema: getpatter 0.7.0's telemetry (v8).

        Built once per process and shared: a Schema is immutable.
        """
        global _REFERENCE_SCHEMA
        if _REFERENCE_SCHEMA is None or type(_REFERENCE_SCHEMA) is not cls:
            _REFERENCE_SCHEMA = cls(json.loads(_REFERENCE.read_bytes()), _trusted=True)
        return _REFERENCE_SCHEMA

    def to_json(self, indent: int | None = 2) -> str:
        """The schema as JSON text; ``Schema.loads(s.to_json())`` has the same hash."""
        return json.dumps(self.doc, indent=indent, ensure_ascii=False) + "\n"

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and other.hash == self.hash

    def __hash__(self) -> int:
        return hash(self.hash)

    def __repr__(self) -> str:
        return f"Schema({self.name!r}, version={self.version}, hash={self.hash[:15]}...)"

    # -- what the facade uses -------------------------------------------------------------
    @property
    def events(self) -> frozenset[str]:
        return frozenset(self._checks)

    def auto_props(self, event: str) -> dict[str, str]:
        """``{prop: source}`` for the props of ``event`` filled at startup."""
        return {p: s["auto"] for p, s in self.props.get(event, {}).items() if "auto" in s}

    def context(self, app_version: str) -> dict[str, object]:
        """The allowlisted context merged into every event, computed once per version.

        Keys (reserved: no schema property may start with ``ctx_``):
        ``ctx_app_version``, ``ctx_schema_version``, ``ctx_python``,
        ``ctx_os``, ``ctx_arch``. Never raises.
        """
        ctx = self._contexts.get(app_version)
        if ctx is None:
            ctx = _context.build(app_version, self.version)
            self._contexts[app_version] = ctx
        return dict(ctx)

    def sanitize(
        self, name: object, props: Mapping[str, object], count: Callable[[str], None]
    ) -> dict[str, object] | None:
        """Return the allowlisted props, or None to drop the event. Never raises.

        ``count(reason)`` is called once per rejected event, property or value.
        The result holds only schema keys, allowlisted strings, bools and
        numbers within their ranges.
        """
        try:
            if name.__class__ is not str:
                count("unknown_event")
                return None
            checks = self._checks.get(name)
            if checks is None:
                count("unknown_event")
                return None
            out: dict[str, object] = {}
            for key, value in props.items():
                if value is None:
                    continue  # absent, as if not passed (see _sanitize)
                # Exact str keys only: a str subclass could fake its hash/eq.
                check = checks.get(key) if key.__class__ is str else None
                if check is None:
                    count("unknown_property")
                    continue
                if check.__class__ is Allowed:
                    # An enum: the happy path needs no call at all.
                    if value.__class__ is str and value in check:
                        out[key] = value
                        continue
                    check = check.check
                clean = check(value, props, count)
                if clean is not DROP:
                    out[key] = clean
            return out
        except Exception:
            _count_error(count)
            return None

    def sanitize_json(
        self,
        name: object,
        props: Mapping[str, object],
        count: Callable[[str], None],
        tail: str = "",
    ) -> str | None:
        """``sanitize()`` and compact JSON encoding in one pass; never raises.

        Returns the JSON object text ``json.dumps(sanitize(...))`` would give,
        with ``tail`` (a ready ``"key":value`` fragment, the context) appended,
        or None when the event is dropped. Counts exactly what ``sanitize``
        counts.
        """
        try:
            plan = self._plans.get(name) if name.__class__ is str else None
            if plan is None:
                count("unknown_event")
                return None
            return run_plan(plan, props, count, tail)
        except Exception:
            _count_error(count)
            return None


def _count_error(count: Callable[[str], None]) -> None:
    # A hostile Mapping (items() raising...) costs the event, never the host.
    try:
        count("error")
    except Exception:
        pass


def _canonical(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
