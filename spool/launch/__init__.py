"""Starting the uploader: when (the trigger), how (a detached child process,
reaped), and the host's synchronous ``flush()``.
"""
