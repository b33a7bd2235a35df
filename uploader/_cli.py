"""``python -m uploader --state-dir DIR [--budget SECONDS] [--progress] [--force]``.

One drain pass, then exit. With ``--progress`` it writes the progress protocol
to stdout, one JSON object per line:

    {"type": "progress", "sent": N, "remaining": M, "dropped": {reason: n}}
    ...
    {"type": "done", "outcome": "...", "sent": N, "remaining": M,
     "dropped": {reason: n}, "detail": "...", "next_attempt_at": ISO | null}

``outcome`` is one of empty, budget, backoff, busy, opted_out, no_endpoint,
corrupt, error. The ``done`` line is always the last line. Exit status: 0, or 1
for ``error`` and ``corrupt``, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from spool.launch._trigger import neutral_cwd

from ._drain import PassResult, drain

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uploader", description=__doc__)
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
    # Like any daemon: leave the cwd we were started in (a posix_spawn child
    # inherits the host's), so the uploader never pins a directory someone
    # may delete (on Windows a process's cwd cannot be removed).
    state_dir = args.state_dir.absolute()
    try:
        os.chdir(neutral_cwd())
    except OSError:
        pass
    if not args.progress and hasattr(os, "nice"):
        # Detached background work: yield the CPU to whatever the user runs
        # next (an explicit flush, with --progress, keeps normal priority).
        try:
            os.nice(10)
        except OSError:
            pass

    def emit(line: dict[str, Any]) -> None:
        if args.progress:
            try:
                sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
                sys.stdout.flush()
            except (OSError, ValueError):
                pass  # the reader went away; the pass itself carries on

    try:
        result = drain(
            state_dir,
            args.budget,
            emit if args.progress else None,
            force=args.force,
            lock_wait_s=args.lock_wait,
        )
    except Exception as exc:  # last line of defence: the done line must still come
        result = PassResult("error", detail=f"{type(exc).__name__}: {exc}")
    emit(result.as_line())
    return 1 if result.outcome in ("error", "corrupt") else 0
