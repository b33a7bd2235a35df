"""Lifecycle events: what a schema asks to be emitted when telemetry starts.

A schema may name an ``initialized`` event (every enabled start) and a
``first_run`` event (once per install). Their properties marked ``"auto"`` are
filled from the environment probes, the schema's own env probes and the
install identity; the host's ``startup_props`` (facts only it knows, such as
getpatter's carrier and tunnel) fill the other declared properties. Every value
still goes through ``Schema.sanitize``; a source that is None is omitted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..schema._schema import Schema
from ._identity import Identity, load_identity
from ._legacy import Legacy
from ._probes import env_probe, process_probes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

__all__ = ["lifecycle_events", "startup_events"]


def startup_events(
    schema: Schema,
    identity: Identity,
    probes: Mapping[str, object],
    env: Mapping[str, str] | None = None,
    startup_props: Mapping[str, object] | None = None,
) -> list[tuple[str, dict[str, object]]]:
    """``[(event, props), ...]`` to track once at construction, first run first."""
    e = os.environ if env is None else env
    sources: dict[str, object] = dict(probes)
    sources["days_since_install"] = identity.days_since_install
    sources["previous_version"] = identity.previous_version or "none"
    sources["last_version"] = identity.last_version
    for name, rules in schema.env_probes.items():
        sources[name] = env_probe(rules, e)
    wanted = []
    if identity.first_run and "first_run" in schema.lifecycle:
        wanted.append(schema.lifecycle["first_run"])
    if "initialized" in schema.lifecycle:
        wanted.append(schema.lifecycle["initialized"])
    out: list[tuple[str, dict[str, object]]] = []
    for event in wanted:
        auto = schema.auto_props(event)
        props = {prop: sources[src] for prop, src in auto.items() if src in sources}
        declared = schema.props.get(event, {})
        for prop, value in (startup_props or {}).items():
            if prop in declared and prop not in auto:
                props[prop] = value
        out.append((event, props))
    return out


def lifecycle_events(
    schema: Schema,
    state_dir: Path,
    app_version: str,
    count: Callable[[str], None],
    startup_props: Mapping[str, object] | None = None,
    legacy: Legacy | None = None,
) -> list[tuple[str, dict[str, object]]]:
    """Load (or create) the install identity and return the startup events.

    Call once per enabled start. Never raises: a state dir that cannot hold
    ``install.json`` costs the lifecycle events, counted ``identity_error``.
    """
    try:
        # Always: the uploader reads the install id even when no event is declared.
        identity = load_identity(state_dir, app_version, legacy=legacy)
        if not schema.lifecycle:
            return []
        return startup_events(schema, identity, process_probes(), startup_props=startup_props)
    except Exception:
        count("identity_error")
        return []
