"""The SQLite spool: the only channel between a host and its uploader.

Paths and the state dir, the connection, migrations, the spool itself (append,
meta, the cap, expiry, the uploader's batches and acks), upload state, the one
clear, the host's writer, its helper thread and the loss sidecar.
"""
