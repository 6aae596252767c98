"""The run store: each run's record, its folder under runs/ and the lock, a finished fold's files, and gc.

It imports only `pipeline.core`.
"""
