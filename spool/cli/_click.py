"""The click front end: the ``telespool`` command and the host's ``telemetry`` group.

Both are built from the same command factory over ``_ops``, so
``telespool --app my-sdk status`` and ``my-sdk telemetry status`` behave the
same. None of these commands records telemetry.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import click

from ..store._paths import validate_app
from . import _ops, _render
from ._errors import CliError

__all__ = ["cli", "main", "telemetry_group"]

_META_KEY = "telespool.target"  # (app, state_dir) as given on the command line


def _target(ctx: click.Context) -> _ops.Target:
    app, state_dir = ctx.meta.get(_META_KEY, (None, None))
    return _ops.Target.resolve(app, state_dir)


class _UsageError(click.ClickException):
    exit_code = 2  # bad input on the command line, as click's own usage errors


def _fail(exc: CliError) -> click.ClickException:
    return _UsageError(exc.message) if exc.exit_code == 2 else click.ClickException(exc.message)


def _run(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except CliError as exc:
        raise _fail(exc) from None


_json_option = click.option("--json", "as_json", is_flag=True, help=_render.OPTION_HELP["json"])


def _commands(*, include_schema: bool) -> list[click.Command]:
    @click.command(help=_render.HELP["status"])
    @_json_option
    @click.pass_context
    def status(ctx: click.Context, as_json: bool) -> None:
        data = _run(lambda: _ops.status(_target(ctx)))
        click.echo(_render.to_json(data) if as_json else _render.status_text(data))

    @click.command(help=_render.HELP["inspect"])
    @_json_option
    @click.option(
        "--limit",
        type=int,
        default=_render.INSPECT_LIMIT,
        show_default=True,
        help=_render.OPTION_HELP["limit"],
    )
    @click.option("--all", "show_all", is_flag=True, help=_render.OPTION_HELP["all"])
    @click.option("--event", metavar="NAME", help=_render.OPTION_HELP["event"])
    @click.pass_context
    def inspect(
        ctx: click.Context, as_json: bool, limit: int, show_all: bool, event: str | None
    ) -> None:
        data = _run(
            lambda: _ops.inspect(_target(ctx), limit=None if show_all else limit, event=event)
        )
        if as_json:
            click.echo(_render.to_json(data))
            return
        width = _render.terminal_width() if sys.stdout.isatty() else None
        click.echo(_render.events_table(data, max_width=width))

    @click.command(help=_render.HELP["flush"])
    @_json_option
    @click.option(
        "--timeout",
        type=float,
        default=_render.FLUSH_TIMEOUT_S,
        show_default=True,
        help=_render.OPTION_HELP["timeout"],
    )
    @click.pass_context
    def flush(ctx: click.Context, as_json: bool, timeout: float) -> None:
        target = _run(lambda: _target(ctx))
        if as_json:
            data = _run(lambda: _ops.flush(target, timeout=timeout))
            click.echo(_render.to_json(data))
        else:
            # The bar only on a terminal; a log gets just the summary line.
            with _Progress(enabled=sys.stderr.isatty()) as progress:
                data = _run(lambda: _ops.flush(target, timeout=timeout, on_progress=progress))
            click.echo(_render.flush_summary(data))
        if not data["ok"]:
            ctx.exit(1)

    @click.command(help=_render.HELP["purge"])
    @_json_option
    @click.pass_context
    def purge(ctx: click.Context, as_json: bool) -> None:
        data = _run(lambda: _ops.purge(_target(ctx)))
        _report_purge(ctx, data, as_json, _render.purge_text)

    @click.command(help=_render.HELP["disable"])
    @_json_option
    @click.pass_context
    def disable(ctx: click.Context, as_json: bool) -> None:
        data = _run(lambda: _ops.disable(_target(ctx)))
        _report_purge(ctx, data, as_json, _render.disable_text)

    @click.command(help=_render.HELP["enable"])
    @_json_option
    @click.pass_context
    def enable(ctx: click.Context, as_json: bool) -> None:
        data = _run(lambda: _ops.enable(_target(ctx)))
        if as_json:
            click.echo(_render.to_json(data))
            return
        click.echo(_render.enable_text(data))

    commands: list[click.Command] = [status, inspect, flush, purge, disable, enable]
    if include_schema:

        @click.command(help=_render.HELP["schema"])
        @_json_option
        @click.argument("file", required=False, type=click.Path(dir_okay=False))
        @click.pass_context
        def schema(ctx: click.Context, as_json: bool, file: str | None) -> None:
            if file is None:
                click.echo(_run(_ops.schema_reference))
                return
            data = _run(lambda: _ops.schema_validate(file))
            click.echo(_render.to_json(data) if as_json else _render.schema_report(data))
            if not data["valid"]:
                ctx.exit(1)

        commands.append(schema)
    return commands


def _report_purge(
    ctx: click.Context, data: Mapping[str, Any], as_json: bool, text: Callable[..., str]
) -> None:
    """What was deleted on stdout; what was not, as the one-line error (exit 1)."""
    if as_json:
        click.echo(_render.to_json(data))  # "failed" names each file left, "ok" is false
        if not data["ok"]:
            ctx.exit(1)
        return
    click.echo(text(data))
    problem = _render.not_deleted(data)
    if problem is not None:
        raise click.ClickException(problem)


class _Progress:
    """A click progress bar on stderr fed by the uploader's progress reports."""

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None
        self._sent = 0

    def __enter__(self) -> _Progress:
        return self

    def __call__(self, msg: Mapping[str, Any]) -> None:
        if not self._enabled or msg.get("type") != "progress":
            return
        sent = int(msg.get("sent", 0))
        total = sent + int(msg.get("remaining", 0))
        if self._bar is None:
            self._bar = click.progressbar(
                length=max(total, 1), label="flushing", file=sys.stderr, show_pos=True
            )
            self._bar.__enter__()
        self._bar.length = max(self._bar.length or 0, total, 1)
        if sent > self._sent:
            self._bar.update(sent - self._sent)
            self._sent = sent

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


class _OneLineErrors(click.Group):
    """A group whose errors are one line on stderr and an exit code, never a traceback."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            click.echo(f"telespool: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("telespool: aborted", err=True)
            sys.exit(1)
        except BrokenPipeError:
            # `telespool inspect | head`: the reader left; nothing to report.
            sys.stderr.close()
            sys.exit(1)
        except Exception as exc:
            click.echo(f"telespool: unexpected error: {type(exc).__name__}: {exc}", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_OneLineErrors)
@click.option("--app", metavar="NAME", help="The app whose telemetry to act on.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Use this state dir instead of the app's default.",
)
@click.version_option(package_name="telespool")
@click.pass_context
def cli(ctx: click.Context, app: str | None, state_dir: Path | None) -> None:
    """Inspect and control an app's local-first telemetry spool."""
    ctx.meta[_META_KEY] = (app, state_dir)


for _command in _commands(include_schema=True):
    cli.add_command(_command)


def telemetry_group(
    app: str,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    name: str = "telemetry",
    help: str | None = None,
) -> click.Group:
    """A click group a host CLI mounts: ``<host> telemetry status|disable|enable|...``.

    ``app`` and ``state_dir`` must match the host's ``Telemetry(...)``. The
    group's commands never record telemetry.
    """
    validate_app(app)  # a bad app name is the host's bug: raise ValueError now

    @click.group(
        name=name,
        help=help or f"Show or control {app}'s anonymous usage telemetry (default: status).",
        invoke_without_command=True,
    )
    @click.pass_context
    def group(ctx: click.Context) -> None:
        ctx.meta[_META_KEY] = (app, state_dir)
        if ctx.invoked_subcommand is None:
            ctx.invoke(commands["status"])

    commands = {c.name: c for c in _commands(include_schema=False)}
    for command in commands.values():
        group.add_command(command)
    return group


def main(argv: list[str] | None = None) -> None:
    """The ``telespool`` console script."""
    cli.main(args=argv, prog_name="telespool")
