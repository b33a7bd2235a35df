"""The ``telespool`` command line and the host CLI helpers.

Never imported by ``import spool``. click is loaded only by ``main`` and
``telemetry_group``; the argparse helpers and ``record_cli_command`` need
nothing beyond the stdlib.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ._argparse import add_argparse_commands, is_telemetry_command, run_argparse_command
from ._errors import CliError
from ._record import CLI_COMMANDS, record_cli_command

if TYPE_CHECKING:
    import click

__all__ = [
    "CLI_COMMANDS",
    "CliError",
    "add_argparse_commands",
    "is_telemetry_command",
    "main",
    "record_cli_command",
    "run_argparse_command",
    "telemetry_group",
]


def main(argv: list[str] | None = None) -> None:
    """The ``telespool`` console script; exits with the command's status."""
    from ._click import main as click_main

    click_main(argv)


def telemetry_group(
    app: str,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    name: str = "telemetry",
    help: str | None = None,
) -> click.Group:
    """A click group for a host CLI: ``<host> telemetry status|disable|enable|inspect|purge|flush``.

    Pass the same ``app`` (and ``state_dir``, if any) as the host's
    ``Telemetry``. Raises ValueError for a bad app name. Never records telemetry.
    """
    from ._click import telemetry_group as make

    return make(app, state_dir=state_dir, name=name, help=help)
