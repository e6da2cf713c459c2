"""The Translator: one direction of a trained model on images of any size, within a
memory budget.

Each image is reflection-padded to a multiple of MULTIPLE, translated and cropped back;
batches are split to the pixel budget of one forward pass, and an image larger than
that is cut into overlapping tiles whose results are cross-faded. What runs a forward
pass (Keras, a SavedModel, TFLite) is given by tfcyclegan.inference.loaders.
"""

import math

import numpy as np

from tfcyclegan.data import imagefiles
from tfcyclegan.inference.options import MIN_SIDE, MULTIPLE
from tfcyclegan.models.metadata import ModelMetadata
from tfcyclegan.util.errors import UserError

# Memory one forward pass may hold; a larger image is translated in overlapping tiles.
PASS_BYTES = 3 * 2**30
# Float32 copies of the widest activation a pass holds at its peak, per input pixel:
# one pass measured 26, 69 and 273 floats per pixel on CPU for ngf 4, 16 and 64, that
# is 2.6, 3.1 and 3.9 times ngf + 6 (docs/benchmarks.md, "Memory of large translations").
LIVE_COPIES = 4
# Rows of blended tiles divided and converted at once: a few MB even for wide images.
BLEND_ROWS = 64


def pass_bytes_per_pixel(ngf):
    """Peak bytes of a forward pass per input pixel: LIVE_COPIES float32 copies of the
    widest layer plus the input and output images.

    Per input pixel the generator's activations have ngf channels at full size, 2 x ngf
    at half size (ngf / 2 per input pixel) and 4 x ngf at a quarter (ngf / 4): the widest
    is the full-size one, ngf channels, beside the 3-channel input and output.
    """
    return LIVE_COPIES * 4 * (max(int(ngf), 1) + 3 + 3)


def pixel_budget(ngf):
    """Pixels (batch x height x width) one forward pass of a generator with `ngf` filters
    may hold so that it stays within PASS_BYTES."""
    return max(MIN_SIDE * MIN_SIDE, PASS_BYTES // pass_bytes_per_pixel(ngf))


def _starts(length, size, overlap):
    """Tile origins along one axis: every size - overlap, the last one flush with the end."""
    if length <= size:
        return [0]
    return list(range(0, length - size, size - overlap)) + [length - size]


def _ramps(starts, size):
    """Blend weights of each tile along one axis: a linear cross-fade over exactly the
    span it shares with each neighbour, so neighbouring weights sum to 1 there."""
    weights = []
    for i, start in enumerate(starts):
        w = np.ones(size, np.float32)
        if i > 0:
            shared = starts[i - 1] + size - start
            w[:shared] = (np.arange(shared, dtype=np.float32) + 1) / (shared + 1)
        if i + 1 < len(starts):
            shared = start + size - starts[i + 1]
            fall = np.arange(shared, 0, -1, dtype=np.float32) / (shared + 1)
            w[size - shared :] = np.minimum(w[size - shared :], fall)
        weights.append(w)
    return weights


class Translator:
    """One direction of a trained model: float32 images in [-1, 1], any size, in and out.

    Call it on an (N, H, W, 3) or (H, W, 3) array; the result has the same shape
    (`translate_uint8` does the same for uint8 images). Each image is reflection-padded to
    a multiple of 4, translated, and cropped back. Batches are split so one forward pass
    holds at most `max_pixels` pixels; a single image larger than that is cut into
    square tiles overlapping by a quarter of their side, whose results are cross-faded
    linearly over the overlaps so no seam shows. Tiles are blended one row of tiles at a
    time, so beside the input and output a large image costs one band of float32 tiles.

    `run` maps a float32 numpy batch whose height and width are multiples of 4 to its
    translation. `kind` is "keras", "savedmodel" or "tflite"; `info` is what is known
    about the model, a tfcyclegan.models.metadata.ModelMetadata (empty when None).
    """

    def __init__(self, run, direction, kind, source, max_pixels, info=None):
        self.run = run
        self.direction = direction
        self.kind = kind
        self.source = str(source)
        self.max_pixels = int(max_pixels)
        self.info = info if info is not None else ModelMetadata()
        side = int(math.isqrt(self.max_pixels)) // MULTIPLE * MULTIPLE
        self.tile = max(side, 4 * MULTIPLE)
        self.overlap = self.tile // 4 // MULTIPLE * MULTIPLE

    def __repr__(self):
        return f"Translator({self.direction}, {self.kind}, {self.source!r})"

    def __call__(self, images):
        return self._translate(np.asarray(images, np.float32), np.float32)

    def translate_uint8(self, images):
        """uint8 images in, uint8 translations out: imagefiles.to_uint8(self(imagefiles.to_float(images)))
        without float32 copies of a whole large image (3 bytes per pixel in and out)."""
        return self._translate(np.asarray(images, np.uint8), np.uint8)

    def _pass(self, x, dtype):
        y = self.run(imagefiles.to_float(x) if x.dtype == np.uint8 else x)
        return imagefiles.to_uint8(y) if dtype == np.uint8 else y

    def _translate(self, x, dtype):
        single = x.ndim == 3
        if single:
            x = x[None]
        if x.ndim != 4 or x.shape[-1] != 3:
            raise UserError(f"expected RGB images shaped (N, H, W, 3) or (H, W, 3), got shape {x.shape}")
        n, h, w, _ = x.shape
        if min(h, w) < MIN_SIDE:
            raise UserError(f"image of {w}x{h} pixels is too small; the generator needs at least {MIN_SIDE}x{MIN_SIDE}")
        ph, pw = -h % MULTIPLE, -w % MULTIPLE
        top, left = ph // 2, pw // 2
        if ph or pw:
            x = np.pad(x, [(0, 0), (top, ph - top), (left, pw - left), (0, 0)], mode="reflect")
        hp, wp = x.shape[1:3]
        if hp * wp > self.max_pixels:
            y = np.empty(x.shape, dtype)
            for image, out in zip(x, y):
                self._tiled(image, out)
        else:
            per_pass = max(1, self.max_pixels // (hp * wp))
            y = np.concatenate([self._pass(x[i : i + per_pass], dtype) for i in range(0, n, per_pass)])
        y = y[:, top : top + h, left : left + w]
        return y[0] if single else y

    def _tiled(self, image, out):
        """Translate one image tile by tile into `out`, a row of tiles at a time.

        The blend weight of a pixel is the sum of its tiles' outer products of row and
        column ramps, which factorises into (row ramp sum) x (column ramp sum). Once a row
        of tiles is done, the rows above the next row of tiles are final: they are
        divided by their weight, written to `out`, and the band moves down.
        """
        h, w, _ = image.shape
        th, tw = min(self.tile, h), min(self.tile, w)
        rows, cols = _starts(h, th, self.overlap), _starts(w, tw, self.overlap)
        row_w, col_w = _ramps(rows, th), _ramps(cols, tw)
        row_sum, col_sum = np.zeros(h, np.float32), np.zeros(w, np.float32)
        for start, ramp in zip(rows, row_w):
            row_sum[start : start + th] += ramp
        for start, ramp in zip(cols, col_w):
            col_sum[start : start + tw] += ramp
        band = np.zeros((th, w, 3), np.float32)
        per_pass = max(1, self.max_pixels // (th * tw))
        for i, top in enumerate(rows):
            for k in range(0, len(cols), per_pass):
                chunk = range(k, min(k + per_pass, len(cols)))
                tiles = self._pass(np.stack([image[top : top + th, cols[j] : cols[j] + tw] for j in chunk]), np.float32)
                for j, tile in zip(chunk, tiles):
                    band[:, cols[j] : cols[j] + tw] += tile * np.outer(row_w[i], col_w[j])[..., None]
            done = (rows[i + 1] if i + 1 < len(rows) else h) - top
            # A few rows at a time, so the division and conversion need no band-sized temporaries.
            for r in range(top, top + done, BLEND_ROWS):
                end = min(r + BLEND_ROWS, top + done)
                final = band[r - top : end - top] / (row_sum[r:end, None, None] * col_sum[None, :, None])
                out[r:end] = imagefiles.to_uint8(final) if out.dtype == np.uint8 else final
            band[: th - done] = band[done:]
            band[th - done :] = 0
