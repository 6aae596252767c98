"""The competition's files: reading and checking train.csv and test.csv, their parsed-array cache, and the
submission file Kaggle takes.

It imports only `pipeline.core`.
"""
