"""The ``telespool`` command line (click). Never imported by ``import spool``."""

from __future__ import annotations


def main() -> None:
    raise SystemExit("telespool: the CLI is not built yet")
