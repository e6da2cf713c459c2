"""The CPU forms of two of the generator's convolutions, as functions of an input and a kernel.

The layers of tfcyclegan.core.networks compute with them, and benchmarks/conv_kernels.py
times them against the other forms; the measurements that chose them are in
docs/benchmarks.md ("Kernel choices").
"""

import numpy as np
import tensorflow as tf


def upsample_window(x, kernel, direct):
    """Rows and columns [1, 2H + 1) of the stride-2 transposed convolution of x with a 3x3
    `kernel` (kh, kw, out, in), no bias: directly by explicit padding, or whole and cropped."""
    n, h, w, filters = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2], tf.shape(kernel)[2]
    if direct:
        shape = tf.stack([n, 2 * h, 2 * w, filters])
        return tf.nn.conv2d_transpose(x, kernel, shape, 2, padding=[[0, 0], [1, 0], [1, 0], [0, 0]])
    shape = tf.stack([n, 2 * h + 1, 2 * w + 1, filters])
    return tf.nn.conv2d_transpose(x, kernel, shape, 2, padding="VALID")[:, 1:, 1:]


def conv_on_pixel_blocks(x, kernel):
    """The stride-1 VALID convolution of an even-sized x with a 7x7 `kernel`, no bias, as a
    4x4 convolution over 2x2 pixel blocks (space-to-depth, then depth-to-space back)."""
    # blocks[u, v, (r, s, c), (a, b, o)] = kernel[2u + r - a, 2v + s - b, c, o], or 0 off the kernel.
    taps = tf.constant(_BLOCK_TAPS, x.dtype)
    c, filters = kernel.shape[2], kernel.shape[3]
    blocks = tf.reshape(tf.einsum("uraI,vsbJ,IJco->uvrscabo", taps, taps, kernel), (4, 4, 4 * c, 4 * filters))
    return tf.nn.depth_to_space(tf.nn.conv2d(tf.nn.space_to_depth(x, 2), blocks, 1, "VALID"), 2)


def _block_taps():
    """taps[u, r, a, i] = 1 where tap i of a 7-wide kernel is tap u of the 4-wide kernel over
    2-pixel blocks, for input phase r and output phase a: i = 2u + r - a."""
    taps = np.zeros((4, 2, 2, 7), "float32")
    for u, r, a in np.ndindex(4, 2, 2):
        if 0 <= 2 * u + r - a < 7:
            taps[u, r, a, 2 * u + r - a] = 1
    return taps


_BLOCK_TAPS = _block_taps()
