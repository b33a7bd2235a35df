"""The argparse equivalent of ``telemetry_group``: no click needed by the host.

parser = argparse.ArgumentParser(prog="my-sdk")
sub = parser.add_subparsers(dest="command")
add_argparse_commands(sub, app="my-sdk")
args = parser.parse_args()
if is_telemetry_command(args):
    sys.exit(run_argparse_command(args))
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from ..store._paths import validate_app
from . import _ops, _render
from ._errors import CliError

__all__ = ["add_argparse_commands", "is_telemetry_command", "run_argparse_command"]

_DEST = "_telespool_command"
_TARGET = "_telespool_target"


def add_argparse_commands(
    subparsers: Any,
    *,
    app: str,
    state_dir: str | os.PathLike[str] | None = None,
    name: str = "telemetry",
) -> argparse.ArgumentParser:
    """Add ``<name> status|disable|enable|inspect|purge|flush`` to a host's subparsers.

    ``subparsers`` is what ``parser.add_subparsers()`` returned. Returns the
    new ``telemetry`` parser. Raises ValueError for a bad app name.
    """
    validate_app(app)  # a bad app name is the host's bug: raise ValueError now
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=f"show or control {app}'s anonymous usage telemetry"
    )
    parser.set_defaults(**{_TARGET: (app, state_dir), _DEST: "status"})
    commands = parser.add_subparsers(dest=_DEST, metavar="COMMAND")
    for command in ("status", "inspect", "flush", "purge", "disable", "enable"):
        text = _render.HELP[command]
        p = commands.add_parser(command, help=text, description=text)
        p.add_argument(
            "--json", action="store_true", dest="_telespool_json", help=_render.OPTION_HELP["json"]
        )
        if command == "inspect":
            p.add_argument(
                "--limit",
                type=int,
                default=_render.INSPECT_LIMIT,
                dest="_telespool_limit",
                help=_render.OPTION_HELP["limit"],
            )
            p.add_argument(
                "--all", action="store_true", dest="_telespool_all", help=_render.OPTION_HELP["all"]
            )
            p.add_argument(
                "--event",
                metavar="NAME",
                dest="_telespool_event",
                help=_render.OPTION_HELP["event"],
            )
        if command == "flush":
            p.add_argument(
                "--timeout",
                type=float,
                default=_render.FLUSH_TIMEOUT_S,
                dest="_telespool_timeout",
                help=_render.OPTION_HELP["timeout"],
            )
    return parser


def is_telemetry_command(args: argparse.Namespace) -> bool:
    """True if ``args`` came from the parser ``add_argparse_commands`` added."""
    return hasattr(args, _TARGET)


def run_argparse_command(
    args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the parsed telemetry command; returns the exit code. Never raises.

    Errors are one line on stderr. Never records telemetry.
    """
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    try:
        app, state_dir = getattr(args, _TARGET)
        return _dispatch(args, _ops.Target.resolve(app, state_dir), out, err)
    except CliError as exc:
        print(f"error: {exc.message}", file=err)
        return exc.exit_code
    except Exception as exc:  # the host's CLI must not die with our traceback
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=err)
        return 1


def _dispatch(args: argparse.Namespace, target: _ops.Target, out: TextIO, err: TextIO) -> int:
    command = getattr(args, _DEST, None) or "status"
    as_json = bool(getattr(args, "_telespool_json", False))
    data: Mapping[str, Any]
    if command == "status":
        data = _ops.status(target)
        text = _render.status_text(data)
    elif command == "inspect":
        limit = None if args._telespool_all else args._telespool_limit
        data = _ops.inspect(target, limit=limit, event=args._telespool_event)
        width = _render.terminal_width() if out.isatty() else None
        text = _render.events_table(data, max_width=width)
    elif command == "flush":

        def progress(msg: Mapping[str, Any]) -> None:
            line = _render.progress_line(msg)
            if line is not None and not as_json:
                print(line, file=err)

        data = _ops.flush(target, timeout=args._telespool_timeout, on_progress=progress)
        text = _render.flush_summary(data)
    elif command == "purge":
        data = _ops.purge(target)
        text = _render.purge_text(data)
    elif command == "disable":
        data = _ops.disable(target)
        text = _render.disable_text(data)
    elif command == "enable":
        data = _ops.enable(target)
        text = _render.enable_text(data)
    else:
        raise CliError(f"unknown telemetry command {command!r}", 2)
    print(_render.to_json(data) if as_json else text, file=out)
    problem = None if as_json else _render.not_deleted(data)
    if problem is not None:  # purge/disable: a file left behind is an error, never hidden
        print(f"error: {problem}", file=err)
    return 0 if data.get("ok", True) else 1
