"""The competition's files: train.csv and test.csv read and checked, their parsed-array cache, and the
submission file Kaggle takes.

It may import `pipeline.core` only.
"""
