"""What may be collected: the Schema type, its document checks, the value
checkers, the compiled plan ``track()`` runs, the model-token rules and the
bundled reference schema (``reference.json``, getpatter's v8).

Imports nothing at package import: ``spool`` pulls in only what ``track()`` needs.
"""
