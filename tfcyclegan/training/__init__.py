"""fit and its side work: train (the order of things), callbacks (checkpoints, TensorBoard,
losses, samples, signals), figures (loss curves, sample grids), distribute (which
tf.distribute strategy).
"""
