"""Privacy at scale: 10,000 hostile inputs through the real pipeline, then the wire.

A host process tracks 10,000 generated inputs (a seeded generator: e-mail
addresses, phone numbers, file paths, API-key-shaped strings, URLs, huge
strings, nested dicts and lists, bytes, NaN/inf, huge ints, objects whose
``__str__`` raises, str subclasses that lie), flushes through the real
uploader into a recording proxy (a thread on loopback) that keeps every raw
request body and forwards it to the reference collector (a subprocess).

Every body is then gunzipped and walked: every key and string is a schema key,
an allowlisted value, or an envelope field whose format is checked by a
regex (ids, times, hash, versions); every number lies in its declared range.
The allowlist is the schema itself (``Schema.reference()``), checked by the
independent oracle in ``tests/schema_oracle.py``.

And every opt-out path, with hostile input already spooled by an earlier
opted-in run, produces zero connections (so zero bytes) on the wire.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spool import Schema
from tests.hosts import host_env, last_json, run_host
from tests.schema_oracle import allowed
from tests.servers import ScriptedServer, collector, run_uploader
from tests.test_sanitizer_properties import (
    CONTEXT_KEYS,
    EvilFloat,
    EvilStr,
    RaisingStr,
)

SCHEMA = Schema.reference()
INPUTS = 10_000
SEED = 20261124
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
SCHEMA_HASH = re.compile(r"sha256:[0-9a-f]{64}")
ENVELOPE_KEYS = {
    "schema",
    "schema_version",
    "schema_hash",
    "app",
    "app_version",
    "install_id",
    "sent_at",
    "dropped",
    "events",
}
EVENT_KEYS = {"id", "name", "time", "run_id", "props"}
# Drop reasons are fixed tokens; swallowed errors travel as "error.<token>".
REASON = re.compile(r"(error\.)?[a-z][a-z0-9_]{0,40}")

# -- the hostile generator (imported by the host process) ----------------------------------
_WORDS = ("jane", "doe", "acme", "prod", "secret", "bob.smith", "x")
_EVENTS = sorted(SCHEMA.events)
_PROPS = sorted({p for e in _EVENTS for p in SCHEMA.props[e]})
_ALLOWED = sorted(
    {v for e in _EVENTS for s in SCHEMA.props[e].values() for v in s.get("values", [])}
    | {v for e in _EVENTS for s in SCHEMA.props[e].values() for v in s.get("labels", [])}
)


def _pii(rng: random.Random) -> str:
    w = rng.choice(_WORDS)
    return rng.choice(
        (
            f"{w}@{rng.choice(_WORDS)}.com",
            f"+1 ({rng.randrange(1000):03d}) {rng.randrange(10**7):07d}",
            f"/home/{w}/projects/{rng.choice(_WORDS)}.py",
            f"C:\\Users\\{w}\\AppData\\secret.txt",
            f"sk-ant-api03-{rng.getrandbits(128):032x}",
            f"AKIA{rng.getrandbits(64):016X}",
            f"ghp_{rng.getrandbits(160):040x}",
            f"https://{w}:pw@internal.{w}.corp/path?token={rng.getrandbits(32)}",
            f"{rng.choice(_ALLOWED)}@evil.com",
            f"ft:gpt-4o:{w}:custom",
            f"1.2.3+{w}.local",
            "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(1, 40))),
        )
    )


def _scalar(rng: random.Random) -> object:
    roll = rng.randrange(20)
    if roll < 6:
        return _pii(rng)
    if roll < 9:
        return rng.choice(_ALLOWED)  # valid values, so plenty reaches the wire
    choices: list[object] = [
        rng.randbytes(rng.randrange(64)),
        rng.choice((math.nan, math.inf, -math.inf, -0.0, 1e308, -1e-308)),
        rng.choice((10**400, -(10**400), 2**63, -(2**63) - 1)),
        rng.uniform(-1e6, 1e6),
        rng.randrange(-(10**9), 10**9),
        rng.random() < 0.5,
        None,
        RaisingStr(),
        EvilStr(_pii(rng)),
        EvilFloat(rng.choice((math.nan, 3.5))),
        (rng.choice(("anthropic", "openai", "deepgram")), _pii(rng)),
    ]
    return rng.choice(choices)


def _value(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if roll < 0.01:
        return "jane.doe@example.com /home/jane " * rng.randrange(1000, 3000)  # huge
    if depth < 2 and roll < 0.1:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if depth < 2 and roll < 0.18:
        return {_pii(rng): _value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return _scalar(rng)


def hostile_inputs(seed: int, n: int) -> Iterator[tuple[object, dict[str, object]]]:
    """``n`` (event name, props) pairs: mostly schema events, every value hostile."""
    rng = random.Random(seed)
    for _ in range(n):
        name: object = rng.choice(_EVENTS) if rng.random() < 0.8 else _pii(rng)
        if rng.random() < 0.02:
            name = EvilStr(rng.choice(_EVENTS))
        own = sorted(SCHEMA.props.get(name, {})) if type(name) is str else []
        props: dict[str, object] = {}
        for _ in range(rng.randrange(8)):
            roll = rng.random()
            if own and roll < 0.7:
                key = rng.choice(own)
            elif roll < 0.8:
                key = rng.choice(sorted(CONTEXT_KEYS) + _PROPS)
            else:
                key = _pii(rng)
            props[key] = _value(rng)
        yield name, props


HOST = """
import json, sys
cfg = json.loads(sys.argv[1])
from spool import Telemetry
from tests.test_privacy_at_scale import hostile_inputs

kw = {"endpoint": cfg["endpoint"], "enabled": cfg.get("enabled", True)}
t = Telemetry("demo", "1.0.0", state_dir=cfg["state_dir"], **kw)
raised = 0
for name, props in hostile_inputs(cfg["seed"], cfg["n"]):
    try:
        t.track(name, **props)
    except BaseException:
        raised += 1
flush = t.flush(timeout=60) if cfg.get("flush") else None
status = t.status()
t.close()
print(json.dumps({"raised": raised, "status": status,
                  "flush": None if flush is None else [flush.outcome, flush.sent]}))
"""


def _host(**cfg: Any) -> dict[str, Any]:
    env = host_env(**cfg.pop("env", {}))
    proc = run_host(HOST, json.dumps(cfg), env=env, timeout=300, check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    report: dict[str, Any] = last_json(proc.stdout)
    assert report["raised"] == 0
    return report


def _check_envelope(env: dict[str, Any]) -> list[str]:
    """Assert every key, string and number of one envelope is allowed; returns its ids."""
    # "errors" ({kind: count}, swallowed errors) travels beside "dropped" when present.
    assert ENVELOPE_KEYS <= set(env) <= ENVELOPE_KEYS | {"errors"}
    assert env["schema"] == SCHEMA.name and env["schema_version"] == SCHEMA.version
    assert SCHEMA_HASH.fullmatch(env["schema_hash"]) and env["schema_hash"] == SCHEMA.hash
    assert env["app"] == "demo" and env["app_version"] == "1.0.0"
    assert UUID.fullmatch(env["install_id"])
    assert ISO_TIME.fullmatch(env["sent_at"])
    for reason, count in [*env["dropped"].items(), *env.get("errors", {}).items()]:
        assert REASON.fullmatch(reason), reason
        assert type(count) is int and count > 0
    context = SCHEMA.context("1.0.0")
    for event in env["events"]:
        assert set(event) == EVENT_KEYS
        assert UUID.fullmatch(event["id"]) and UUID.fullmatch(event["run_id"])
        assert ISO_TIME.fullmatch(event["time"])
        name = event["name"]
        assert type(name) is str and name in SCHEMA.events
        props = event["props"]
        assert {k: props[k] for k in CONTEXT_KEYS} == context
        for key, value in props.items():
            if key not in context:
                assert key in SCHEMA.props[name] and allowed(SCHEMA, name, key, value, {})
    return [event["id"] for event in env["events"]]


def test_ten_thousand_hostile_inputs_put_only_allowlisted_data_on_the_wire(
    tmp_path: Path,
) -> None:
    with collector(tmp_path / "collector.db") as c:
        # A recording proxy: keeps each raw request body, forwards it to the collector.
        with ScriptedServer(relay=c.relay) as proxy:
            report = _host(
                state_dir=str(tmp_path / "state"),
                endpoint=proxy.url,
                seed=SEED,
                n=INPUTS,
                flush=True,
            )
        stats = c.stats()
    # The host's own trigger may start a detached uploader mid-run (past
    # trigger_events); it posts through the same proxy, so every body is here.
    assert report["flush"][0] == "empty", report
    assert report["status"]["queued"] == 0
    ids: set[str] = set()
    for request in proxy.received:
        ids.update(_check_envelope(json.loads(gzip.decompress(request.body))))
    on_wire = len(ids)
    assert on_wire == stats["events"] > INPUTS // 2
    dropped = report["status"]["dropped"]
    print(
        f"privacy at scale: {INPUTS} hostile inputs, {len(proxy.received)} request bodies, "
        f"{on_wire} events on the wire, all allowlisted; counted on the host: {dropped}"
    )


OPT_OUTS = [
    pytest.param({"env": {"DO_NOT_TRACK": "1"}}, id="DO_NOT_TRACK"),
    pytest.param({"env": {"DEMO_TELEMETRY_DISABLED": "1"}}, id="DEMO_TELEMETRY_DISABLED"),
    pytest.param({"enabled": False}, id="enabled=False"),
    pytest.param({"marker": True}, id="telespool-disable-marker"),
]


@pytest.mark.parametrize("opt_out", OPT_OUTS)
def test_opted_out_hostile_traffic_puts_zero_bytes_on_the_wire(
    tmp_path: Path, opt_out: dict[str, Any]
) -> None:
    state = tmp_path / "state"
    # An earlier opted-in run spooled hostile input (no endpoint: nothing sent yet).
    earlier = _host(state_dir=str(state), endpoint=None, seed=1, n=1000)
    assert earlier["status"]["queued"] > 0
    if opt_out.get("marker"):
        (state / "disabled").touch()  # what `telespool disable` writes
    with ScriptedServer() as listener:
        report = _host(
            state_dir=str(state),
            endpoint=listener.url,
            seed=2,
            n=2000,
            flush=True,
            enabled=opt_out.get("enabled", True),
            env=opt_out.get("env", {}),
        )
        # A forced uploader pass on the same state dir sends nothing either.
        uploader_env = host_env(**opt_out.get("env", {}))
        done = run_uploader(state, "--force", env=uploader_env)
        connections = listener.settled_connections()
    assert report["status"]["enabled"] is False
    assert report["flush"][0] == "disabled"
    assert done["sent"] == 0
    assert connections == 0  # no connection: zero bytes
    assert not (state / "spool.db").exists()  # what was spooled is purged
