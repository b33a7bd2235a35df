"""The typed contract between a host and its uploader child, in one place.

The host and the uploader run in different processes (and may be different
releases for a moment after an upgrade); they meet only through:

- the command line ``python -m uploader --state-dir DIR [--budget S]
  [--progress] [--lock-wait S] [--force]``: ``UploaderArgs``;
- the spool's ``meta`` row ``config``, which the host writes at construction so
  the child needs nothing but the state dir: ``UploaderConfig``;
- with ``--progress``, JSON lines on the child's stdout, one object each:

      {"type": "progress", "sent": N, "remaining": M, "dropped": {reason: n}}
      ...
      {"type": "done", "outcome": "...", "sent": N, "remaining": M,
       "dropped": {reason: n}, "detail": "...", "next_attempt_at": ISO | null}

  the ``done`` line always last: ``progress_line``, ``done_line``,
  ``result_from_done``;
- the outcome, as a ``FlushResult`` value and as the child's exit status.

Each side calls these (de)serialisers, so neither spells a key the other must
match. Stdlib only and cheap: the host imports it on its call path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from ._policy import Policy
from ._record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "CONFIG_KEY",
    "FAILED_OUTCOMES",
    "OUTCOMES",
    "FlushResult",
    "UploaderArgs",
    "UploaderConfig",
    "decode_line",
    "done_line",
    "encode_line",
    "exit_status",
    "progress_line",
    "result_from_done",
]

# The meta key of the config row.
CONFIG_KEY = "config"

# Every outcome one pass can end with. ``disabled`` and ``timeout`` come from
# the host's side only (telemetry off here; the child was killed).
OUTCOMES = (
    "empty",
    "budget",
    "backoff",
    "busy",
    "opted_out",
    "no_endpoint",
    "corrupt",
    "error",
    "disabled",
    "timeout",
)
# Outcomes the child reports with exit status 1 (a person or CI should look).
FAILED_OUTCOMES = ("error", "corrupt")

# A shared, read-only default for FlushResult.dropped.
_EMPTY: Mapping[str, int] = MappingProxyType({})


# -- the result ---------------------------------------------------------------------------
class FlushResult(Record):
    """What a flush (one uploader pass) achieved.

    ``outcome``: empty (everything sent), budget (out of time, more queued),
    backoff (the endpoint asked us to wait; see ``next_attempt_at``), busy
    (another uploader held the lock throughout), opted_out, no_endpoint,
    corrupt (left for the host to recover), disabled (telemetry off in this
    process), timeout (the child was killed),
    error (see ``detail``).
    """

    _fields = ("outcome", "sent", "remaining", "dropped", "detail", "next_attempt_at")
    outcome: str
    sent: int = 0
    remaining: int = 0
    dropped: Mapping[str, int] = _EMPTY
    detail: str = ""
    next_attempt_at: str | None = None

    @property
    def ok(self) -> bool:
        """True when the queue was emptied."""
        return self.outcome == "empty"

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "sent": self.sent,
            "remaining": self.remaining,
            "dropped": dict(self.dropped),
            "detail": self.detail,
            "next_attempt_at": self.next_attempt_at,
        }


def exit_status(outcome: str) -> int:
    """The uploader's exit status for ``outcome`` (2, bad arguments, is argparse's)."""
    return 1 if outcome in FAILED_OUTCOMES else 0


# -- the progress lines -------------------------------------------------------------------
def progress_line(sent: int, remaining: int, dropped: Mapping[str, int]) -> dict[str, Any]:
    """A ``progress`` line: events the server accepted so far, what is left, drops."""
    return {"type": "progress", "sent": sent, "remaining": remaining, "dropped": dict(dropped)}


def done_line(result: FlushResult) -> dict[str, Any]:
    """The final ``done`` line: the FlushResult the host rebuilds."""
    return {"type": "done", **result.as_dict()}


def encode_line(line: Mapping[str, Any]) -> str:
    """One line of the protocol as written to stdout, newline included."""
    return json.dumps(line, separators=(",", ":")) + "\n"


def decode_line(raw: bytes | str) -> dict[str, Any] | None:
    """A protocol line as a dict, or None for anything else (never raises)."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def result_from_done(line: Mapping[str, Any]) -> FlushResult:
    """The FlushResult a ``done`` line carries."""
    return FlushResult(
        str(line.get("outcome", "error")),
        sent=int(line.get("sent", 0)),
        remaining=int(line.get("remaining", 0)),
        dropped=dict(line.get("dropped") or {}),
        detail=str(line.get("detail", "")),
        next_attempt_at=line.get("next_attempt_at"),
    )


# -- the command line ---------------------------------------------------------------------
class UploaderArgs(Record):
    """The uploader's command line after ``python -m uploader``.

    ``budget_s`` None: the policy's pass budget. ``progress``: the JSON lines
    above. ``force``: ignore a pending backoff. ``lock_wait_s``: how long to
    wait for a running uploader (0: exit at once, the detached case).
    """

    _fields = ("state_dir", "budget_s", "progress", "force", "lock_wait_s")
    state_dir: Path
    budget_s: float | None = None
    progress: bool = False
    force: bool = False
    lock_wait_s: float = 0.0

    def to_argv(self) -> list[str]:
        argv = ["--state-dir", str(self.state_dir)]
        if self.budget_s is not None:
            argv += ["--budget", f"{self.budget_s:.3f}"]
        if self.progress:
            argv.append("--progress")
        if self.lock_wait_s:
            argv += ["--lock-wait", f"{self.lock_wait_s:.3f}"]
        if self.force:
            argv.append("--force")
        return argv

    @classmethod
    def from_argv(cls, argv: list[str] | None, description: str | None = None) -> UploaderArgs:
        """Parse ``argv`` (default ``sys.argv[1:]``); bad arguments exit with status 2."""
        import argparse  # the child's side only: the host never parses

        parser = argparse.ArgumentParser(prog="python -m uploader", description=description)
        parser.add_argument("--state-dir", required=True, type=Path)
        parser.add_argument(
            "--budget", type=float, default=None, help="seconds for this pass (default: policy)"
        )
        parser.add_argument("--progress", action="store_true", help="JSON lines on stdout")
        parser.add_argument("--force", action="store_true", help="ignore a pending backoff")
        parser.add_argument(
            "--lock-wait", type=float, default=0.0, help="wait this long for a running uploader"
        )
        args = parser.parse_args(argv)
        return cls(args.state_dir, args.budget, args.progress, args.force, args.lock_wait)


# -- the config row -----------------------------------------------------------------------
class UploaderConfig(Record):
    """What the host stores for the detached uploader (meta ``config``).

    ``env_prefix`` names the host's environment variables (PATTER for app
    getpatter), so the child honours the same kill switches; ``policy`` holds
    only ``Policy.upload_settings()`` on the way through.
    """

    _fields = (
        "app",
        "env_prefix",
        "app_version",
        "endpoint",
        "format",
        "schema_name",
        "schema_version",
        "schema_hash",
        "policy",
    )
    app: str
    env_prefix: str | None
    app_version: str
    endpoint: str | None
    format: str
    schema_name: str
    schema_version: int
    schema_hash: str
    policy: Policy

    def to_row(self) -> dict[str, Any]:
        """The row as stored: readable JSON in the sqlite3 CLI."""
        return {
            "app": self.app,
            "env_prefix": self.env_prefix,
            "app_version": self.app_version,
            "endpoint": self.endpoint,
            "format": self.format,
            "schema": {
                "name": self.schema_name,
                "version": self.schema_version,
                "hash": self.schema_hash,
            },
            "policy": self.policy.upload_settings(),
        }

    @classmethod
    def from_row(cls, row: object) -> UploaderConfig | None:
        """The config a row holds, or None when it is not what a host writes.

        Hand edits are tolerated where a value still reads as the right type
        (a missing format is json; bad policy settings are the defaults), as
        the uploader always did; anything else is None, never an exception.
        """
        if not isinstance(row, Mapping):
            return None
        schema = row.get("schema") or {}
        endpoint = row.get("endpoint")
        env_prefix = row.get("env_prefix")
        settings = row.get("policy")
        if not isinstance(schema, Mapping) or not isinstance(endpoint, (str, type(None))):
            return None
        try:
            version = int(schema.get("version", 0))
        except (TypeError, ValueError):
            return None
        return cls(
            app=str(row.get("app", "")),
            env_prefix=env_prefix if isinstance(env_prefix, str) else None,
            app_version=str(row.get("app_version", "")),
            endpoint=endpoint or None,
            format=str(row.get("format") or "json"),
            schema_name=str(schema.get("name", "")),
            schema_version=version,
            schema_hash=str(schema.get("hash", "")),
            policy=Policy.from_upload_settings(settings if isinstance(settings, dict) else {}),
        )
