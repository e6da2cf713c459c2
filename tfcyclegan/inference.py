"""Translate images of any size with a trained generator: from a run directory, a model
directory of .keras generators, an exported SavedModel, a .tflite file or a PyTorch .pth
generator, in memory or file to file.

Nothing is unpickled and no Python is executed from a model path: a run directory is
read as config.json plus a TensorFlow checkpoint, a .keras file in Keras' safe mode, a
SavedModel as a graph, a .tflite file as a flatbuffer, a .pth through a restricted
unpickler that builds tensors only (tfcyclegan.torch_state), and metadata as JSON.
"""

import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from tfcyclegan import data, fsutil, rundir
from tfcyclegan.errors import UsageError, UserError
from tfcyclegan.modeldir import METADATA_FILE  # one name for exports and model directories

DIRECTIONS = ("a2b", "b2a")
# Two stride-2 convolutions: the generator maps H x W to H x W only for multiples of 4.
MULTIPLE = 4
# The residual blocks reflection-pad by 1 at a quarter of the size, which needs >= 2 pixels.
MIN_SIDE = 8
# Memory one forward pass may hold; a larger image is translated in overlapping tiles.
PASS_BYTES = 3 * 2**30
# Float32 copies of the widest activation a pass holds at its peak, per input pixel:
# one pass measured 26, 69 and 273 floats per pixel on CPU for ngf 4, 16 and 64, that
# is 2.6, 3.1 and 3.9 times ngf + 6 (docs/benchmarks.md, "Memory of large translations").
LIVE_COPIES = 4
# Rows of blended tiles divided and converted at once: a few MB even for wide images.
BLEND_ROWS = 64
TFLITE_MAGIC = b"TFL3"  # flatbuffer file identifier at byte offset 4

IMAGE_SPEC = tf.TensorSpec((None, None, None, 3), tf.float32)


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
    about the model (training config or export metadata).
    """

    def __init__(self, run, direction, kind, source, max_pixels, info=None):
        self.run = run
        self.direction = direction
        self.kind = kind
        self.source = str(source)
        self.max_pixels = int(max_pixels)
        self.info = info or {}
        side = int(math.isqrt(self.max_pixels)) // MULTIPLE * MULTIPLE
        self.tile = max(side, 4 * MULTIPLE)
        self.overlap = self.tile // 4 // MULTIPLE * MULTIPLE

    def __repr__(self):
        return f"Translator({self.direction}, {self.kind}, {self.source!r})"

    def __call__(self, images):
        return self._translate(np.asarray(images, np.float32), np.float32)

    def translate_uint8(self, images):
        """uint8 images in, uint8 translations out: data.to_uint8(self(data.to_float(images)))
        without float32 copies of a whole large image (3 bytes per pixel in and out)."""
        return self._translate(np.asarray(images, np.uint8), np.uint8)

    def _pass(self, x, dtype):
        y = self.run(data.to_float(x) if x.dtype == np.uint8 else x)
        return data.to_uint8(y) if dtype == np.uint8 else y

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
                out[r:end] = data.to_uint8(final) if out.dtype == np.uint8 else final
            band[: th - done] = band[done:]
            band[th - done :] = 0


def keras_translator(generator, direction="a2b", info=None, source="keras generator"):
    """A Translator around an in-memory generator (G for a2b, F for b2a)."""
    ngf = getattr(generator, "ngf", 64)
    fn = tf.function(lambda x: generator(x, training=False), input_signature=[IMAGE_SPEC])
    return Translator(lambda x: fn(x).numpy(), direction, "keras", source, pixel_budget(ngf), info)


def _check_direction(direction):
    if direction not in DIRECTIONS:
        raise UserError(f"direction must be a2b or b2a, not {direction!r}")


def _read_metadata(folder):
    """The export metadata.json in `folder` ({} if none). The architecture values used here
    are held to the bounds of `tfcyclegan fit`'s options (config.value_problem), and
    "files" must map directions to file names; anything else is a UserError naming the key."""
    from tfcyclegan.config import value_problem

    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path}: {error}; re-export the model with `tfcyclegan export`") from None
    if not isinstance(meta, dict):
        return {}
    problems = [
        value_problem(key, meta[key], json.dumps(key)) for key in ("ngf", "blocks", "image_size") if key in meta
    ]
    files = meta.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(name, str) for name in files.values()):
        problems.append(f'"files" must map a2b and b2a to file names (got {json.dumps(files)})')
    problems = [problem for problem in problems if problem]
    if problems:
        raise UserError(f"{path}: {'; '.join(problems)}; re-export the model with `tfcyclegan export`")
    return meta


def _from_run_dir(path, direction):

    generator_g, generator_f, config = rundir.load_generators(path)
    generator = generator_g if direction == "a2b" else generator_f
    return keras_translator(generator, direction, info=config.to_dict(), source=path)


def _from_savedmodel(path, direction):
    info = _read_metadata(path)
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot load SavedModel {path}: {first}; re-export it with `tfcyclegan export`") from None
    signature = getattr(loaded, "signatures", {}).get(direction)
    if signature is None:
        raise UserError(
            f"SavedModel {path} has no {direction} endpoint, so it was not exported by tfcyclegan; "
            "export a run with `tfcyclegan export RUN_DIR`"
        )
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    spec = next(iter(inputs.values()), None) if len(inputs) == 1 else None
    if (
        spec is None
        or len(outputs) != 1
        or spec.dtype != tf.float32
        or spec.shape.rank != 4
        or spec.shape[-1] != 3
        or spec.shape[1] is not None
        or spec.shape[2] is not None
    ):
        raise UserError(
            f"SavedModel {path}: endpoint {direction} is not an image translator (it takes {inputs}); "
            "export a run with `tfcyclegan export RUN_DIR`"
        )
    name, key = next(iter(inputs)), next(iter(outputs))

    def run(x):
        return signature(**{name: tf.constant(x)})[key].numpy()

    return Translator(run, direction, "savedmodel", path, pixel_budget(info.get("ngf", 64)), info)


def _tflite_direction(path, interpreter):
    """The direction a .tflite file translates: its signature name, else its file name."""
    names = [n for n in interpreter.get_signature_list() if n in DIRECTIONS]
    if len(names) == 1:
        return names[0]
    found = set(re.findall(r"(?<![a-z0-9])(a2b|b2a)(?![a-z0-9])", Path(path).stem.lower()))
    return found.pop() if len(found) == 1 else None


def _from_tflite(path, direction, num_threads=None):
    from ai_edge_litert.interpreter import Interpreter

    info = _read_metadata(Path(path).parent)
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads or os.cpu_count())
    except Exception as error:
        raise UserError(
            f"{path} is not a valid TFLite model ({error}); re-export it with `tfcyclegan export`"
        ) from None
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()

    def describe(details):
        return ", ".join(f"{d['dtype'].__name__} {d['shape_signature'].tolist()}" for d in details)

    def is_image(d):
        sig = d["shape_signature"].tolist()
        return d["dtype"] == np.float32 and len(sig) == 4 and sig[3] == 3

    if len(inputs) != 1 or len(outputs) != 1 or not is_image(inputs[0]) or not is_image(outputs[0]):
        raise UserError(
            f"{path} is not a tfcyclegan translator: it maps {describe(inputs)} to {describe(outputs)}, "
            "not float32 [batch, height, width, 3] images; "
            "export a run with `tfcyclegan export RUN_DIR --format tflite`"
        )
    if inputs[0]["shape_signature"][1:3].tolist() != [-1, -1]:
        h, w = inputs[0]["shape_signature"][1:3].tolist()
        raise UserError(
            f"{path} only takes {w}x{h} images; export the run with `tfcyclegan export RUN_DIR --format tflite` "
            "for one that takes any size"
        )
    found = _tflite_direction(path, interpreter)
    if found is None:
        raise UserError(
            f"cannot tell which direction {path} translates (no a2b/b2a signature or name); "
            f"rename it to end in _{direction}.tflite if it is the {direction} model"
        )
    direction = direction or found
    if found != direction:
        raise UserError(f"{path} translates {found}, not {direction}; pass --direction {found} or the {direction} file")
    index, out_index = inputs[0]["index"], outputs[0]["index"]
    shape = [None]

    def run(x):
        # Resizing re-plans the interpreter's memory, so do it only when the shape changes.
        if list(x.shape) != shape[0]:
            interpreter.resize_tensor_input(index, x.shape, strict=False)
            interpreter.allocate_tensors()
            shape[0] = list(x.shape)
        interpreter.set_tensor(index, np.ascontiguousarray(x, np.float32))
        interpreter.invoke()
        return interpreter.get_tensor(out_index)

    return Translator(run, direction, "tflite", path, pixel_budget(info.get("ngf", 64)), info)


def _is_tflite(path):
    with open(path, "rb") as f:
        return f.read(8)[4:8] == TFLITE_MAGIC


def load_translator(path, direction, num_threads=None):
    """The Translator for `direction` (a2b uses G, b2a uses F) stored at `path`.

    `path` is a run directory (its newest checkpoint), a model directory of .keras
    generators (tfcyclegan.modeldir), a SavedModel from `tfcyclegan export`, a .tflite
    file from it, a folder of such .tflite files (the one for `direction` is used), or
    a PyTorch generator .pth file (tfcyclegan.pretrained; it translates the one way it
    was trained, whatever `direction` says). `direction=None` takes the model's only
    direction (a .pth file, a one-way model directory, a .tflite file) and is a
    UsageError for a model that translates both ways. `num_threads` applies to TFLite
    (default: every core).
    """
    if direction is not None:
        _check_direction(direction)
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(
            f"model {path}: no such file or folder; give a run directory, a model directory, a SavedModel, "
            "a .tflite or a .pth file"
        )
    expected = (
        "expected a run directory (config.json + checkpoints/), a model directory (generator_g.keras), "
        "a SavedModel from `tfcyclegan export`, a .tflite or a PyTorch .pth file"
    )
    if path.is_dir():
        from tfcyclegan import modeldir
        from tfcyclegan.rundir import CONFIG_FILE

        if direction is None:
            if (path / CONFIG_FILE).is_file() or (path / "saved_model.pb").is_file():
                held = DIRECTIONS
            elif modeldir.is_model_dir(path):
                held = modeldir.directions(path)
            else:
                held = list(_read_metadata(path).get("files", {}))
            if len(held) > 1:
                raise UsageError(
                    f"{path} translates both ways: pass --direction a2b (G, A to B) or --direction b2a (F, B to A)"
                )
            direction = held[0] if held else None
        if (path / CONFIG_FILE).is_file():
            return _from_run_dir(path, direction)
        if modeldir.is_model_dir(path):
            return keras_translator(
                modeldir.load_generator(path, direction), direction, modeldir.read_metadata(path), source=path
            )
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return _from_savedmodel(path, direction)
        files = _read_metadata(path).get("files", {})
        if direction in files and (path / Path(files[direction]).name).is_file():
            return _from_tflite(path / Path(files[direction]).name, direction, num_threads)
        if isinstance(files, dict) and files and direction not in files:
            other = ", ".join(sorted(map(str, files)))
            raise UserError(
                f"{path} has no {direction} model, only {other} (its generator translates one way); "
                f"use --direction {other}"
            )
        raise UserError(f"{path} is not a model: {expected}")
    if not path.is_file():  # a named pipe or a device would block or never end
        raise UserError(f"model {path} is not a regular file; {expected}")
    try:
        tflite = _is_tflite(path)
    except OSError as error:
        raise UserError(f"cannot read model {path}: {error.strerror}") from None
    if tflite:
        return _from_tflite(path, direction, num_threads)
    if path.suffix.lower() in (".pth", ".pt"):
        from tfcyclegan import pretrained

        generator, described = pretrained.load_source(path)
        return keras_translator(generator, direction or "a2b", described, source=path)
    raise UserError(f"{path} is not a model: {expected}")


@dataclass
class TranslateReport:
    """What translate_files did: files written, inputs skipped (path, reason), inputs downscaled.

    `too_small` and `too_large` are the skipped inputs that were read but could not be
    translated at their size (too_large: over the decoder's pixel limit, see --allow-large).
    """

    written: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    downscaled: list = field(default_factory=list)
    # Outputs that already existed and were left as they are (no `overwrite`); their
    # inputs are not translated and not in `skipped`.
    existing: list = field(default_factory=list)
    too_small: list = field(default_factory=list)
    too_large: list = field(default_factory=list)


FORMATS = {"png": ("PNG", ".png", {}), "jpg": ("JPEG", ".jpg", {"quality": 95})}


def check_output_dir(output_dir):
    """UserError unless `output_dir` is a folder or can be made one: a file there (or in
    place of one of its parents) stops the command before any work."""
    path = Path(output_dir).expanduser()
    for parent in (path, *path.parents):
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise UserError(
                    f"--output {output_dir}: {parent} is a file, not a folder; give a folder for the translated images"
                )
            return


def _key(path):
    return os.path.normcase(path)


def _inside(path, folder):
    """Whether the resolved `path` is `folder` or lies under it (both resolved, as _key gives them)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def plan_outputs(inputs, output_dir, fmt="png"):
    """[(input file, output file)] for files and folders (recursive, subfolders kept).

    Each output keeps its input's file name with the extension of `fmt`. Paths are
    compared resolved (links, `..`), so an --output that is a link to an input folder is
    seen for what it is. Two inputs that would land on the same output, an output that
    would overwrite its input, or an input inside the output folder are an error before
    any work is done. An output folder inside an input folder is left out of that
    input: what is in it are earlier outputs, never inputs.
    """
    if fmt not in FORMATS:
        raise UserError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    suffix = FORMATS[fmt][1]
    output_dir = Path(output_dir).expanduser()
    check_output_dir(output_dir)
    out_real = _key(os.path.realpath(output_dir))
    jobs = []
    for item in inputs:
        item = Path(item).expanduser()
        if item.is_dir():
            item_real = _key(os.path.realpath(item))
            nested = out_real != item_real and _inside(out_real, item_real)
            for p in data.list_images(item):
                if nested and _inside(_key(os.path.realpath(p)), out_real):
                    continue
                jobs.append((item, Path(p), Path(p).relative_to(item)))
        elif item.exists():
            jobs.append((item, item, Path(item.name)))
        else:
            raise UserError(f"input {item}: no such file or folder")
    if not jobs:
        raise UserError("no input images given")
    seen = {}
    plan = []
    for item, source, relative in jobs:
        target = output_dir / relative.with_suffix(suffix)
        # The folder resolved (a link inside --output may lead anywhere), not the file:
        # replacing a link named like the target replaces the link, not what it points to.
        key = _key(os.path.join(os.path.realpath(target.parent), target.name))
        if key in seen:
            raise UserError(
                f"{seen[key]} and {source} would both be written to {target}; "
                "translate them into separate --output folders"
            )
        source_real = _key(os.path.realpath(source))
        if key == source_real:
            raise UserError(f"{target} would overwrite its input {source}; choose another --output folder")
        if _inside(source_real, out_real):
            raise UserError(
                f"input {item} is inside the --output folder {output_dir}, so earlier outputs would be taken as "
                "inputs; choose an --output folder outside the inputs"
            )
        seen[key] = source
        plan.append((source, target))
    return plan


def _save(array, target, fmt, overwrite=True):
    """Write `target`; False if it exists (appeared since planning) and not `overwrite`."""
    kind, _, options = FORMATS[fmt]
    partial = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written under a unique hidden name beside the target and then given its name, so
        # an interrupted run leaves no half image and two runs never share a temporary file.
        file, partial = fsutil.unique_file(target.parent, f".{target.name}.", ".part")
        with file:
            Image.fromarray(array).save(file, format=kind, **options)
        return fsutil.publish(partial, target, overwrite)
    except BaseException as error:
        if partial is not None:
            partial.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise UserError(f"cannot write {target}: {error.strerror or error}; check the --output folder") from None
        raise


def _log(message):
    print(message, file=sys.stderr)


def translate_files(
    translator,
    inputs,
    output_dir,
    batch_size=1,
    max_size=None,
    fmt="png",
    progress=None,
    log=_log,
    allow_large=False,
    overwrite=False,
):
    """Translate image files and folders into `output_dir`; returns a TranslateReport.

    Images of the same size are batched (up to `batch_size`). An image whose longer side
    exceeds `max_size` is downscaled (aspect kept) before translation, with a note; one
    whose shorter side would then fall below MIN_SIDE is skipped as too small. An image
    over the decoder's pixel limit (data.ImageTooLarge) is skipped unless `allow_large`
    or `max_size` is given. An unreadable input is reported through `log` in one line and
    skipped. `progress(done, total)` is called as inputs finish. An output that already
    exists is left as it is and its input not translated (report.existing), unless
    `overwrite`.
    """
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1 (got {batch_size})")
    if max_size is not None and max_size < MIN_SIDE:
        raise UserError(f"--max-size must be >= {MIN_SIDE} (got {max_size})")
    plan = plan_outputs(inputs, output_dir, fmt)
    report = TranslateReport()
    if not overwrite:
        report.existing = [str(target) for _, target in plan if os.path.lexists(target)]
        plan = [(source, target) for source, target in plan if not os.path.lexists(target)]
    total, done = len(plan), 0
    pending = {}  # (h, w) -> [(image, target)]

    def finish(count):
        nonlocal done
        done += count
        if progress:
            progress(done, total)

    def flush(size):
        batch = pending.pop(size)
        # A single (possibly very large) image is passed as a view, not copied by np.stack.
        images = batch[0][0][None] if len(batch) == 1 else np.stack([image for image, _ in batch])
        out = translator.translate_uint8(images)
        for array, (_, target) in zip(out, batch):
            if _save(array, target, fmt, overwrite):
                report.written.append(str(target))
            else:
                report.existing.append(str(target))
        finish(len(batch))

    def skip(source, reason, kind=None):
        report.skipped.append((str(source), reason))
        if kind is not None:
            kind.append((str(source), reason))
        log(f"skipped {source}: {reason}")
        finish(1)

    for source, target in plan:
        try:
            image = data.load_image(source, allow_large=allow_large or max_size is not None)
        except data.ImageTooLarge as error:
            skip(
                source, f"{error.reason}; pass --max-size to translate it downscaled or --allow-large", report.too_large
            )
            continue
        except data.ImageError as error:
            skip(source, error.reason)
            continue
        h, w = image.shape[:2]
        if max_size is not None and max(h, w) > max_size:
            scale = max_size / max(h, w)
            size = (round(w * scale), round(h * scale))
            if min(size) < MIN_SIDE:
                skip(
                    source,
                    f"too small at --max-size {max_size}: {w}x{h} would become {size[0]}x{size[1]}, "
                    f"and at least {MIN_SIDE}x{MIN_SIDE} is needed",
                    report.too_small,
                )
                continue
            image = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
            report.downscaled.append((str(source), (w, h), size))
            log(f"note: {source} is {w}x{h}; translated at {size[0]}x{size[1]} (--max-size {max_size})")
            h, w = image.shape[:2]
        if min(h, w) < MIN_SIDE:
            skip(source, f"too small ({w}x{h}; at least {MIN_SIDE}x{MIN_SIDE} needed)", report.too_small)
            continue
        pending.setdefault((h, w), []).append((image, target))
        if len(pending[(h, w)]) == batch_size:
            flush((h, w))
        elif sum(len(v) for v in pending.values()) > 4 * batch_size:
            # Many different sizes: bound memory by translating the fullest group early.
            flush(max(pending, key=lambda k: len(pending[k])))
    for size in list(pending):
        flush(size)
    return report
