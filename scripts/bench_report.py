"""Render scripts/bench.py's results as docs/performance.md."""

from __future__ import annotations

from typing import Any

# The targets from the design blueprint (long table rows: not code).
TARGETS = """\
| what | target |
|---|---|
| `track()` per event | p50 ≤ 20 µs, p99 ≤ 60 µs, max < 1 ms; ≤ 2× raw insert; full ≤ 1.2× empty |
| exit delay (endpoint up, refused, blackholed) | ≤ 5 ms over a host without telemetry |
| `import spool` | ≤ 10 ms over a bare interpreter |
| construction + first `track()` | ≤ 30 ms over a bare interpreter |
| drain | ≥ 200,000 events/s to a loopback sink; memory independent of backlog |
| disk | database + WAL never exceed the cap |
"""


NOTES = """\
## Reading these figures

- **The floor is SQLite.** One committed WAL insert is the raw figure (p50);
  the ratio to it, measured in alternating blocks, is the portable number.
  Around the insert, `track()` runs about 3.5 µs of Python in a hot loop
  (sanitizing and JSON encoding fused into one pass over a compiled plan,
  about 0.8 µs for four enum props; a pooled random id 0.6 µs; the timestamp
  0.5 µs; the writer's lock and checks), which costs nearer 6 µs interleaved
  with SQLite's syscalls. That is why the ratio moves with the machine's
  state (1.5× to 2.1× seen on this VM on one day, with the same code).
- **p99 and max.** SQLite syncs at every WAL cycle: the WAL and the database
  around a checkpoint, and the WAL header when the next write restarts the
  WAL. A helper thread waits for a 5 ms pause in appends and does all three
  itself, so no `track()` waits for an fsync; new spools use 1 KiB pages, so
  the WAL fills 2.4× slower. The raw insert pays its checkpoints inline: that
  is its max. While appends flow, the helper looks for a pause every 20 ms;
  each look costs the appending thread a GIL switch (looking every 5 ms put
  `track()`'s p99 25-40 µs above the raw insert's). Once the WAL is a third
  of the way to SQLite's inline checkpoint, any 1 ms gap will do (bursts
  with 5 ms pauses otherwise met it every ~490 events). What is left in the
  tail is the machine: ext4 journal commits while the WAL file grows, which
  the raw insert's own p99 and p99.9 show.
  A flood with no pause at all reaches SQLite's inline autocheckpoint at a
  quarter of the cap (one stall per ~4,000 events).
- **At the cap** no call evicts: past the eviction mark `track()` kicks the
  helper thread, which deletes the oldest events in slices of 128 rows on the
  writer's connection, and gives freed pages back in the next pause. If it
  falls behind a flood (or a reader pins the WAL), the newest rows are counted
  `cap` instead of written, so database + WAL stay under the cap.
- **Exit delay** is measured from the host's last line of work to its process
  being gone, median of 9 runs, each run isolated from the previous run's
  detached uploader (on 2 cores that child's start-up would otherwise compete
  with the next run's exit). What remains is closing the spool (one
  checkpoint and fsync), claiming the spawn in SQLite, one `posix_spawn` and
  the interpreter tearing down the extra modules. telespool never waits for
  the network at exit; posthog and segment do, and still lose the events.
- **Import**: `import spool` loads json, sqlite3 (with datetime), threading and
  telespool's own modules; no dataclasses, typing, subprocess, urllib3,
  filelock or sqlite-utils. The anchors load their HTTP stacks at import.
- **Drain** is one uploader process, a single connection reading and a
  worker thread deleting acknowledged batches, gzip level 1, into a keep-alive
  loopback sink in another process. Peak RSS is the same for 10k and 100k
  queued: batches stream, the queue is never loaded whole.
"""


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def render(r: dict[str, Any]) -> str:
    out = [
        "# Performance",
        "",
        "Measured by `scripts/bench.py` in one run on one machine; every anchor was",
        "measured side by side in the same run. Figures move by ±30% between runs on",
        "this shared 2-core VM; ratios within a run are the meaningful numbers.",
        "",
        f"- **Machine:** {r['machine']}",
        f"- **Date:** {r['date']}",
        "- **Reproduce:** `scripts/test` (creates `.venv`), then",
        "  `.venv/bin/pip install -e '.[bench]' && .venv/bin/python scripts/bench.py`",
        "  (`--quick` for a smoke run). Raw figures land in `docs/performance.json`.",
        "",
        "## Targets",
        "",
        TARGETS,
    ]
    out += _per_event(r["per_event"], r.get("track_vs_raw_round_ratios") or [])
    out += _imports(r["import"])
    out += _exit(r["exit"])
    if r.get("drain"):
        out += _drain(r["drain"])
    out += _disk(r["disk"])
    if r.get("hosts"):
        out += _hosts(r["hosts"], r.get("track_vs_raw") or {})
    out += NOTES.splitlines()
    return "\n".join(out) + "\n"


def _per_event(pe: dict[str, dict[str, float]], rounds: list[float]) -> list[str]:
    raw = pe["raw sqlite3 WAL insert"]["p50"]
    empty = pe["telespool track(), empty spool"]["p50"]
    lines = [
        "## Per-event cost (µs per call, same machine, same run)",
        "",
        "`track()` includes sanitizing against the reference schema, JSON encoding,",
        "a random event id and one committed INSERT in WAL mode. posthog and segment",
        "only append to an in-memory queue (and lose it on a crash); persist-queue",
        "pickles into SQLite with a commit per put.",
        "",
        _row(["call", "p50", "p99", "p99.9", "max", "mean", "p50 ÷ raw sqlite3"]),
        _row(["---"] * 7),
    ]
    for name, s in pe.items():
        lines.append(
            _row(
                [
                    name,
                    f"{s['p50']:.1f}",
                    f"{s['p99']:.1f}",
                    f"{s.get('p999', float('nan')):.0f}",
                    f"{s['max']:.0f}",
                    f"{s['mean']:.1f}",
                    f"{s['p50'] / raw:.2f}×",
                ]
            )
        )
    full = pe["telespool track(), spool 90% full"]["p50"]
    lines += [
        "",
        f"90% full vs empty (p50): **{full / empty:.2f}×** (target ≤ 1.2×).",
        f"track() vs raw sqlite3 insert (p50): **{empty / raw:.2f}×** (target ≤ 2×).",
        "",
        *_call_path_verdicts(pe),
        "",
        "track() (empty spool) and the raw insert are measured in 10 alternating blocks, so",
        "both see the same machine; the per-block ratios of medians were "
        + ", ".join(f"{x:.2f}" for x in rounds)
        + ".",
        "",
    ]
    return lines


def _call_path_verdicts(pe: dict[str, dict[str, float]]) -> list[str]:
    """The call-path targets against track() on an empty spool, beside the raw insert."""
    t = pe["telespool track(), empty spool"]
    raw = pe["raw sqlite3 WAL insert"]
    full = pe["telespool track(), spool 90% full"]
    checks = [
        ("p50", "≤ 20 µs", f"{t['p50']:.1f} µs", f"{raw['p50']:.1f} µs", t["p50"] <= 20),
        ("p99", "≤ 60 µs", f"{t['p99']:.1f} µs", f"{raw['p99']:.1f} µs", t["p99"] <= 60),
        (
            "max",
            "< 1 ms",
            f"{t['max'] / 1000:.2f} ms",
            f"{raw['max'] / 1000:.2f} ms",
            t["max"] < 1000,
        ),
        (
            "p50 ÷ raw insert",
            "≤ 2×",
            f"{t['p50'] / raw['p50']:.2f}×",
            "1.00×",
            t["p50"] / raw["p50"] <= 2,
        ),
        (
            "p99 ÷ raw insert",
            "≤ 1.2×",
            f"{t['p99'] / raw['p99']:.2f}×",
            "1.00×",
            t["p99"] / raw["p99"] <= 1.2,
        ),
        (
            "max ÷ raw insert",
            "≤ 1×",
            f"{t['max'] / raw['max']:.2f}×",
            "1.00×",
            t["max"] / raw["max"] <= 1,
        ),
        (
            "p50, 90% full ÷ empty",
            "≤ 1.2×",
            f"{full['p50'] / t['p50']:.2f}×",
            "",
            full["p50"] / t["p50"] <= 1.2,
        ),
    ]
    lines = [
        "Call-path targets, `track()` on an empty spool (interleaved with the raw insert):",
        "",
        _row(["figure", "target", "track()", "raw insert, same run", "verdict"]),
        _row(["---"] * 5),
    ]
    for name, target, got, anchor, ok in checks:
        lines.append(_row([name, target, got, anchor, "met" if ok else "missed"]))
    return [*lines, ""]


def _imports(im: dict[str, float]) -> list[str]:
    bare = im["bare interpreter"]
    lines = [
        "## Import and start-up (whole processes, median ms)",
        "",
        _row(["process", "wall ms", "over bare interpreter"]),
        _row(["---"] * 3),
    ]
    for name, ms in im.items():
        lines.append(
            _row([name, f"{ms:.1f}", "" if name == "bare interpreter" else f"+{ms - bare:.1f} ms"])
        )
    return [*lines, ""]


def _exit(ex: dict[str, dict[str, float]]) -> list[str]:
    base = ex["no telemetry"]
    conds = list(base)
    lines = [
        "## Exit delay (median ms from the host's last line of work to process gone)",
        "",
        "A host tracks 10 events and returns normally. Endpoint *up* is a loopback",
        "server answering 200; *refused* has nothing listening; *blackholed* completes",
        "the TCP handshake and never answers.",
        "",
        _row(["host", *conds, *[f"over none ({c})" for c in conds]]),
        _row(["---"] * (1 + 2 * len(conds))),
    ]
    for name, row in ex.items():
        cells = [f"{row[c]:.1f}" for c in conds]
        over = ["" if name == "no telemetry" else f"+{row[c] - base[c]:.1f}" for c in conds]
        lines.append(_row([name, *cells, *over]))
    ts, ph, sg = ex.get("telespool", {}), ex.get("posthog", {}), ex.get("segment", {})
    lines.append("")
    for c in conds:
        if ts and ph and sg:
            lines.append(
                f"- {c}: telespool +{ts[c] - base[c]:.1f} ms, posthog +{ph[c] - base[c]:.0f} ms, "
                f"segment +{sg[c] - base[c]:.0f} ms."
            )
    return [*lines, ""]


def _drain(dr: dict[str, Any]) -> list[str]:
    lines = ["## Drain (uploader → loopback sink, deletes included)", ""]
    for key, value in dr.items():
        lines.append(f"- {key}: {value}")
    return [*lines, ""]


def _disk(dk: dict[str, Any]) -> list[str]:
    cap = dk["cap"]
    lines = [
        "## Disk",
        "",
        _row(["events tracked", "events queued", "bytes on disk (db + WAL)", "bytes per event"]),
        _row(["---"] * 4),
    ]
    for p in dk["points"]:
        per = p["disk_bytes"] / max(p["queued"], 1)
        lines.append(
            _row([f"{p['tracked']:,}", f"{p['queued']:,}", f"{p['disk_bytes']:,}", f"{per:.0f}"])
        )
    lines += [
        "",
        f"Flood of {dk['flood']:,} events against the default cap of {cap:,} bytes:",
        f"the largest database + WAL seen was **{dk['worst_disk']:,} bytes**",
        f"({dk['worst_disk'] / cap:.1%} of the cap); {dk['evicted']:,} oldest events were",
        f"evicted and counted, {dk['queued_after']:,} stayed queued; the flood took",
        f"{dk['seconds']:.1f} s ({dk['flood'] / dk['seconds']:,.0f} track() calls/s).",
        "",
    ]
    return lines


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _hosts(h: dict[str, Any], vs_raw: dict[str, Any]) -> list[str]:
    """The real-host figures (issue 11), each against its target, from bench_hosts.run()."""
    load = ", ".join(f"{x:.1f}" for x in h.get("load_average", []))
    lines = [
        "## Real hosts (`scripts/bench_hosts.py`, in the same run)",
        "",
        f"Load average at the end: {load}. Raw figures in `docs/performance-hosts.json`.",
        "",
        "| figure | target | measured | verdict |",
        "|---|---|---|---|",
    ]
    if vs_raw:
        for key, target in (("p50", 2.0), ("p99", 1.2), ("max", 1.0)):
            ratio = vs_raw.get(key)
            if isinstance(ratio, (int, float)):
                lines.append(
                    _row([f"`track()` ÷ raw sqlite3 insert, {key}", f"≤ {target:g}×",
                          f"{ratio:.2f}×", _verdict(ratio <= target)])
                )
    t = h["threads"]
    names = [k for k in ("4_threads", "8_threads", "32_threads") if k in t]
    drops = [t[k]["dropped"] for k in names]
    p50s = [t[k]["p50_ratio_to_single"] for k in names]
    lines.append(_row(["thread bursts (4, 8, 32): events dropped", "0",
                       ", ".join(str(d) for d in drops), _verdict(not any(drops))]))
    lines.append(_row(["thread bursts: p50 ÷ single-thread p50", "≤ 2×",
                       ", ".join(f"{x:.2f}×" for x in p50s), _verdict(max(p50s) <= 2)]))
    c = h["cap"]
    lines.append(_row(["flood of 3× the cap: max ÷ empty-spool max", "≤ 2×",
                       f"{c['max_ratio']:.2f}×", _verdict(c["max_ratio"] <= 2)]))
    lines.append(_row(["flood at the cap: calls > 1 ms per 10k ÷ empty spool (32× cap)", "≤ 2×",
                       f"{c['at_cap']['over_1ms_per_10k']:.1f} ÷ "
                       f"{c['empty']['over_1ms_per_10k']:.1f} = {c['over_1ms_ratio']:.2f}×",
                       _verdict(c["over_1ms_ratio"] <= 2)]))
    if "over_1ms_ratio_same_cap" in c:
        lines.append(_row(["the same ÷ an empty spool of the same cap", "≤ 2×",
                           f"{c['over_1ms_ratio_same_cap']:.2f}×",
                           _verdict(c["over_1ms_ratio_same_cap"] <= 2)]))
    lines.append(_row(["flood at the cap: peak database + WAL", "≤ cap",
                       f"{c['peak_disk_bytes']:,} ≤ {c['cap_bytes']:,} bytes",
                       _verdict(c["peak_disk_bytes"] <= c["cap_bytes"])]))
    sp = h["spawns"]
    lines.append(_row([f"long-lived host, {sp['spawning']['spawns']} spawns: max ÷ no-endpoint max",
                       "≤ 1×", f"{sp['max_ratio']:.2f}×", _verdict(sp["max_ratio"] <= 1)]))
    e = h["exit_locked"]
    lines.append(_row(["exit under a `sqlite3` session's lock, over an unlocked exit",
                       "≤ lock_wait_ms + 5 ms = 10 ms", f"+{e['delay_ms']:.1f} ms",
                       _verdict(e["delay_ms"] <= 10)]))
    lines.append(_row(["exit under the lock: every event stored (by the next host) or counted",
                       "all", f"{e['tracked']} tracked: {e['stored']} stored + "
                       f"{e['counted_locked']} counted `locked`",
                       _verdict(e["stored"] + e["counted_locked"] >= e["tracked"])]))
    g = h["gevent"]
    lines.append(_row(["gevent: hub's worst stall with telemetry ÷ without", "≤ 2×",
                       f"{g['with_worst_stall_ms']:.1f} ÷ {g['without_worst_stall_ms']:.1f} ms"
                       f" = {g['ratio']:.2f}×"
                       + (f" (medians of {len(g['with_runs_ms'])} alternating runs each)"
                          if "with_runs_ms" in g else ""), _verdict(g["ratio"] <= 2)]))
    lines += ["", HOSTS_NOTES, ""]
    return lines


HOSTS_NOTES = """\
Why the misses are what they are (investigated; see docs/reliability.md for the
promises the tests pin):
- **Calls over 1 ms at the cap, against the 32×-cap baseline.** At a 4 MiB cap
  the WAL's share is 1 MiB, so a no-pause flood checkpoints inline about every
  400 events (two fsyncs), whether the spool is full or empty: an empty spool of
  the same cap pays the same (the "same cap" row). The 32×-cap baseline has a
  32 MiB WAL and checkpoints about twice in the whole flood.
- **Exit under a session's lock.** Appends never wait for SQLite's lock (they
  park), and the exit stops waiting once no connection has committed for
  `lock_wait_ms`. The rows it could not store wait in `events.pending` for the
  next host or uploader pass, so a gap between appenders' commits taken for a
  session's lock (100 forked children on 2 cores: 13-22 ms) costs no event.
  The exit also waits for a helper slice under way (up to `lock_wait_ms`).
- **p99 against the raw insert.** `track()`'s own SQLite step has about the
  raw insert's p99 (36-38 against 34-35 µs, timed inside one run); the rest is
  ~4 µs of Python at p50 and ~12 µs at its p99, which alone is a third of the
  raw p99. The event-id refill left the p99 (1 in 256 calls, not 1 in 64; it
  was half the calls past it): quick runs of 20,000 calls give 1.04-1.32×,
  runs of 30,000 1.23-1.38×.
- **Spawns.** The spawn runs on the helper thread, never in `track()` (an
  audit-hook test proves it), in a pause in appends and after the WAL job's
  checkpoint, so neither meets a burst. What the max still shows is the
  uploader child running beside the next burst: its Python start-up, its
  read snapshot that keeps the WAL from restarting (the WAL grows past its
  soft share), and its commits, on 2 cores: the spawning host's calls over
  1 ms per 10k are in `docs/performance-hosts.json` beside the no-endpoint
  host's.
- **gevent.** The helper is a real OS thread under gevent. A 50-event burst
  is ~1 ms of hub time (its worst ~1.7 ms), while the loop without telemetry
  does no work at all, so the ratio rests on the baseline's noise (every
  run's worst stall is in `docs/performance-hosts.json`; quick runs on this
  code gave 1.17-1.74×)."""
