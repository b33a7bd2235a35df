"""What goes over the wire: the batch envelope, its JSON and OTLP encodings,
and the OTLP decoder a receiver uses. No I/O here.
"""
