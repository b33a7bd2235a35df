"""Record the reference ``cli_command`` event for a host CLI: the command name only."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["CLI_COMMANDS", "record_cli_command"]

# The reference schema's closed set; anything else is recorded as "other", so a
# typo or a secret passed as a command never reaches the spool.
CLI_COMMANDS = frozenset({"dashboard", "eval", "telemetry", "other"})
# The control command never records itself: `telemetry disable` must not emit.
_CONTROL = "telemetry"


class _Tracker(Protocol):
    def track(self, name: str, **props: Any) -> None: ...


def record_cli_command(telemetry: _Tracker, command: object) -> str | None:
    """Record ``cli_command`` with ``command`` mapped into the closed set.

    Returns the value recorded, or None when nothing was (the ``telemetry``
    control command is never recorded). Only the name: never arguments, paths
    or flags. Never raises.
    """
    try:
        name = command.strip().lower() if isinstance(command, str) else ""
        if name == _CONTROL:
            return None
        value = name if name in CLI_COMMANDS else "other"
        telemetry.track("cli_command", cli_command=value)
        return value
    except Exception:  # the host's command must run whatever telemetry does
        return None
