"""``python -m uploader --state-dir DIR [--budget SECONDS] [--progress] [--force]``.

One drain pass, then exit. With ``--progress`` it writes the progress lines
(``progress`` while it sends, one ``done`` last) to stdout, one JSON object
per line; their keys, the arguments and the outcomes are the host's contract,
``spool/_protocol.py``. Exit status: 0, or 1 for ``error`` and ``corrupt``, 2
for bad arguments.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from spool._protocol import (
    FlushResult,
    UploaderArgs,
    done_line,
    encode_line,
    exit_status,
)
from spool.launch._spawn import neutral_cwd

from ._drain import drain

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = UploaderArgs.from_argv(argv, description=__doc__)
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
                sys.stdout.write(encode_line(line))
                sys.stdout.flush()
            except (OSError, ValueError):
                pass  # the reader went away; the pass itself carries on

    try:
        result = drain(
            state_dir,
            args.budget_s,
            emit if args.progress else None,
            force=args.force,
            lock_wait_s=args.lock_wait_s,
        )
    except Exception as exc:  # last line of defence: the done line must still come
        result = FlushResult("error", detail=f"{type(exc).__name__}: {exc}")
    emit(done_line(result))
    return exit_status(result.outcome)
