"""The building blocks every layer uses: the config and its layers, errors and exit codes, text formatting,
atomic file writes, console and progress output, soft voting and McNemar's test.

It imports nothing else of `pipeline`.
"""
