"""Write a run's generators as one SavedModel whose endpoints take images of any size:
per direction, float32 [-1, 1] in and out, and uint8 [0, 255] in and out."""

import keras
import tensorflow as tf

from tfcyclegan import inference
from tfcyclegan.data import imagefiles
from tfcyclegan.models.export_format import DIRECTIONS, uint8_signature

SAVEDMODEL_DIR = "savedmodel"
UINT8_SPEC = tf.TensorSpec((None, None, None, 3), tf.uint8)

_GENERATORS = {"a2b": "G", "b2a": "F"}
# What every endpoint takes and gives, besides its dtype and range.
ANY_SIZE = f"(N, H, W, 3) in and out, any H, W >= {inference.MIN_SIDE}"
ENDPOINTS = {
    **{d: f"{_GENERATORS[d]}: float32 [-1, 1] {ANY_SIZE}" for d in DIRECTIONS},
    **{uint8_signature(d): f"{_GENERATORS[d]}: uint8 [0, 255] {ANY_SIZE}" for d in DIRECTIONS},
}


def endpoints(directions):
    """The ENDPOINTS of a SavedModel holding the generators of `directions`."""
    present = {*directions, *(uint8_signature(d) for d in directions)}
    return {name: what for name, what in ENDPOINTS.items() if name in present}


def _any_size(generator):
    """`generator` on any H, W: reflection-pad to a multiple of 4 (centred, as the
    Translator does), translate, crop back."""

    def translate(images):
        h, w = tf.shape(images)[1], tf.shape(images)[2]
        ph, pw = -h % inference.MULTIPLE, -w % inference.MULTIPLE
        top, left = ph // 2, pw // 2
        x = tf.pad(images, [[0, 0], [top, ph - top], [left, pw - left], [0, 0]], mode="REFLECT")
        # A pad with computed amounts loses the static channel count, which the TFLite
        # converter needs for the first convolution; a reshape restores it.
        x = tf.reshape(x, tf.stack([tf.shape(images)[0], h + ph, w + pw, 3]))
        return generator(x, training=False)[:, top : top + h, left : left + w, :]

    return translate


def _uint8(translate):
    def translate_uint8(images):
        return imagefiles.to_uint8(translate(imagefiles.to_float(images)))

    return translate_uint8


def write_savedmodel(generator_g, generator_f, path):
    """Write both generators as one SavedModel with the endpoints in ENDPOINTS (only the
    a2b ones when `generator_f` is None: a pretrained file translates one way)."""
    archive = keras.export.ExportArchive()
    # The endpoints track every variable they use. An explicit archive.track(generator)
    # would store each weight a second time (Keras 3.15: once as the Keras variable, once
    # as the tf.Variable the endpoints capture), doubling the SavedModel on disk.
    fns = {}
    # a2b first: Keras makes the first endpoint `serving_default`.
    for direction, generator in (("a2b", generator_g), ("b2a", generator_f)):
        if generator is not None:
            fns[direction] = archive.add_endpoint(
                direction, _any_size(generator), input_signature=[inference.IMAGE_SPEC]
            )
    for direction, fn in list(fns.items()):
        archive.add_endpoint(uint8_signature(direction), _uint8(fn), input_signature=[UINT8_SPEC])
    archive.write_out(str(path), verbose=False)
