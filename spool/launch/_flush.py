"""A bounded, blocking drain: run the uploader as a child and wait for it.

The host never loads urllib3: ``run_flush`` starts ``python -m uploader
--state-dir DIR --budget T --progress`` and reads its progress lines (the
contract is ``spool/_protocol.py``). If no ``done`` line arrives within
``timeout`` plus a short grace, the child is killed and the outcome is
``timeout``.
"""

from __future__ import annotations

import time
from pathlib import Path

from .._policy import FLUSH_GRACE_S, FLUSH_LOCK_WAIT_SHARE, FLUSH_STARTUP_S
from .._protocol import FlushResult, UploaderArgs, decode_line, result_from_done
from ._spawn import launch_blocker, neutral_cwd, uploader_command

TYPE_CHECKING = False
if TYPE_CHECKING:
    import queue
    from typing import IO, Any, Callable

__all__ = ["FlushResult", "run_flush"]



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
    args = UploaderArgs(
        state_dir,
        budget_s=budget,
        progress=True,
        force=force,
        lock_wait_s=budget * FLUSH_LOCK_WAIT_SHARE,
    )
    argv = uploader_command(args)
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
        # What the last progress line said, under this outcome.
        detail = f"uploader ended without a result (exit status {child.returncode})"
        return result_from_done(
            {**last, "outcome": outcome, "detail": detail, "next_attempt_at": None}
        )
    return result_from_done(done)


def _read_lines(stream: IO[bytes], out: queue.Queue[dict[str, Any] | None]) -> None:
    try:
        for raw in stream:
            line = decode_line(raw)
            if line is not None:  # not protocol: ignored rather than failing the flush
                out.put(line)
    except (OSError, ValueError):
        pass
    finally:
        out.put(None)
