"""The run directory: config (TrainConfig, what config.json holds), rundir (layout, lock,
checkpoint object, restoring generators), checkpoints (which checkpoint files are intact).
"""
