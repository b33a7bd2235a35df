"""The CLI's one error type: a one-line message and an exit code."""

from __future__ import annotations

from .._errors import TelemetryError

__all__ = ["CliError"]


class CliError(TelemetryError):
    """Bad input or an unusable state dir; shown as one line, never a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
