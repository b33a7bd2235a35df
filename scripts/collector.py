#!/usr/bin/env python3
"""The reference collector: receives telespool batches and stores them in SQLite.

    python scripts/collector.py --host 127.0.0.1 --port 0 --db events.db [--schema FILE]

The first stdout line is ``listening on http://HOST:PORT`` (port 0 picks a free
one). Endpoints:

    POST /v1/events (or /)  a gzip (or identity) JSON envelope, DESIGN.md "Wire format"
    POST /v1/logs           OTLP/HTTP JSON logs (gzip or identity), format ``otlp``; same
                            limits, checks and dedup; replies an ExportLogsServiceResponse
    GET  /healthz           "ok"
    GET  /stats             JSON counts (events, batches, duplicates, rejected, drops)

What it guarantees:
- **Size limits.** A body over ``--max-body-bytes`` gets 413 before it is read;
  the gzip stream is inflated incrementally with ``max_length``, so a zip bomb
  gets 413 after at most ``--max-decoded-bytes`` of output, never a memory blow-up.
- **Server-side validation.** Every event is sanitized again with the
  collector's own schema (the server is the authority, not the client):
  an *off-list event* (unknown name) is **not stored**, it is counted under
  ``rejected_events`` by reason; an unknown or invalid *property* is stripped
  and the event stored sanitized, the stripped property counted. Context
  keys (``ctx_*``) are kept only from a fixed list, as short scalars. A
  malformed envelope gets 400 (the uploader drops the batch, counted
  ``rejected``); off-list events do not fail their batch, so one bad event
  never makes a client re-send good ones.
- **Exactly once.** Events are keyed by their random id (``UNIQUE`` +
  ``INSERT OR IGNORE``): a batch re-sent after a crash stores nothing twice.
- Counts are printed to stdout on SIGTERM/SIGINT and at exit.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

# Run as a script, this file's directory is on sys.path: the intake sits beside it.
from _collector_intake import (
    BadRequest,
    decode_json_envelope,
    decode_otlp_logs,
    otlp_response,
    read_body,
)

from spool import Schema

__all__ = ["CollectorDB", "main", "make_server"]

MAX_BODY_BYTES = 4 * 1024 * 1024  # compressed; the uploader sends <= 512 KiB uncompressed
MAX_DECODED_BYTES = 16 * 1024 * 1024  # after gunzip

_SQL = (
    """CREATE TABLE IF NOT EXISTS batches (
        id INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        format TEXT NOT NULL,
        app TEXT, app_version TEXT, install_id TEXT,
        schema TEXT, schema_version INTEGER, schema_hash TEXT, sent_at TEXT,
        events INTEGER NOT NULL, accepted INTEGER NOT NULL,
        duplicates INTEGER NOT NULL, rejected INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS events (
        uuid TEXT PRIMARY KEY,  -- the client's random event id: dedup key
        batch_id INTEGER NOT NULL REFERENCES batches (id),
        app TEXT, name TEXT NOT NULL, time TEXT NOT NULL, run_id TEXT NOT NULL,
        install_id TEXT, props TEXT NOT NULL)""",
    # report_key = install id + the batch's first event id: a batch re-sent
    # after a crash carries the same key and a superset of the same counts.
    """CREATE TABLE IF NOT EXISTS reported_drops (
        batch_id INTEGER NOT NULL REFERENCES batches (id),
        reason TEXT NOT NULL, count INTEGER NOT NULL, report_key TEXT)""",
    """CREATE TABLE IF NOT EXISTS rejections (
        reason TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID""",
)


class CollectorDB:
    """The collector's own SQLite file; one connection, serialised by a lock."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        for statement in _SQL:
            self.conn.execute(statement)
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()

    def store(
        self,
        fmt: str,
        envelope: dict[str, Any],
        events: list[tuple[str, str, str, str, str]],
        rejected: Counter[str],
        total: int,
    ) -> tuple[int, int]:
        """Store one batch; returns (accepted, duplicates)."""
        app = envelope.get("app")
        install_id = envelope.get("install_id")
        with self.lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "INSERT INTO batches (received_at, format, app, app_version, install_id, "
                    "schema, schema_version, schema_hash, sent_at, events, accepted, "
                    "duplicates, rejected) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?)",
                    (
                        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        fmt,
                        _short(app),
                        _short(envelope.get("app_version")),
                        _short(install_id),
                        _short(envelope.get("schema")),
                        _int(envelope.get("schema_version")),
                        _short(envelope.get("schema_hash"), 80),
                        _short(envelope.get("sent_at")),
                        total,
                        sum(rejected.values()),
                    ),
                )
                batch_id = cur.lastrowid
                before = conn.total_changes
                conn.executemany(
                    "INSERT OR IGNORE INTO events (uuid, batch_id, app, name, time, run_id, "
                    "install_id, props) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (u, batch_id, _short(app), n, t, r, _short(install_id), p)
                        for (u, n, t, r, p) in events
                    ],
                )
                accepted = conn.total_changes - before
                duplicates = len(events) - accepted
                conn.execute(
                    "UPDATE batches SET accepted = ?, duplicates = ? WHERE id = ?",
                    (accepted, duplicates, batch_id),
                )
                reports = dict(_counts(envelope.get("dropped")))
                reports.update((f"error.{k}", v) for k, v in _counts(envelope.get("errors")))
                key = f"{install_id}:{events[0][0]}" if events else None
                if key is not None:
                    # Last write wins: a replay's counts include the first report's.
                    conn.execute("DELETE FROM reported_drops WHERE report_key = ?", (key,))
                conn.executemany(
                    "INSERT INTO reported_drops (batch_id, reason, count, report_key) "
                    "VALUES (?, ?, ?, ?)",
                    [(batch_id, reason, n, key) for reason, n in reports.items()],
                )
                conn.executemany(
                    "INSERT INTO rejections (reason, count) VALUES (?, ?) "
                    "ON CONFLICT (reason) DO UPDATE SET count = count + excluded.count",
                    list(rejected.items()),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return accepted, duplicates

    def stats(self) -> dict[str, Any]:
        with self.lock:
            c = self.conn
            (events,) = c.execute("SELECT count(*) FROM events").fetchone()
            batches, duplicates, rejected = c.execute(
                "SELECT count(*), coalesce(sum(duplicates), 0), coalesce(sum(rejected), 0) "
                "FROM batches"
            ).fetchone()
            drops = dict(c.execute("SELECT reason, sum(count) FROM reported_drops GROUP BY reason"))
            rejections = dict(c.execute("SELECT reason, count FROM rejections"))
            requests = dict(self.requests)
        return {
            "events": events,
            "batches": batches,
            "duplicates": duplicates,
            "rejected_events": rejected,
            "dropped_reported": drops,
            "rejections": rejections,
            "requests": requests,
        }


def _counts(value: object) -> list[tuple[str, int]]:
    """``{reason: n}`` from a client, keeping only sane entries."""
    if not isinstance(value, dict):
        return []
    return [
        (str(k)[:64], v)
        for k, v in value.items()
        if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**62
    ]


def _short(value: object, limit: int = 64) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- HTTP ---------------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    server: CollectorServer
    protocol_version = "HTTP/1.1"  # keep-alive: the uploader reuses one connection

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._reply(200, b"ok\n", "text/plain")
        elif path == "/stats":
            self._reply_json(200, self.server.db.stats())
        else:
            self._reply_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        srv = self.server
        try:
            if path not in ("/", "/v1/events", "/v1/logs"):
                raise BadRequest(404, "unknown path")
            body = read_body(self, srv.max_body, srv.max_decoded)
            if path == "/v1/logs":
                fmt = "otlp"
                ctype = self.headers.get("Content-Type")
                envelope, events, rejected, total = decode_otlp_logs(body, ctype, srv.schema)
            else:
                fmt = "json"
                envelope, events, rejected, total = decode_json_envelope(body, srv.schema)
            accepted, duplicates = srv.db.store(fmt, envelope, events, rejected, total)
        except BadRequest as exc:
            # Unread body bytes would poison a kept-alive connection: close it.
            self.close_connection = True
            self._reply_json(exc.status, {"error": str(exc)})
            return
        if fmt == "otlp":
            # OTLP clients parse an ExportLogsServiceResponse; the counts are in /stats.
            self._reply_json(200, otlp_response(rejected))
            return
        self._reply_json(
            200,
            {"accepted": accepted, "duplicates": duplicates, "rejected": sum(rejected.values())},
        )

    def _reply_json(self, status: int, obj: Any) -> None:
        self._reply(status, json.dumps(obj, sort_keys=True).encode(), "application/json")

    def _reply(self, status: int, body: bytes, ctype: str) -> None:
        with self.server.db.lock:
            self.server.db.requests[str(status)] += 1
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the counts


class CollectorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        db: CollectorDB,
        schema: Schema,
        *,
        max_body: int,
        max_decoded: int,
    ) -> None:
        super().__init__(address, Handler)
        self.db = db
        self.schema = schema
        self.max_body = max_body
        self.max_decoded = max_decoded


def make_server(
    host: str,
    port: int,
    db_path: Path,
    schema: Schema,
    max_body: int = MAX_BODY_BYTES,
    max_decoded: int = MAX_DECODED_BYTES,
) -> CollectorServer:
    return CollectorServer(
        (host, port), CollectorDB(db_path), schema, max_body=max_body, max_decoded=max_decoded
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--db", required=True, type=Path)
    parser.add_argument("--schema", type=Path, default=None, help="default: the reference schema")
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES)
    parser.add_argument("--max-decoded-bytes", type=int, default=MAX_DECODED_BYTES)
    parser.add_argument(
        "--allow-non-loopback", action="store_true", help="bind a non-loopback address"
    )
    args = parser.parse_args(argv)
    if not _is_loopback(args.host) and not args.allow_non_loopback:
        parser.error("refusing to bind a non-loopback address without --allow-non-loopback")
    schema = Schema.load(args.schema) if args.schema else Schema.reference()
    server = make_server(
        args.host, args.port, args.db, schema, args.max_body_bytes, args.max_decoded_bytes
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    port = server.server_address[1]
    print(f"listening on http://{args.host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print(json.dumps(server.db.stats(), sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
