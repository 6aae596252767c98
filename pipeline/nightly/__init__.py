"""The nightly job: train, blend the compatible runs, predict, submit when better; and sweeps of variants.

It may import every layer but the command line: `pipeline.training`, `pipeline.kaggle_client`,
`pipeline.views`, `pipeline.store`, `pipeline.competition` and `pipeline.core`.
"""
