"""How a run directory is told from a folder of images: its config.json beside its
checkpoints/ folder. Below every package, so that listing images (tfcyclegan.data) passes
over a run kept among the data without importing tfcyclegan.runs; RunLayout
(tfcyclegan.runs.layout) names a run's files from these two.
"""

import os

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


def is_run_dir(folder):
    """Whether `folder` looks like a tfcyclegan run directory (config.json and checkpoints/)."""
    return os.path.isfile(os.path.join(folder, CONFIG_FILE)) and os.path.isdir(os.path.join(folder, CHECKPOINT_DIR))
