"""Argument parsing for ``python -m uploader`` (skeleton until the uploader issue)."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uploader")
    parser.add_argument("--state-dir", required=True)
    parser.parse_args(argv)
    return 0
