"""Pictures a run leaves behind: the loss figure and sample grids."""

import numpy as np
from matplotlib.figure import Figure

# The panels of the paper's Figure 9, in its order.
LOSS_PANELS = (
    ("loss_G", "(a) L_G"),
    ("loss_D", "(b) L_D"),
    ("loss_GAN", "(c) L_GAN"),
    ("loss_identity", "(d) L_identity"),
    ("loss_cycle", "(e) L_cyc"),
)


def save_loss_figure(rows, path, panels=LOSS_PANELS):
    """Plot per-epoch losses (a list of dicts with 'epoch' and loss names) in Figure 9's layout,
    or in `panels` ((key, title) pairs) of another model."""
    # A Figure of its own, not pyplot's: no backend is chosen and no window can open, so
    # the host process's matplotlib stays as it was (training machines have no display).
    fig = Figure(figsize=(4 * len(panels), 3.2))
    axes = fig.subplots(1, len(panels))
    epochs = [row["epoch"] for row in rows]
    for ax, (key, title) in zip(axes, panels):
        ax.plot(epochs, [row[key] for row in rows], marker="o" if len(rows) < 20 else None)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def image_grid(columns, gap=4):
    """Tile equal-sized uint8 batches side by side: one row per image, one column per batch."""
    columns = [np.asarray(c) for c in columns]
    n, h, w, _ = columns[0].shape
    grid = np.full((n * h + (n - 1) * gap, len(columns) * w + (len(columns) - 1) * gap, 3), 255, np.uint8)
    for j, column in enumerate(columns):
        for i in range(n):
            grid[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = column[i]
    return grid
