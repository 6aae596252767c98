"""Read-only views of runs/, which never train: loading many runs, what differs between them, `digits
compare`, `history` and `runs`, and `digits report` (the HTML page, its style, its plots).

It may import `pipeline.store`, `pipeline.competition` and `pipeline.core`.
"""
