"""The uploader never moves a spool aside (issue 11 Deliver 9, REVIEW C-16).

Hosts that still have the file open would keep writing into the renamed copy,
neither uploaded nor counted. The uploader reports ``corrupt`` and leaves
recovery to hosts. The spool is really corrupted: its first pages are
overwritten on disk while a host holds it open.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from spool import Telemetry
from tests.servers import collector, run_uploader, set_endpoint


def _corrupt_first_pages(db: Path) -> None:
    # Everything committed is in the main file first, so the garbage is what
    # a new connection reads (not a WAL copy of the same pages).
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    with open(db, "r+b") as f:
        f.write(b"\xde\xad\xbe\xef" * 2048)  # the header and the first pages


def test_the_uploader_reports_a_corrupt_spool_and_never_renames_it(
    tmp_path: Path, state_dir: Path
) -> None:
    host = Telemetry(app="demo", version="1.0.0", state_dir=state_dir)
    for _ in range(20):
        host.track("cli_command", cli_command="eval")
    db = state_dir / "spool.db"
    with collector(tmp_path / "c.db") as c:
        set_endpoint(state_dir, c.url)
        _corrupt_first_pages(db)
        inode = os.stat(db).st_ino
        done = run_uploader(state_dir)
        assert c.stats()["events"] == 0
    # The very file the host has open is still spool.db: nothing moved aside.
    assert os.stat(db).st_ino == inode
    assert [p.name for p in state_dir.iterdir() if ".corrupt-" in p.name] == []
    assert done["outcome"] == "corrupt", done
    assert "left for the host" in done["detail"]
    host.close()
    # Recovery is the host's: its next start moves the file aside and counts it.
    with Telemetry(app="demo", version="1.0.0", state_dir=state_dir) as again:
        assert again.status()["dropped"].get("corrupt") == 1
    assert [p.name for p in state_dir.iterdir() if ".corrupt-" in p.name]
