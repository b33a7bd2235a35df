"""Every limit telespool obeys, each with the reason it has that value.

A host overrides any of them as keyword arguments to ``Telemetry(...)``; a bad
override is a programmer error and raises ``ValueError`` at construction.
"""

from __future__ import annotations

from ._errors import ConfigError
from ._record import Record

__all__ = [
    "ACK_QUEUE_DEPTH",
    "ERROR_DETAIL_CHARS",
    "GZIP_LEVEL",
    "LOCK_POLL_S",
    "MAX_RESPONSE_BYTES",
    "MIN_REQUEST_TIMEOUT_S",
    "OTLP_MEMO_CHARS",
    "OTLP_MEMO_ENTRIES",
    "OTLP_NAME_MEMO_ENTRIES",
    "UPLOADER_BUSY_MS",
    "Policy",
]

KiB = 1024
MiB = 1024 * KiB


TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Policy(Record):
    # -- disk -----------------------------------------------------------------
    # ~60k typical events: weeks of a busy CLI offline, negligible on any disk
    # (Glean allows 50 MB, the Azure exporter 50 MiB for far bigger payloads).
    # A quarter is room for the WAL during a flood (see _store.wal_limits).
    max_bytes: int = 32 * MiB
    # Telemetry older than this no longer describes the current release.
    max_age_days: float = 30.0
    # Check the size after this many appended bytes, so an append stays O(1);
    # small next to the headroom below, so the cap holds between checks.
    size_check_bytes: int = 64 * KiB
    # Evict down to this fraction of the high-water mark, so eviction runs rarely.
    evict_to_fraction: float = 0.8
    # WAL maintenance (a checkpoint and a restart: three fsyncs) runs on a
    # helper thread once appends have paused this long, so no append waits
    # behind it; a few ms is a pause in any host that is not flooding.
    wal_idle_ms: float = 5.0
    # Bigger props are a bug in the host, not telemetry; stored nowhere.
    max_event_bytes: int = 4 * KiB

    # synchronous=NORMAL survives any process crash; only a power cut or kernel
    # panic can lose the last commits. FULL closes that gap for an fsync each.
    durable_sync: bool = False

    # -- call path --------------------------------------------------------------
    # The longest track() may wait for SQLite's write lock, in milliseconds.
    lock_wait_ms: int = 5
    # Events held in memory while another process holds the write lock.
    buffer_events: int = 1000
    # close()/atexit may wait this long for the lock to write the buffer.
    close_wait_ms: int = 200

    # -- trigger ----------------------------------------------------------------
    # Never start uploaders more often than this, whatever the host does.
    trigger_interval_s: float = 60.0
    # A long-lived host starts the uploader early once this many events queued.
    trigger_events: int = 1000

    # -- upload -----------------------------------------------------------------
    # Events per POST; the collector and OTLP receivers handle this comfortably.
    batch_events: int = 500
    # Uncompressed bytes per POST, well under common 1-4 MiB proxy body limits.
    batch_bytes: int = 512 * KiB
    # Connect timeout: a loopback or nearby endpoint answers a SYN in far less.
    connect_timeout_s: float = 3.0
    # Read timeout: a blackholed endpoint costs the (detached) uploader this long.
    read_timeout_s: float = 10.0
    # One uploader pass never runs longer than this.
    pass_budget_s: float = 60.0
    # First retry delay after a failure; doubles per consecutive failure.
    backoff_base_s: float = 60.0
    # Never wait longer than this between attempts, nor honour a longer Retry-After.
    backoff_max_s: float = 6 * 3600.0
    # "" follows HTTPS_PROXY/NO_PROXY...; "direct" ignores them; a URL is the proxy for a
    # host that configures one in code. Stored in the spool, so never with credentials.
    proxy: str = ""

    # -- consent ----------------------------------------------------------------
    # CI runs are not users; telemetry is off there unless a maintainer opts in.
    allow_in_ci: bool = False

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any]) -> Policy:
        """Build a policy from keyword overrides; raise ValueError on any bad one."""
        known = cls._fields
        values: dict[str, Any] = {}
        for name, value in overrides.items():
            if name not in known:
                raise ConfigError(
                    f"unknown telemetry policy option {name!r}; known: {', '.join(sorted(known))}"
                )
            default = getattr(cls, name)
            if isinstance(default, str):
                if not isinstance(value, str):
                    raise ConfigError(f"policy option {name!r} must be a string, got {value!r}")
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ConfigError(f"policy option {name!r} must be a bool, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"policy option {name!r} must be a number, got {value!r}")
            elif isinstance(default, int) and not isinstance(value, int):
                raise ConfigError(f"policy option {name!r} must be an integer, got {value!r}")
            elif value != value or value in (float("inf"), float("-inf")):
                raise ConfigError(f"policy option {name!r} must be finite, got {value!r}")
            values[name] = value
        policy = cls(**values)
        policy._validate()
        return policy

    def _validate(self) -> None:
        if self.max_bytes < 256 * KiB:
            raise ConfigError(f"max_bytes must be at least 262144 (256 KiB), got {self.max_bytes}")
        if not 0.1 <= self.evict_to_fraction <= 0.95:
            raise ConfigError("evict_to_fraction must lie between 0.1 and 0.95")
        for name in ("lock_wait_ms", "close_wait_ms", "trigger_interval_s", "backoff_base_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.lock_wait_ms > 50:
            raise ConfigError("lock_wait_ms above 50 would let track() stall the host")
        for name in (
            "max_age_days",
            "size_check_bytes",
            "wal_idle_ms",
            "max_event_bytes",
            "buffer_events",
            "trigger_events",
            "batch_events",
            "batch_bytes",
            "connect_timeout_s",
            "read_timeout_s",
            "pass_budget_s",
            "backoff_max_s",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.backoff_max_s < self.backoff_base_s:
            raise ConfigError("backoff_max_s must be at least backoff_base_s")
        if self.proxy not in ("", "direct"):
            _check_proxy_url(self.proxy)
        if self.size_check_bytes > self.max_bytes // 8:
            raise ConfigError("size_check_bytes must be at most max_bytes / 8 so the cap holds")

    def upload_settings(self) -> dict[str, Any]:
        """The subset the detached uploader needs, written into the spool's meta table."""
        keys = (
            "batch_events",
            "batch_bytes",
            "connect_timeout_s",
            "read_timeout_s",
            "pass_budget_s",
            "backoff_base_s",
            "backoff_max_s",
            "max_bytes",
            "max_age_days",
            "proxy",
        )
        return {k: getattr(self, k) for k in keys}

    @classmethod
    def from_upload_settings(cls, settings: dict[str, Any]) -> Policy:
        """Rebuild a policy in the uploader from what the host stored; unknown keys ignored."""
        known = cls._fields
        try:
            return cls.from_overrides({k: v for k, v in settings.items() if k in known})
        except ValueError:
            return cls()


def _check_proxy_url(url: str) -> None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url if "://" in url else "http://" + url)
        _ = parts.port
    except ValueError:
        raise ConfigError("proxy must be a URL like http://proxy.example:3128") from None
    if not parts.hostname:
        raise ConfigError("proxy must be a URL like http://proxy.example:3128")
    if parts.username is not None or parts.password is not None:
        # Never echo the value: it holds a secret.
        raise ConfigError(
            "proxy must not embed credentials (they would be stored in the spool); "
            "set them in HTTPS_PROXY for the same proxy instead"
        )


# -- internal limits (not overridable) -------------------------------------------
# Fixed by telespool, not by hosts: each is tied to how a mechanism works, and
# gathered here so every number that bounds time, memory or disk reads in one place.
# Results are cached: a process uses a handful of models, and the regex then
# runs once per distinct name. Bounded so hostile input cannot grow memory.
MODEL_CACHE_MAX = 256
# Event ids drawn per os.urandom call: one syscall per 256 track() calls,
# under 1% so the refill stays out of the p99, and a forked child discards at
# most this many (see install/_ids.py).
EVENT_ID_POOL = 256
# An app version longer than this is not a version (release strings are short);
# it raises at construction.
VERSION_MAX_CHARS = 64
# A shaped string ("string" with a pattern) longer than this is removed before
# the pattern runs, so a hostile value never costs a long regex scan.
SHAPED_MAX_CHARS = 256
# A reader can meet SQLITE_BUSY only while a host recovers or checkpoints the
# WAL, which takes milliseconds; wait a little rather than fail.
READER_BUSY_S = 2.0
# How long ``telespool purge`` waits for a host's write lock; hosts hold it for
# microseconds per append, so this only matters when an external session holds it.
CLEAR_BUSY_S = 5.0
# A line longer than this is certainly not ours (a hand edit): skipped.
SIDECAR_MAX_LINE = 4096
# The child's own budget leaves this much of the caller's timeout for its
# interpreter start-up and shutdown.
FLUSH_STARTUP_S = 0.3
# How long past the timeout we wait for the done line before killing the child.
FLUSH_GRACE_S = 2.0
# While another uploader is draining, a flush waits this share of its timeout for it.
FLUSH_LOCK_WAIT_SHARE = 0.5


# A thread that finds another mid-append hands its row over (the holder
# writes it before letting go) while fewer than this many wait: a call then
# never waits on the thread lock (4-32 threads: p50 per call was 2.9-3.6x the
# single thread's when each waited). Past it the holder is slow, or starved
# of the GIL by the threads handing over: one bounded wait gives it back.
HANDOFF_ROWS = 64
# A holder writes handed-over rows at most this many times after its own,
# so no call is kept writing others' rows for long; the helper takes the rest.
HANDOFF_ROUNDS = 4
# The exit stops waiting for SQLite's lock once no connection committed for
# lock_wait_ms plus this: then a session holds it (an inspector's BEGIN), not
# appenders. It was 15 ms while giving up lost the rows (counted "locked"):
# with 100 forked children appending on 2 cores, gaps between commits reached
# 13-22 ms. Now the rows it gives up on wait in events.pending for the next
# host (store/_sidecar.py), so a gap taken for a session costs no event, and
# the exit under a session's lock costs about lock_wait_ms, not + 15 ms.
LOCK_UNMOVED_MS = 0
# A lock already found unmoved before an exit's write began gets this one
# short wait still: a session that let go meanwhile writes nothing (so
# data_version never moves), and the first busy-timeout-0 try can meet
# another connection's commit or checkpoint of a millisecond. It was 5 ms,
# when a miss lost the rows; now a miss defers them to the next host.
LOCK_GRACE_MS = 1
# How often appends retry opening a spool that was locked at open.
REOPEN_EVERY_S = 0.1
# The at-fork hook waits at most this long for a writer or helper mid-step.
FORK_QUIESCE_S = 1.0
# The helper's drain found SQLite's lock held through a slice while one of
# this process's threads held the writer's lock: that thread may be the
# holder, descheduled mid-commit (under CPU load, for well over lock_wait_ms).
# The drain waits this long for it (off the call path) before it judges by
# the data version whether anyone committed; without the wait, thread bursts
# under load counted their own commits as a session's lock ("locked").
OWN_HOLDER_WAIT_S = 0.1
# Rows deleted per eviction transaction: a fraction of a millisecond of write
# lock here, so an append racing it waits well under lock_wait_ms.
EVICT_SLICE = 128
# Free pages returned to the OS per incremental-vacuum transaction. Each
# moved page rewrites about three pages into the WAL (itself, its parent and
# a pointer-map page), which counts towards the cap: a slice is also kept to
# an eighth of the WAL's soft budget, so at a small cap one slice cannot
# carry the WAL past its share (64 pages wrote ~200 KiB, at a 512 KiB cap).
VACUUM_SLICE = 64
# While appends flow, the helper looks for a pause this often: each look
# costs the appending thread a GIL switch.
BUSY_LOOK_S = 0.02
# The gap in appends the WAL job takes once the WAL is late (see Helper).
LATE_IDLE_S = 0.001
# A due spawn waits at most this long for a pause in appends (store/_pauses.py):
# a host that never pauses still starts its uploader, a second late.
TRIGGER_PAUSE_WAIT_S = 1.0
# While an uploader child may still be running, wake this often to reap it.
REAP_EVERY_S = 1.0
# The helper is off the call path: it may wait for the host's brief writes.
HELPER_BUSY_MS = 1000
# Slices in a row for which the writer's lock could not be had before
# eviction gives up until the next size check asks again.
EVICT_MISSES = 50
# Opening (construction) may wait this long for other processes setting up the
# same spool; the call path re-opens with no wait at all (see Writer).
OPEN_WAIT_S = 0.25
# track() re-checks at most this often, however small trigger_interval_s is:
# a check is a few SQLite reads, too dear for every call.
MIN_TRACK_CHECK_S = 1.0

# Every annotated class attribute above is a field (``__annotations__`` holds
# their names as strings: no typing import needed to read them).
Policy._fields = tuple(Policy.__annotations__)


# -- uploader: fixed limits ---------------------------------------------------
# Not Policy fields: a host cannot override them (they are not stored in the
# config row); they bound the detached uploader's own resources.
# The uploader is off the call path: it may wait this long for a host's brief writes.
UPLOADER_BUSY_MS = 5000
# Acked batches waiting for the ack thread's DELETE: two keep both cores busy
# (the next POST overlaps the last delete) and memory flat whatever the backlog.
ACK_QUEUE_DEPTH = 2
# How often a flush that waits for a running uploader re-tries its lock:
# 20 tries a second, a negligible cost beside the drain it waits for.
LOCK_POLL_S = 0.05
# zlib level 1: on these envelopes it is ~3x faster than the default 6 for
# ~10% more bytes (measured: 1.1 vs 3.1 us per event, 13.4 vs 12.2 KB per 500
# events); compression was the largest CPU cost of a drain.
GZIP_LEVEL = 1
# A response body is a few bytes of status; more than this is not read.
MAX_RESPONSE_BYTES = 64 * KiB
# The least time a POST is given when the pass budget is nearly spent: urllib3
# treats 0 as "no timeout", so a spent budget must still mean "give up at once".
MIN_REQUEST_TIMEOUT_S = 0.01
# Error details stored in meta (``last_error``) and shown by status(): a
# traceback-sized message would bloat a row a person reads in the sqlite3 CLI.
ERROR_DETAIL_CHARS = 300
# OTLP memo tables (event-name fragments, the seconds of a timestamp): bounded,
# so a drain of millions of distinct values cannot grow them.
OTLP_NAME_MEMO_ENTRIES = 4096
# OTLP props memo: at most this many entries of at most OTLP_MEMO_CHARS each (~3 MB).
OTLP_MEMO_ENTRIES = 1024
OTLP_MEMO_CHARS = 1024
