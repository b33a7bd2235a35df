"""Human-readable text for the control commands' results (``--json`` skips this)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from typing import Any

__all__ = [
    "disable_text",
    "events_table",
    "flush_summary",
    "not_deleted",
    "purge_text",
    "schema_report",
    "status_text",
    "terminal_width",
    "to_json",
]


# Every human string both front ends print lives in this module: the
# ``telespool`` click CLI and the argparse commands a host adds to its own CLI
# say the same thing (they had drifted apart while each kept its own copy).
HELP = {
    "status": "Consent and why, state dir, endpoint, queue, drops, upload times.",
    "inspect": "The queued events as a table (read-only; safe while a host writes).",
    "flush": (
        "Send the queued events now, bounded by --timeout. "
        "Exits 1 unless the queue ends empty (or there was nothing to send)."
    ),
    "purge": "Delete every queued event, drop count and the install id.",
    "disable": "Opt out: write the marker, delete everything else.",
    "enable": "Opt back in (a new install id is made on the next run).",
    "schema": "Print the reference schema, or validate FILE.",
}
OPTION_HELP = {
    "json": "Print JSON instead of text.",
    "limit": "Most recent N.",
    "all": "Every queued event (no limit).",
    "event": "Only events with this name.",
    "timeout": "Give up after SECONDS.",
}
INSPECT_LIMIT = 20  # rows ``inspect`` shows by default: one screen
FLUSH_TIMEOUT_S = 30.0  # a person waiting at a prompt, not a host's exit


def to_json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - unreachable


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{s}s ago"
    if s < 3600:
        return f"{s // 60}m {s % 60}s ago"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m ago"
    return f"{s // 86400}d {s % 86400 // 3600}h ago"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"


def status_text(s: Mapping[str, Any]) -> str:
    consent = "on" if s["enabled"] else f"off [{s['reason']}]"
    lines = [
        ("telemetry", f"{consent}: {s['explanation']}"),
        ("app", s["app"] + (f" {s['app_version']}" if s.get("app_version") else "")),
        ("state dir", s["state_dir"] + ("" if s["state_dir_exists"] else " (does not exist)")),
        ("endpoint", s["endpoint"] or "none configured"),
        ("install id", s["install_id"] or "none"),
        (
            "queued",
            f"{s['queued']} events, {_size(s['bytes'])}"
            + (f", and {s['pending']} left by an exit under a lock" if s.get("pending") else "")
            + (
                f" (spool {_size(s['disk_bytes'])} on disk)" if s["spool_exists"] else " (no spool)"
            ),
        ),
        ("oldest", f"{s['oldest']} ({_age(s['oldest_age_s'])})" if s["oldest"] else "none"),
        ("dropped", _counts(s["dropped"])),
        ("errors", _counts(s.get("errors") or {})),
        ("not yet reported", _counts(s["unreported_drops"])),
        ("last upload", s["last_upload_at"] or "never"),
        ("next attempt", s["next_attempt_at"] or "when the next host runs"),
    ]
    if s.get("last_outcome"):
        lines.append(("last outcome", str(s["last_outcome"])))
    if s.get("debug"):
        lines.append(("debug", "on: events are printed to stderr, not stored"))
    width = max(len(k) for k, _ in lines) + 1
    return "\n".join(f"{k + ':':<{width}} {v}" for k, v in lines)


def purge_text(r: Mapping[str, Any]) -> str:
    text = f"purged {r['state_dir']}: {r['cleared_events']} queued events deleted"
    if r.get("removed"):
        text += f", removed {', '.join(r['removed'])}"
    return text


def disable_text(r: Mapping[str, Any]) -> str:
    if r.get("failed"):
        return f"telemetry disabled: the opt-out marker is in {r['state_dir']}"
    return f"telemetry disabled; everything else in {r['state_dir']} was deleted"


def enable_text(r: Mapping[str, Any]) -> str:
    text = "opt-out marker removed" if r["was_disabled"] else "no opt-out marker"
    if not r["enabled"]:
        text += f"\ntelemetry stays off [{r['reason']}]: {r['explanation']}"
    return text


def progress_line(msg: Mapping[str, Any]) -> str | None:
    """One uploader progress report as a line, or None for other messages."""
    if msg.get("type") != "progress":
        return None
    return f"sent {msg.get('sent', 0)}, {msg.get('remaining', 0)} left"


def not_deleted(r: Mapping[str, Any]) -> str | None:
    """The one-line error for files a purge left behind, or None if it left none.

    Never claim a deletion that did not happen (on Windows a file another
    process holds open cannot be unlinked).
    """
    failed = r.get("failed") or {}
    if not failed:
        return None
    items = "; ".join(f"{name} ({why})" for name, why in sorted(failed.items()))
    return f"not deleted from {r['state_dir']}: {items}"


def events_table(result: Mapping[str, Any], *, max_width: int | None) -> str:
    events = result["events"]
    if not events:
        return f"no queued events in {result['state_dir']}"
    rows = [(str(e["id"]), _short_time(e["time"]), e["name"], _props(e["props"])) for e in events]
    header = ("id", "time (UTC)", "event", "props")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(3)]
    out = []
    for row in [header, *rows]:
        line = "  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3]
        if max_width is not None and len(line) > max_width:
            line = line[: max(max_width - 1, 0)] + "…"
        out.append(line)
    out.append(
        f"({len(events)} of {result['total']} queued events shown, oldest first; "
        "ctx_* props hidden, --json shows everything)"
    )
    return "\n".join(out)


def terminal_width() -> int:
    return shutil.get_terminal_size((100, 24)).columns


def _short_time(iso: str) -> str:
    # Seconds are enough to read; the full value is in --json and the spool.
    return iso[:19].replace("T", " ") if len(iso) >= 19 else iso


def _props(props: object) -> str:
    if isinstance(props, dict):
        # ctx_* (app version, OS, Python...) repeat on every event: --json shows them.
        props = {k: v for k, v in props.items() if not str(k).startswith("ctx_")}
    if isinstance(props, (dict, list)):
        return json.dumps(props, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return str(props)


def flush_summary(r: Mapping[str, Any]) -> str:
    outcome = r.get("outcome")
    if outcome == "disabled":
        return f"nothing sent: telemetry is off [{r.get('reason')}]"
    if outcome == "no_spool":
        return "nothing to send: there is no spool"
    sent, remaining = r.get("sent", 0), r.get("remaining", 0)
    if outcome == "empty":
        text = f"sent {sent} events; the queue is empty"
    else:
        text = (
            f"sent {sent} events, {remaining} still queued ({_OUTCOMES.get(str(outcome), outcome)})"
        )
    dropped = r.get("dropped") or {}
    if dropped:
        text += f"; dropped {_counts(dropped)}"
    if r.get("detail") and outcome != "empty":
        text += f": {r['detail']}"
    return text


_OUTCOMES = {
    "budget": "out of time",
    "backoff": "the endpoint asked us to wait",
    "busy": "another uploader is running",
    "opted_out": "telemetry is off",
    "no_endpoint": "no endpoint configured",
    "timeout": "the uploader did not finish in time",
    "corrupt": "the spool is corrupt; the next host run recovers it",
    "error": "error",
}


def schema_report(r: Mapping[str, Any]) -> str:
    if r["valid"]:
        return (
            f"{r['path']}: valid schema {r['name']!r} version {r['version']} "
            f"({len(r['events'])} events, {r['hash']})"
        )
    problems = "\n".join(f"  {p}" for p in r["problems"])
    return f"{r['path']}: invalid schema, {len(r['problems'])} problem(s):\n{problems}"
