"""``uploader.freeze_support()``: how a frozen app runs its own uploader.

Under PyInstaller, Nuitka or briefcase there is no ``python`` to run
``-m uploader``: ``sys.executable`` is the app. So the app calls this first
thing in main, like ``multiprocessing.freeze_support()``:

    if __name__ == "__main__":
        import uploader
        uploader.freeze_support()
        main()

In a frozen app it tells the trigger that the app can be started as the
uploader (``<app> --telespool-uploader --state-dir DIR``) and, when this
process is that start, runs one drain pass and exits. Anywhere else it does
nothing. It lives here, not in ``spool``, so the import arrow stays one way
(uploader -> spool); and the host's own ``import uploader`` is what makes a
freezer bundle the uploader (and urllib3) at all, since ``spool`` never
imports it.
"""

from __future__ import annotations

import sys

from spool.launch._spawn import FROZEN_UPLOADER_ARG, register_frozen_entry

__all__ = ["freeze_support"]


def freeze_support() -> None:
    """In a frozen app: enable the uploader spawn, and be the uploader if asked.

    Returns at once when not frozen, or when this process is the app itself;
    exits the process (with the uploader's status) when it was started as the
    uploader. Call it before anything else in main, before any ``Telemetry``.
    """
    if not getattr(sys, "frozen", False):
        return
    register_frozen_entry()
    if sys.argv[1:2] == [FROZEN_UPLOADER_ARG]:
        from ._cli import main

        sys.exit(main(sys.argv[2:]))
