"""telespool's exceptions. Only programmer errors ever reach the host.

    TelemetryError
     ├── ConfigError (also ValueError)   bad app name, endpoint, format or policy
     └── SchemaError (also ValueError)   a schema file that does not validate

Runtime faults (disk, locks, corruption, network) never raise into the host:
they are counted by reason and shown by ``Telemetry.status()``.
"""

from __future__ import annotations

__all__ = ["ConfigError", "SchemaError", "TelemetryError"]


class TelemetryError(Exception):
    """Root of every exception telespool raises."""


class ConfigError(TelemetryError, ValueError):
    """A constructor argument or policy value is invalid."""


class SchemaError(TelemetryError, ValueError):
    """A schema file is invalid; ``problems`` lists each one with its exact place."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid schema:\n  " + "\n  ".join(self.problems))
