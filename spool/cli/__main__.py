"""``python -m spool.cli``: the same as the ``telespool`` console script."""

from __future__ import annotations

from . import main

if __name__ == "__main__":
    main()
