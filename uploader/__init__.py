"""telespool's uploader: everything off the host's call path.

Runs as ``python -m uploader --state-dir DIR`` in a detached child, or from
``Telemetry.flush()`` / ``telespool flush``. May import ``spool``; ``spool``
never imports this package.
"""

from __future__ import annotations

from ._drain import PassResult, drain

__all__ = ["PassResult", "drain"]
