"""A bounded, blocking drain: run the uploader as a child and wait for it.

The host never loads urllib3: ``run_flush`` starts ``python -m uploader
--state-dir DIR --budget T --progress`` and reads its progress protocol (one
JSON object per line on stdout; see ``uploader/_cli.py``):

    {"type": "progress", "sent": N, "remaining": M, "dropped": {...}}
    {"type": "done", "outcome": "...", "sent": N, "remaining": M,
     "dropped": {...}, "detail": "...", "next_attempt_at": ISO | null}

If no ``done`` line arrives within ``timeout`` plus a short grace, the child
is killed and the outcome is ``timeout``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from .._policy import FLUSH_GRACE_S, FLUSH_LOCK_WAIT_SHARE, FLUSH_STARTUP_S
from .._record import Record
from ._trigger import launch_blocker, neutral_cwd, uploader_command

TYPE_CHECKING = False
if TYPE_CHECKING:
    import queue
    from typing import IO, Any, Callable

__all__ = ["FlushResult", "run_flush"]

# A shared, read-only default for FlushResult.dropped.
_EMPTY: Mapping[str, int] = MappingProxyType({})


class FlushResult(Record):
    """What a flush achieved.

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


def run_flush(
    state_dir: Path,
    timeout: float,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    *,
    force: bool = False,
) -> FlushResult:
    """Drain ``state_dir`` for at most about ``timeout`` seconds. Never raises.

    ``on_progress`` receives every protocol line (progress and done) as a dict;
    an exception it raises is ignored. ``force`` ignores a pending backoff.
    """
    try:
        return _run(Path(state_dir), max(float(timeout), 0.0), on_progress, force)
    except Exception as exc:
        return FlushResult("error", detail=f"{type(exc).__name__}: {exc}")


def _run(
    state_dir: Path,
    timeout: float,
    on_progress: Callable[[dict[str, Any]], None] | None,
    force: bool,
) -> FlushResult:
    # Loaded here, not at import: ``import spool`` stays cheap.
    import queue
    import subprocess
    import threading

    budget = max(timeout - FLUSH_STARTUP_S, 0.05)
    extra = ["--budget", f"{budget:.3f}", "--progress"]
    extra += ["--lock-wait", f"{budget * FLUSH_LOCK_WAIT_SHARE:.3f}"]
    if force:
        extra.append("--force")
    argv = uploader_command(state_dir, *extra)
    if argv is None:
        return FlushResult(
            "error",
            detail=f"cannot start the uploader ({launch_blocker()}): a frozen app must call "
            "uploader.freeze_support() at the top of main",
        )
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            # Not the state dir: on Windows a cwd cannot be deleted (purge).
            cwd=neutral_cwd(),
        )
    except OSError as exc:
        return FlushResult("error", detail=f"cannot start the uploader: {exc}")
    assert child.stdout is not None
    lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(child.stdout, lines), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout + FLUSH_GRACE_S
    last: dict[str, Any] = {}
    done: dict[str, Any] | None = None
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break  # EOF: the child exited
            last = line
            if on_progress is not None:
                try:
                    on_progress(line)
                except Exception:
                    pass  # a broken renderer must not break the flush
            if line.get("type") == "done":
                done = line
                break
    finally:
        if done is None and child.poll() is None:
            child.kill()
        try:
            child.wait(timeout=FLUSH_GRACE_S)
        except subprocess.TimeoutExpired:  # pragma: no cover - a kill not taking effect
            pass
        child.stdout.close()
    if done is None:
        outcome = "timeout" if child.returncode is not None and child.returncode < 0 else "error"
        return FlushResult(
            outcome,
            sent=int(last.get("sent", 0)),
            remaining=int(last.get("remaining", 0)),
            dropped=dict(last.get("dropped") or {}),
            detail=f"uploader ended without a result (exit status {child.returncode})",
        )
    return FlushResult(
        str(done.get("outcome", "error")),
        sent=int(done.get("sent", 0)),
        remaining=int(done.get("remaining", 0)),
        dropped=dict(done.get("dropped") or {}),
        detail=str(done.get("detail", "")),
        next_attempt_at=done.get("next_attempt_at"),
    )


def _read_lines(stream: IO[bytes], out: queue.Queue[dict[str, Any] | None]) -> None:
    try:
        for raw in stream:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue  # not protocol: ignore rather than fail the flush
            if isinstance(obj, dict):
                out.put(obj)
    except (OSError, ValueError):
        pass
    finally:
        out.put(None)
