"""telespool's uploader: everything off the host's call path.

Runs as ``python -m uploader --state-dir DIR`` in a detached child, or from
``telespool flush``. May import ``spool``; ``spool`` never imports this package.
"""

from __future__ import annotations

__all__: list[str] = []
