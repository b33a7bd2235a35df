"""Parity with getpatter 0.7.0's consent, environment probes and sampling, the seed as oracle.

The seed's ``consent.py``, ``env.py``, ``environment.py``, ``client.py`` and
``install_id.py`` are loaded from the pinned wheel with a stub parent package
(tests/getpatter_seed.py). They read ``os.environ`` and the real file system,
so each case sets the process environment exactly (HOME and the state dirs
inside the test) and gives telespool the same mapping. Skipped on Python 3.10.

Intended differences, each pinned by its own test below and listed in
docs/migrating.md: telespool detects more CI systems and test runners
(``more_ci_and_test_markers``); it honours getpatter's opt-out marker in every
directory any getpatter version used (``legacy_markers_everywhere``); it reads
a ``/proc/1/cgroup`` that is not UTF-8 (``cgroup_not_utf8``).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spool import Legacy, Telemetry
from spool.install import _consent, _probes
from spool.install._sampling import Sampler, keep_run, parse_rate
from tests import getpatter_seed
from tests.seed_parity import SCHEMA

pytestmark = pytest.mark.skipif(not getpatter_seed.AVAILABLE, reason=getpatter_seed.SKIP_REASON)


@pytest.fixture(scope="module")
def seed() -> dict[str, Any]:
    return getpatter_seed.load()


@contextlib.contextmanager
def exactly(env: Mapping[str, str]) -> Iterator[None]:
    """The process environment is ``env`` and nothing else, for the seed's os.getenv calls."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _base(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "PATH": os.environ.get("PATH", "")}


# -- truthiness, CI and test markers ---------------------------------------------------------
WORDS = [
    None,
    "",
    " ",
    "0",
    "1",
    "false",
    "FALSE",
    " False ",
    "no",
    "No",
    "off",
    "OFF",
    "true",
    "yes",
    "on",
    "2",
    "-1",
    "yes please",
    "none",
    "null",
    "disabled",
    "\t0\n",
    "０",
]


def test_truthiness_is_the_seeds(seed: dict[str, Any]) -> None:
    for word in WORDS:
        assert _consent.is_truthy(word) == seed["env"].is_truthy(word), word


def test_ci_detection_is_the_seeds_for_every_seed_variable(
    seed: dict[str, Any], tmp_path: Path
) -> None:
    # As a set: telespool checks the vendor-specific ones first, to name the vendor.
    assert set(_consent.SEED_CI_VARS) == set(seed["env"]._CI_ENV_VARS)
    for var, word in itertools.product(seed["env"]._CI_ENV_VARS, WORDS):
        env = _base(tmp_path) | ({} if word is None else {var: word})
        with exactly(env):
            want = seed["env"].is_ci()
        assert (_consent.ci_vendor(env) is not None) == want, (var, word)


TEST_MARKERS: list[dict[str, str]] = [
    {},
    {"PYTEST_CURRENT_TEST": ""},  # set at all, even empty
    {"PYTEST_CURRENT_TEST": "tests/test_x.py::test_y (call)"},
    {"PATTER_ENV": "test"},
    {"PATTER_ENV": " TEST "},
    {"PATTER_ENV": "testing"},
    {"PATTER_ENV": "production"},
    {"NODE_ENV": "test"},
    {"NODE_ENV": "Test\n"},
    {"NODE_ENV": "development"},
    {"DEMO_ENV": "test"},  # another app's prefix: not getpatter's marker
]


def test_test_markers_are_the_seeds(seed: dict[str, Any], tmp_path: Path) -> None:
    for marker in TEST_MARKERS:
        env = _base(tmp_path) | marker
        with exactly(env):
            want = seed["env"].is_test()
        # modules=(): this process imports pytest, which telespool also counts (see below).
        assert _consent.under_test_runner(env, "PATTER", modules=()) == want, marker


def test_more_ci_and_test_markers_are_an_intended_difference(
    seed: dict[str, Any], tmp_path: Path
) -> None:
    """telespool is also off under CI systems and test runners the seed misses."""
    extra_ci = [var for var, _ in _consent._CI_VARS if var not in _consent.SEED_CI_VARS]
    for var in extra_ci:
        env = _base(tmp_path) | {var: "1"}
        with exactly(env):
            assert not seed["env"].is_ci()
        assert _consent.ci_vendor(env) is not None, var
    for var in _consent._EXTRA_TEST_VARS:
        env = _base(tmp_path) | {var: "1"}
        with exactly(env):
            assert not seed["env"].is_test()
        assert _consent.under_test_runner(env, "PATTER", modules=())
    env = _base(tmp_path)
    assert _consent.under_test_runner(
        env, "PATTER", modules={"pytest"}
    )  # imported, not yet running


# -- the consent matrix ----------------------------------------------------------------------
SWITCH = [None, "1", "0", "yes please", " OFF "]
MARKER_PLACES = ["none", "read_dir", "bare_xdg"]
CI_CASES: list[dict[str, str]] = [{}, {"CI": "true"}, {"CI": "0"}, {"GITHUB_ACTIONS": "true"}]
TEST_CASES: list[dict[str, str]] = [
    {},
    {"PYTEST_CURRENT_TEST": ""},
    {"PATTER_ENV": "test"},
    {"NODE_ENV": "test"},
    {"NODE_ENV": "production"},
]
DIRS = ["home", "xdg", "state_dir"]


def _place_marker(home: Path, where: str, layout: str) -> None:
    if where == "none":
        return
    if where == "read_dir":  # the one directory the seed's _state_dir() reads
        d = {
            "home": home / ".getpatter",
            "xdg": home / "xdg" / "getpatter",
            "state_dir": home / "override",
        }[layout]
    else:  # the bare $XDG_STATE_HOME of getpatter < 0.6.8 (honoured only when XDG is set)
        d = home / "xdg"
    d.mkdir(parents=True, exist_ok=True)
    (d / "telemetry-disabled").write_text("1")


def test_the_full_consent_matrix_is_is_enabled(seed: dict[str, Any], tmp_path: Path) -> None:
    """Every combination of DO_NOT_TRACK, PATTER_TELEMETRY_DISABLED, the persisted marker,
    the in-code flag, CI and test markers, under each state-dir layout: 10,500 cases."""
    cases = 0
    combos = itertools.product(
        DIRS, MARKER_PLACES, SWITCH, SWITCH, [None, True, False], CI_CASES, TEST_CASES
    )
    for i, (layout, marker, dnt, disabled, flag, ci, test) in enumerate(combos):
        home = tmp_path / str(i)
        home.mkdir()
        env = _base(home) | ci | test
        if layout == "xdg":
            env["XDG_STATE_HOME"] = str(home / "xdg")
        if layout == "state_dir":
            env["PATTER_TELEMETRY_STATE_DIR"] = str(home / "override")
        if dnt is not None:
            env["DO_NOT_TRACK"] = dnt
        if disabled is not None:
            env["PATTER_TELEMETRY_DISABLED"] = disabled
        if marker == "bare_xdg" and layout != "xdg":
            continue  # the seed reads a bare-XDG marker only when XDG_STATE_HOME is set
        _place_marker(home, marker, layout)
        with exactly(env):
            want = seed["consent"].is_enabled(flag)
            markers = Legacy.getpatter(env).markers  # expands ~ with this HOME
        got = _consent.resolve(
            "getpatter",
            enabled=flag is not False,
            state_dir=home / "telespool",
            env=env,
            prefix="PATTER",
            legacy_markers=markers,
            modules=(),
        )
        assert got.enabled == want, (layout, marker, dnt, disabled, flag, ci, test, got)
        cases += 1
    assert cases == 3 * 3 * 5 * 5 * 3 * 4 * 5 - 2 * 5 * 5 * 3 * 4 * 5  # 10,500 distinct cases


def test_legacy_markers_everywhere_is_an_intended_difference(
    seed: dict[str, Any], tmp_path: Path
) -> None:
    """A marker in ~/.getpatter still counts after the user sets XDG_STATE_HOME (the seed
    then reads only $XDG_STATE_HOME/getpatter): an opt-out never comes undone by a move."""
    _place_marker(tmp_path, "read_dir", "home")
    env = _base(tmp_path) | {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    with exactly(env):
        assert seed["consent"].is_enabled(None)
        markers = Legacy.getpatter(env).markers
    decision = _consent.resolve(
        "getpatter",
        enabled=True,
        state_dir=None,
        env=env,
        prefix="PATTER",
        legacy_markers=markers,
        modules=(),
    )
    assert decision == _consent.Decision(False, "legacy_marker")


# -- the probes ------------------------------------------------------------------------------
PROBE_VARS = sorted(
    {var for names, _ in _probes._AGENTS for var in names}
    | {
        var
        for t in (_probes._SERVERLESS, _probes._CLOUD, _probes._PACKAGE_MANAGERS)
        for names, _ in t
        for var in names
    }
    | {"UV", "VIRTUAL_ENV_PROMPT", "CONDA_DEFAULT_ENV", "KUBERNETES_SERVICE_HOST"}
)
SEED_PROBES = {
    "invoked_by_agent": "invoked_by_agent",
    "container": "in_container",
    "serverless": "serverless",
    "cloud": "cloud",
    "package_manager": "package_manager",
}


def seed_environment(root: Path) -> Any:
    """The seed's environment.py with its two file paths under ``root`` (nothing else changed)."""
    source = getpatter_seed.call_site_source("telemetry/environment")
    for path in ('"/.dockerenv"', '"/proc/1/cgroup"'):
        assert source.count(path) == 1, path
        source = source.replace(path, repr(str(root) + path.strip('"')))
    namespace: dict[str, Any] = {"__name__": "seed_environment"}
    exec(compile(source, "getpatter/telemetry/environment.py", "exec"), namespace)
    return namespace


def _compare_probes(seed_env: Any, env: Mapping[str, str], root: Path) -> None:
    with exactly(env):
        want = {mine: seed_env[theirs]() for mine, theirs in SEED_PROBES.items()}
    got = _probes.probe_all(env, root)
    assert {k: got[k] for k in SEED_PROBES} == want, dict(env)


@settings(max_examples=1500, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(PROBE_VARS),
        st.sampled_from(["", "1", "0", "true", "x", "(uv) proj", "my-uv-env", "base"]),
        max_size=8,
    )
)
def test_probes_match_environment_py_for_any_variables(
    seed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, variables: dict[str, str]
) -> None:
    root = tmp_path_factory.mktemp("root")
    _compare_probes(seed_environment(root), {"HOME": str(root)} | variables, root)


CGROUPS: list[bytes | None] = [
    None,
    b"",
    b"0::/\n",
    b"12:devices:/docker/0123abcd\n",
    b"0::/system.slice/containerd.service\n",
    b"11:cpuset:/kubepods/besteffort/pod1234\n",
    b"0::/user.slice/user-1000.slice\n",
    b"0::/lxc/payload\n",
]


@pytest.mark.parametrize("dockerenv", [False, True])
@pytest.mark.parametrize("cgroup", CGROUPS)
def test_container_probe_matches_on_the_same_files(
    seed: dict[str, Any], tmp_path: Path, dockerenv: bool, cgroup: bytes | None
) -> None:
    if dockerenv:
        (tmp_path / ".dockerenv").write_text("")
    if cgroup is not None:
        (tmp_path / "proc" / "1").mkdir(parents=True)
        (tmp_path / "proc" / "1" / "cgroup").write_bytes(cgroup)
    seed_env = seed_environment(tmp_path)
    for k8s in ({}, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, {"KUBERNETES_SERVICE_HOST": ""}):
        _compare_probes(seed_env, {"HOME": str(tmp_path)} | k8s, tmp_path)


def test_cgroup_not_utf8_is_an_intended_difference(seed: dict[str, Any], tmp_path: Path) -> None:
    """The seed's probe raises UnicodeDecodeError on a non-UTF-8 cgroup file (its caller then
    drops every deploy-shape dimension); telespool still answers."""
    (tmp_path / "proc" / "1").mkdir(parents=True)
    (tmp_path / "proc" / "1" / "cgroup").write_bytes(b"\xff\xfe0::/docker/x\n")
    seed_env = seed_environment(tmp_path)
    with exactly({"HOME": str(tmp_path)}), pytest.raises(UnicodeDecodeError):
        seed_env["in_container"]()
    assert _probes.container({}, tmp_path) is True


def test_probes_match_on_this_machines_real_files(seed: dict[str, Any]) -> None:
    env = {k: v for k, v in os.environ.items() if k in PROBE_VARS} | {"HOME": "/nonexistent"}
    with exactly(env):
        want = {
            mine: getattr(seed["environment"], theirs)() for mine, theirs in SEED_PROBES.items()
        }
    got = _probes.probe_all(env)
    assert {k: got[k] for k in SEED_PROBES} == want


# -- sampling --------------------------------------------------------------------------------
RATES = [
    "0",
    "0.0",
    "0.001",
    "0.1",
    "0.25",
    "0.5",
    "0.9",
    "0.999",
    "1",
    "1.0",
    " 0.5 ",
    "1.5",
    "-0.1",
    "nan",
    "inf",
    "abc",
    "",
    "50%",
    "1e-3",
    "0x1",
]


def test_the_rate_is_read_as_the_seed_reads_it(seed: dict[str, Any], tmp_path: Path) -> None:
    for raw in [None, *RATES]:
        env = _base(tmp_path) | ({} if raw is None else {"PATTER_TELEMETRY_SAMPLE": raw})
        with exactly(env):
            want = seed["env"].sample_rate()
        assert parse_rate(raw)[0] == want, raw


def test_the_keep_decision_is_the_seeds_for_the_same_run_id(seed: dict[str, Any]) -> None:
    install_id, client = seed["install_id"], seed["client"]
    saved = install_id._RUN_ID
    try:
        for _ in range(2000):
            run_id = uuid.uuid4().hex
            install_id._RUN_ID = run_id
            ratio = client._run_keep_ratio()
            for rate in (0.0, 0.001, 0.1, 0.5, 0.9, 0.999, 1.0):
                want = rate >= 1.0 or ratio < rate
                assert keep_run(run_id, rate) == want, (run_id, rate)
    finally:
        install_id._RUN_ID = saved


SEQUENCE: list[tuple[str, dict[str, Any]]] = [
    ("sdk_initialized", {"carrier": "twilio"}),
    ("call_started", {"engine": "realtime", "carrier": "twilio"}),
    ("call_completed", {"outcome": "completed", "duration_seconds": 30}),
    ("call_completed", {"outcome": "error", "error_code": "timeout"}),
    ("call_completed", {"outcome": "completed", "error_code": None}),  # passed at all: kept
    ("call_completed", {"outcome": "no_answer", "carrier": "telnyx"}),
    ("config_incomplete", {"missing": "llm_key"}),
    ("feature_used", {"engine": "realtime"}),
]


def _seed_recorded(seed: dict[str, Any], run_id: str, rate: str, home: Path) -> list[Any]:
    """What the seed's TelemetryClient emits (its debug mode prints each built event)."""
    env = _base(home) | {
        "PATTER_TELEMETRY_SAMPLE": rate,
        "PATTER_TELEMETRY_DEBUG": "1",
        "PATTER_TELEMETRY_STATE_DIR": str(home / "seed"),
    }
    saved = seed["install_id"]._RUN_ID
    err = io.StringIO()
    try:
        seed["install_id"]._RUN_ID = run_id
        with exactly(env), contextlib.redirect_stderr(err):
            client = seed["client"].TelemetryClient(sdk_version="0.7.0")
            for name, dims in SEQUENCE:
                client.record(name, **dims)
    finally:
        seed["install_id"]._RUN_ID = saved
    lines = [json.loads(line.split("] ", 1)[1]) for line in err.getvalue().splitlines()]
    return [(e["event"], e.get("sample_rate")) for e in lines]


def test_sampled_events_are_the_seeds_for_the_same_run_and_rate(
    seed: dict[str, Any], tmp_path: Path
) -> None:
    """The same events kept, each with the same sample_rate, for kept and dropped runs."""
    tried = set()
    for i in range(60):
        run_id = uuid.uuid4().hex
        for rate in ("0", "0.3", "0.5", "0.999", "1", "abc"):
            want = _seed_recorded(seed, run_id, rate, tmp_path / f"{i}-{rate}")
            r, _ = parse_rate(rate)
            sampler = Sampler(SCHEMA.sampleable, r, keep_run(run_id, r), SCHEMA.sampling_rate_prop)
            got = []
            for name, dims in SEQUENCE:
                props = dict(dims)
                if r < 1.0 and name in sampler.events and not sampler.apply(name, props):
                    continue
                clean = SCHEMA.sanitize(name, props, lambda reason: None)
                assert clean is not None
                got.append((name, clean.get("sample_rate")))
            assert got == want, (run_id, rate)
            tried.add((rate, len(got)))
    assert ("0.5", len(SEQUENCE)) in tried and ("0.5", len(SEQUENCE) - 3) in tried  # both ways


def _stored(state_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    db = sqlite3.connect(state_dir / "spool.db")
    try:
        rows = db.execute("SELECT name, props FROM events ORDER BY id").fetchall()
    finally:
        db.close()
    return [(n, json.loads(p)) for n, p in rows]


def _run_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rate: str, keep: bool) -> Any:
    # A run id the seed's rule keeps (or drops) at this rate, found as the seed would decide.
    while True:
        run_id = uuid.uuid4().hex
        if keep_run(run_id, float(rate)) == keep:
            break
    monkeypatch.setenv("PATTER_TELEMETRY_SAMPLE", rate)
    monkeypatch.setenv("PATTER_TELEMETRY_ALLOW_CI", "1")
    monkeypatch.setattr("spool.install._ids.new_run_id", lambda: run_id)
    state_dir = tmp_path / "state"
    t = Telemetry("getpatter", "0.7.0", env_prefix="PATTER", state_dir=state_dir)
    assert t.run_id == run_id
    for name, dims in SEQUENCE:
        t.track(name, **dims)
    status = t.status()
    t.close()
    return status, _stored(state_dir)


def test_events_sampled_out_are_counted_sampled_never_lost_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, stored = _run_with(tmp_path, monkeypatch, "0.5", keep=False)
    names = [n for n, _ in stored if n not in ("first_run", "sdk_initialized")] + [
        "sdk_initialized"
    ]
    # Dropped: the call_started and the two clean call_completed; the errors are kept.
    assert status["dropped"] == {"sampled": 3}
    assert len(SEQUENCE) == len(names) + 3
    kept_calls = [p for n, p in stored if n == "call_completed"]
    assert [p["outcome"] for p in kept_calls] == ["error", "completed"]
    assert all(p["sample_rate"] == 0.5 for p in kept_calls)
    # Never sampled, and never stamped: the activation and error-free events.
    assert all("sample_rate" not in p for n, p in stored if n != "call_completed")


def test_a_kept_run_stamps_the_rate_on_its_sampleable_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, stored = _run_with(tmp_path, monkeypatch, "0.25", keep=True)
    assert "sampled" not in status["dropped"]
    calls = [p for n, p in stored if n in ("call_started", "call_completed")]
    assert len(calls) == 5 and all(p["sample_rate"] == 0.25 for p in calls)
    assert all(
        "sample_rate" not in p for n, p in stored if n not in ("call_started", "call_completed")
    )


def test_a_rate_of_one_or_an_invalid_rate_samples_nothing_and_stamps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i, rate in enumerate(("1", "abc", "1.5")):
        monkeypatch.setenv("PATTER_TELEMETRY_SAMPLE", rate)
        monkeypatch.setenv("PATTER_TELEMETRY_ALLOW_CI", "1")
        state_dir = tmp_path / str(i)
        with Telemetry("getpatter", "0.7.0", env_prefix="PATTER", state_dir=state_dir) as t:
            for name, dims in SEQUENCE:
                t.track(name, **dims)
            dropped = t.status()["dropped"]
        assert "sampled" not in dropped
        stored = _stored(state_dir)
        assert all("sample_rate" not in p for _, p in stored)
        assert len([n for n, _ in stored if n != "first_run"]) == len(SEQUENCE) + 1


def test_these_intended_differences_are_in_migrating_md() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "migrating.md").read_text("utf-8")
    for name in ("more_ci_and_test_markers", "legacy_markers_everywhere", "cgroup_not_utf8"):
        assert f"`{name}`" in text, name
