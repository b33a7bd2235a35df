"""telespool's uploader: everything off the host's call path.

Runs as ``python -m uploader --state-dir DIR`` in a detached child, or from
``Telemetry.flush()`` / ``telespool flush``; a frozen app calls
``freeze_support()`` at the top of main to run it. May import ``spool``; ``spool``
never imports this package.
"""

from __future__ import annotations

from ._drain import PassResult, drain
from ._frozen import freeze_support

# ``PassResult`` is ``spool.FlushResult``: one pass's result is what a flush reports.

__all__ = ["PassResult", "drain", "freeze_support"]
