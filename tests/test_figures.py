"""The pictures a run leaves (tfcyclegan/training/figures.py), drawn on Figures of their own."""

import os
import subprocess
import sys

import numpy as np

from tfcyclegan.training import figures

DRAW = """
import sys
import tfcyclegan.training
from tfcyclegan.training import figures, train
import matplotlib
row = dict(epoch=1, loss_G=3.0, loss_D=0.5, loss_GAN=1.0, loss_identity=0.2, loss_cycle=0.4)
figures.save_loss_figure([row, {**row, "epoch": 2}], sys.argv[1])
print(matplotlib.get_backend())
"""


def test_importing_and_drawing_leave_the_hosts_matplotlib_backend_alone(tmp_path):
    env = {**os.environ, "MPLBACKEND": "svg"}  # a backend the host chose: not Agg
    result = subprocess.run(
        [sys.executable, "-c", DRAW, str(tmp_path / "losses.png")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "svg"
    assert (tmp_path / "losses.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_image_grid_tiles_batches_as_columns_with_white_gaps():
    a = np.zeros((2, 3, 4, 3), np.uint8)
    b = np.full((2, 3, 4, 3), 9, np.uint8)
    grid = figures.image_grid([a, b], gap=1)
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1, 3)
    assert (grid[:3, :4] == 0).all() and (grid[:3, 5:] == 9).all() and (grid[4:, 5:] == 9).all()
    assert (grid[3] == 255).all() and (grid[:, 4] == 255).all()
