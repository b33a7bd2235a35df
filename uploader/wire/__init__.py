"""What goes over the wire; no I/O here.

``_envelope`` (shared types, the JSON string encoder) <- ``_json``, ``_otlp``,
``_otlp_proto`` (one encoding each) <- ``_formats`` (name -> encoder, gzip).
``_otlp_decode`` is the receiver's side, used by the reference collector.
"""
