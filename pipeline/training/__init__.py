"""Training: the networks, the stratified splits, one fold, the executors (in this process or on Ray) and
the trainer that runs them; TensorFlow, Keras and Ray are imported here and nowhere else.

It may import `pipeline.store`, `pipeline.competition` and `pipeline.core`.
"""
