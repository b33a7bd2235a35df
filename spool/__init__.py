"""telespool's call path: everything a host process runs.

Stdlib-only at import time; platformdirs loads when a ``Telemetry`` is built.
Never imports urllib3, filelock, sqlite-utils or the ``uploader`` package.
"""

from __future__ import annotations

from ._errors import ConfigError, SchemaError, TelemetryError
from ._protocol import FlushResult
from ._telemetry import Telemetry
from .install._legacy import Legacy
from .schema._schema import Schema

__all__ = [
    "ConfigError",
    "FlushResult",
    "Legacy",
    "Schema",
    "SchemaError",
    "Telemetry",
    "TelemetryError",
]
__version__ = "0.1.0"
