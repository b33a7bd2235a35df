"""The helper's steps on the writer's own connection, each under its lock.

``Helper`` runs them through ``Writer.run_locked``: eviction slices kept in
the WAL's share, the WAL restart, the truncate of a pinned WAL, the size of a
vacuum slice. Each is one short SQLite step; appends meanwhile hand their rows
over to the lock's holder (see ``Writer.append``).
"""

from __future__ import annotations

from .._policy import EVICT_SLICE, VACUUM_SLICE
from ._store import Spool

__all__ = [
    "evict_slice_in_share",
    "restart_wal",
    "truncate_if_pinned",
    "vacuum_slice",
]


def evict_slice_in_share(spool: Spool, share: list[int]) -> int:
    """One eviction slice, its own WAL frames kept within the WAL's hard share.

    A slice of 128 deletes writes ~60 KB of WAL. Past full_at appends have
    stopped (counted "cap"), so the slices alone grew the WAL to its hard
    share plus a slice, and file + WAL passed a 512 KiB cap under a slow disk
    (the share is what the cap's headroom leaves the WAL). So a slice that
    would pass the share, or the cap, first copies the WAL back (PASSIVE, on
    this connection, under the writer's lock like the slice itself): its
    commit then restarts the WAL, cut back to journal_size_limit. Not a
    TRUNCATE: its fsyncs would hold the lock the appends wait on (test_cap).

    ``share`` is [the most WAL bytes one slice wrote, whether a checkpoint
    may run]: once one did not let the WAL restart (another host appending,
    a reader pinning it), no more in this pass, so no pass of ~200 slices
    runs a checkpoint's fsyncs under the lock in each.
    """
    wal = spool.wal_bytes()
    tight = (
        wal + share[0] > spool.wal_hard or spool.disk_bytes() + share[0] > spool.policy.max_bytes
    )
    checkpointed = bool(share[1]) and tight
    salt = spool.wal_salt() if checkpointed else b""
    if checkpointed:
        spool.checkpoint()
    before = spool.wal_bytes()
    n = spool.evict_slice(EVICT_SLICE)
    share[0] = max(share[0], spool.wal_bytes() - before)
    # Asked of the header, not the size: a WAL restarted at or under
    # journal_size_limit keeps its length, then looked unrestarted.
    if checkpointed and spool.wal_salt() == salt:
        share[1] = 0  # the WAL did not restart
    return n


def restart_wal(spool: Spool) -> None:
    """The restart's write (and its header fsync), here rather than in an append."""
    spool.restart_wal()


def truncate_if_pinned(spool: Spool) -> bool | None:
    """True once the WAL is within its share; see ``truncate_wal``."""
    return not spool.wal_over_share() or spool.truncate_wal()


def vacuum_slice(spool: Spool) -> bool:
    """One vacuum slice of at most an eighth of the WAL's soft share; True if more remain."""
    return spool.vacuum_slice(max(1, min(VACUUM_SLICE, spool.wal_budget // (8 * spool.page_size))))
