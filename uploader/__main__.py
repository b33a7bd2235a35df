"""``python -m uploader --state-dir DIR``: one drain pass, then exit."""

from __future__ import annotations

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
