"""What a generator costs: its parameters and the multiply-adds of one forward pass.

`cost(generator, height, width)` counts both from the generator's layers (a
ResnetGenerator or a MobileResnetGenerator of any ngf and block count);
`traced_macs` counts the multiply-adds of the convolutions the traced inference
graph runs, which checks the layer count (tests/test_cost.py). Multiply-adds are
those of the convolutions (GAN Compression, Li et al. 2020, counts the same): a
convolution with an h x w output, k x k kernel, c_in inputs and c_out outputs costs
h w k^2 c_in c_out; a depthwise one h w k^2 c; a transposed one (u-k) one per input
pixel, tap and channel pair. Norms, activations, padding and the residual sums
add under 1 %.
"""

import dataclasses

import numpy as np
import tensorflow as tf
from keras import layers

from tfcyclegan.core import networks

CONV_OPS = ("Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput")


@dataclasses.dataclass(frozen=True)
class Cost:
    """Parameters of a generator and multiply-adds of one forward pass on one image."""

    parameters: int
    macs: int


def _layers(network):
    """The layers of a generator in the order they run, residual blocks opened."""
    for layer in network.stack:
        if isinstance(layer, networks.ResidualBlock):  # MobileResidualBlock too
            yield from layer.body
        else:
            yield layer


def cost(generator, height=256, width=None):
    """Cost(parameters, macs) of `generator` on one height x width image (width: height).

    The multiply-adds follow each layer's output size through the network, so any size
    the generator takes (multiples of 4) is counted exactly; c7s1-3 is counted as the
    7x7 convolution it is, whichever kernel form computes it.
    """
    width = width or height
    if not generator.built:
        generator(tf.zeros((1, 32, 32, 3)))
    h, w, c = height, width, 3
    macs = 0
    for layer in _layers(generator):
        if isinstance(layer, (networks.ReflectionPadding2D, layers.ZeroPadding2D)):
            p = layer.padding if isinstance(layer, networks.ReflectionPadding2D) else layer.padding[0][0]
            h, w = h + 2 * p, w + 2 * p
        elif isinstance(layer, networks.FractionalStridedConv2D):
            macs += h * w * 9 * c * layer.filters
            h, w, c = 2 * h, 2 * w, layer.filters
        elif isinstance(layer, layers.DepthwiseConv2D):
            k = layer.kernel_size[0]
            h, w = h - k + 1, w - k + 1
            macs += h * w * k * k * c
        elif isinstance(layer, layers.Conv2D):
            k, s = layer.kernel_size[0], layer.strides[0]
            h, w = (h - k) // s + 1, (w - k) // s + 1
            macs += h * w * k * k * c * layer.filters
            c = layer.filters
    if (h, w, c) != (height, width, 3):
        raise ValueError(f"{generator.name}: counted an output of {h}x{w}x{c} for a {height}x{width} input")
    parameters = sum(int(np.prod(v.shape)) for v in generator.weights)
    return Cost(parameters, macs)


def traced_macs(generator, height=256, width=None):
    """Multiply-adds of the convolution ops in `generator`'s traced inference graph, one image.

    Counts what runs: c7s1-3 as the 4x4 convolution over 2x2 pixel blocks that computes it
    (networks.conv_on_pixel_blocks, 1.3x the 7x7's multiply-adds at these sizes), each
    transposed convolution by its input.
    """
    width = width or height
    spec = tf.TensorSpec((1, height, width, 3), tf.float32)
    graph = tf.function(lambda x: generator(x, training=False)).get_concrete_function(spec).graph
    total = 0
    for op in graph.get_operations():
        if op.type not in CONV_OPS:
            continue
        if op.type == "Conv2DBackpropInput":  # transposed: input 2 is the layer's input
            kh, kw, c_out, c_in = op.inputs[1].shape.as_list()
            _, h, w, _ = op.inputs[2].shape.as_list()
            total += h * w * kh * kw * c_in * c_out
        else:
            kh, kw, c_in, _ = op.inputs[1].shape.as_list()
            _, h, w, c_out = op.outputs[0].shape.as_list()
            per_output = c_in if op.type == "Conv2D" else 1
            total += h * w * kh * kw * per_output * c_out
    return total
