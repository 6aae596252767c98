"""The run store: each run's record, its folder under runs/ and the output directory's lock, a finished
fold's files, and gc.

It may import `pipeline.core` only.
"""
