"""Validation of a schema document: every problem, each with its exact place.

Places are dotted paths into the JSON, e.g.
``events.call_completed.props.latency_ms.max: must be a number``.
Validation is strict (unknown keys are errors) so a typo in a schema file
fails loudly at ``Schema.load`` instead of silently allowing or dropping data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..install._context import CONTEXT_PREFIX
from ..install._probes import AUTO_SOURCES
from ._check_props import NAME_RE, PROP_TYPES, TOKEN_RE, PropChecker
from ._models import compile_pattern

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FORMAT", "PROP_TYPES", "check_document"]

FORMAT = 1
SCHEMA_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")

_ROOT_KEYS = frozenset(
    {
        "format",
        "name",
        "version",
        "description",
        "lifecycle",
        "env_probes",
        "models",
        "model_tokens",
        "sampling",
        "types",
        "events",
    }
)
MODEL_RULES = ("known", "seed")
_LIFECYCLE = ("initialized", "first_run")


class _Checker(PropChecker):
    """The document's sections; each property goes through ``PropChecker``."""

    def __init__(self, doc: Mapping[str, Any], compile_patterns: bool) -> None:
        super().__init__()
        self.doc = doc
        self.compile_patterns = compile_patterns

    # -- sections -------------------------------------------------------------------
    def root(self) -> None:
        doc = self.doc
        self.keys("", doc, _ROOT_KEYS)
        if "format" in doc and doc["format"] != FORMAT:
            self.bad("format", f"must be {FORMAT}, got {doc['format']!r}")
        name = doc.get("name")
        if not isinstance(name, str) or not SCHEMA_NAME_RE.fullmatch(name):
            self.bad("name", f"must match {SCHEMA_NAME_RE.pattern}, got {name!r}")
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2**31:
            self.bad("version", f"must be an integer from 0 to 2**31-1, got {version!r}")
        if "description" in doc and not isinstance(doc["description"], str):
            self.bad("description", "must be a string")
        probes = self.env_probes()
        self.models()
        self.model_tokens()
        types = self.types()
        events = self.events(types, AUTO_SOURCES | probes)
        self.lifecycle(events)
        self.sampling(events)

    def env_probes(self) -> frozenset[str]:
        section = self.obj("env_probes", self.doc.get("env_probes", {}))
        if section is None:
            return frozenset()
        for probe, rules in section.items():
            where = f"env_probes.{probe}"
            if not NAME_RE.fullmatch(probe):
                self.bad(where, f"probe name must match {NAME_RE.pattern}")
            if probe in AUTO_SOURCES:
                self.bad(where, "shadows a built-in probe")
            if not isinstance(rules, list):
                self.bad(where, "must be a list of [ENV_VAR, value] pairs")
                continue
            for i, rule in enumerate(rules):
                ok = (
                    isinstance(rule, list)
                    and len(rule) == 2
                    and isinstance(rule[0], str)
                    and ENV_RE.fullmatch(rule[0])
                    and isinstance(rule[1], str)
                    and TOKEN_RE.fullmatch(rule[1])
                )
                if not ok:
                    self.bad(f"{where}[{i}]", f"must be [ENV_VAR, token], got {rule!r}")
        return frozenset(section)

    def models(self) -> None:
        section = self.obj("models", self.doc.get("models", {}))
        if section is None:
            return
        for vendor, patterns in section.items():
            where = f"models.{vendor}"
            if not TOKEN_RE.fullmatch(vendor):
                self.bad(where, f"vendor must match {TOKEN_RE.pattern}")
            if not isinstance(patterns, list) or not patterns:
                self.bad(where, "must be a non-empty list of patterns")
                continue
            for i, pattern in enumerate(patterns):
                if not isinstance(pattern, str) or not 0 < len(pattern) <= 200:
                    self.bad(f"{where}[{i}]", "must be a pattern string of 1-200 chars")
                    continue
                if not self.compile_patterns:
                    continue
                try:
                    compile_pattern(pattern)
                except re.error as exc:
                    self.bad(f"{where}[{i}]", f"invalid pattern: {exc}")

    def model_tokens(self) -> None:
        section = self.obj("model_tokens", self.doc.get("model_tokens", {}))
        if section is None:
            return
        self.keys("model_tokens", section, frozenset({"rule", "vendors", "token_pattern"}))
        rule = section.get("rule", "known")
        if rule not in MODEL_RULES:
            self.bad("model_tokens.rule", f"must be one of {', '.join(MODEL_RULES)}, got {rule!r}")
        if "vendors" in section:
            self.tokens("model_tokens.vendors", section["vendors"])
        elif rule == "seed":
            self.bad("model_tokens.vendors", "the seed rule needs its vendor list")
        if "token_pattern" in section:
            self.pattern("model_tokens.token_pattern", section["token_pattern"])

    def sampling(self, events: frozenset[str]) -> None:
        section = self.obj("sampling", self.doc.get("sampling", {}))
        if section is None:
            return
        self.keys("sampling", section, frozenset({"rate_prop", "events"}))
        rules = self.obj("sampling.events", section.get("events", {}))
        rate_prop = section.get("rate_prop")
        for event, rule in (rules or {}).items():
            where = f"sampling.events.{event}"
            if event not in events:
                self.bad(where, "names no declared event")
                continue
            rule = self.obj(where, rule)
            if rule is None:
                continue
            self.keys(where, rule, frozenset({"always_keep"}))
            keep = self.obj(f"{where}.always_keep", rule.get("always_keep", {}))
            for prop, when in (keep or {}).items():
                ok = when == "present" or (
                    isinstance(when, list) and when and all(isinstance(v, str) for v in when)
                )
                if not ok:
                    self.bad(
                        f"{where}.always_keep.{prop}",
                        f"must be \"present\" or a list of values, got {when!r}",
                    )
            props = self.doc["events"][event].get("props", {})
            if rate_prop is not None and rate_prop not in props:
                self.bad(where, f"a sampled event must declare the rate property {rate_prop!r}")
        if rate_prop is not None and not isinstance(rate_prop, str):
            self.bad("sampling.rate_prop", "must be a property name")

    def types(self) -> frozenset[str]:
        section = self.obj("types", self.doc.get("types", {}))
        if section is None:
            return frozenset()
        for name, spec in section.items():
            where = f"types.{name}"
            if not NAME_RE.fullmatch(name):
                self.bad(where, f"type name must match {NAME_RE.pattern}")
            spec = self.obj(where, spec)
            if spec is None:
                continue
            if "ref" in spec or "auto" in spec:
                self.bad(where, "a named type cannot use 'ref' or 'auto'")
            self.prop_type(where, spec, event_props=None)
        return frozenset(section)

    def events(self, types: frozenset[str], sources: frozenset[str]) -> frozenset[str]:
        section = self.obj("events", self.doc.get("events"))
        if section is None:
            return frozenset()
        if not section:
            self.bad("events", "must declare at least one event")
        for event, body in section.items():
            where = f"events.{event}"
            if not NAME_RE.fullmatch(event):
                self.bad(where, f"event name must match {NAME_RE.pattern}")
            body = self.obj(where, body)
            if body is None:
                continue
            self.keys(where, body, frozenset({"description", "props"}))
            props = self.obj(f"{where}.props", body.get("props", {}))
            if props is None:
                continue
            for prop, spec in props.items():
                self.prop(f"{where}.props.{prop}", prop, spec, props, types, sources)
        return frozenset(section)

    def prop(
        self,
        where: str,
        prop: str,
        spec: object,
        event_props: Mapping[str, Any],
        types: frozenset[str],
        sources: frozenset[str],
    ) -> None:
        if not NAME_RE.fullmatch(prop):
            self.bad(where, f"property name must match {NAME_RE.pattern}")
        elif prop.startswith(CONTEXT_PREFIX):
            self.bad(where, f"the prefix {CONTEXT_PREFIX!r} is reserved for context properties")
        spec = self.obj(where, spec)
        if spec is None:
            return
        if "auto" in spec and spec["auto"] not in sources:
            self.bad(
                f"{where}.auto",
                f"must be one of {', '.join(sorted(sources))}, got {spec['auto']!r}",
            )
        if "ref" in spec:
            self.keys(where, spec, frozenset({"ref", "description", "auto"}))
            if spec["ref"] not in types:
                self.bad(f"{where}.ref", f"names no type in 'types', got {spec['ref']!r}")
            return
        self.prop_type(where, spec, event_props)

    def lifecycle(self, events: frozenset[str]) -> None:
        section = self.obj("lifecycle", self.doc.get("lifecycle", {}))
        if section is None:
            return
        self.keys("lifecycle", section, frozenset(_LIFECYCLE))
        for key in _LIFECYCLE:
            if key in section and section[key] not in events:
                self.bad(f"lifecycle.{key}", f"names no declared event, got {section[key]!r}")


def check_document(doc: Mapping[str, Any], *, compile_patterns: bool = True) -> list[str]:
    """Every problem in ``doc``, each as ``"<place>: <what is wrong>"``; [] if valid.

    ``compile_patterns=False`` skips compiling model patterns (the costly part);
    only for the bundled reference schema, whose patterns the test suite checks.
    """
    checker = _Checker(doc, compile_patterns)
    checker.root()
    return checker.problems
