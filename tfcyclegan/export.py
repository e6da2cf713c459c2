"""Export a run's generators as a SavedModel or as TFLite files, each export verified
against the Keras generators before it is kept.

An export is written into a hidden temporary folder beside its target, checked for
parity, and only then renamed into place: a failed export leaves nothing behind and an
earlier export at the same place intact.
"""

import contextlib
import errno
import json
import os
import re
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfcyclegan import data, fsutil, inference, modeldir, rundir
from tfcyclegan.errors import UserError
from tfcyclegan.version import __version__

FORMATS = ("savedmodel", "tflite", "keras")
QUANTIZE = ("none", "float16", "dynamic", "int8")
SAVEDMODEL_DIR = "savedmodel"
UINT8_SPEC = tf.TensorSpec((None, None, None, 3), tf.uint8)
CALIBRATION_COUNT = 32
VERIFY_COUNT = 4
# The parity check's large image: a photo's size, not square, odd height. Float32
# rounding in the instance-norm sums grows with the pixel count (docs/export.md).
LARGE_SIZE = (427, 640)


@dataclass(frozen=True)
class Limit:
    """Parity an export must reach against Keras: max abs error (in [-1, 1] units) and/or PSNR."""

    max_abs: float | None = None
    min_psnr: float | None = None

    def passes(self, max_abs, psnr):
        return (self.max_abs is None or max_abs <= self.max_abs) and (self.min_psnr is None or psnr >= self.min_psnr)

    def __str__(self):
        parts = ([f"max abs <= {self.max_abs:g}"] if self.max_abs is not None else []) + (
            [f"PSNR >= {self.min_psnr:g} dB"] if self.min_psnr is not None else []
        )
        return " and ".join(parts)


# Limits per export kind: measured parity (docs/export.md; worst of a trained 9-block
# generator and random ones) less a margin for other models and CPUs. Float exports
# differ from Keras by kernel rounding only (SavedModel: 0; TFLite float32: 2.9e-5 at
# LARGE_SIZE), the quantized ones by quantization noise (float16 77 dB, dynamic 40.7 dB,
# int8 29.5 dB at the training size).
PARITY = {
    "savedmodel": Limit(max_abs=1e-4),
    # A reloaded .keras file runs the same weights through the same ops: 0 measured.
    "keras": Limit(max_abs=1e-6),
    "none": Limit(max_abs=2e-4),
    "float16": Limit(min_psnr=60.0),
    "dynamic": Limit(min_psnr=35.0),
    "int8": Limit(min_psnr=25.0),
}

ENDPOINTS = {
    "a2b": "G: float32 [-1, 1] (N, H, W, 3) in and out, any H, W >= 8",
    "b2a": "F: float32 [-1, 1] (N, H, W, 3) in and out, any H, W >= 8",
    "a2b_uint8": "G: uint8 [0, 255] (N, H, W, 3) in and out, any H, W >= 8",
    "b2a_uint8": "F: uint8 [0, 255] (N, H, W, 3) in and out, any H, W >= 8",
}


@dataclass
class ExportResult:
    """Where an export landed, its size in bytes, and per direction (max abs error, PSNR dB)."""

    path: Path
    format: str
    quantize: str
    size: int
    parity: dict = field(default_factory=dict)


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
        return data.to_uint8(translate(data.to_float(images)))

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
        archive.add_endpoint(f"{direction}_uint8", _uint8(fn), input_signature=[UINT8_SPEC])
    archive.write_out(str(path), verbose=False)


# TFLite ops int8 leaves in float32: the instance-norm arithmetic and the residual sums.
# One int8 scale per tensor cannot serve channels of very different variance. Measured
# on a trained 9-block generator at 256 x 256 (docs/export.md): all-int8 26.4 dB in
# 0.98 s; these in float32 32.3 dB in 0.65 s (they run in XNNPACK). Adding
# TRANSPOSE_CONV would reach 37.7 dB but runs a hybrid kernel, 4x slower.
INT8_FLOAT_OPS = ["MEAN", "SQUARED_DIFFERENCE", "RSQRT", "SUB", "MUL", "ADD"]


def convert_tflite(savedmodel_dir, direction, quantize="none", calibration=None):
    """The .tflite bytes of one endpoint of a SavedModel from write_savedmodel.

    Height and width stay dynamic. int8 quantizes the weights and activations of every
    convolution, calibrated on `calibration` (float32 [-1, 1] images of the source
    domain at the training size), keeps INT8_FLOAT_OPS in float32, and keeps float32
    input and output, so callers feed the same arrays as to every other export.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel_dir), signature_keys=[direction])
    try:
        return _convert(converter, quantize, calibration)
    except Exception as error:
        # tf.lite does not export ConverterError; its text starts with MLIR locations
        # ("Could not translate MLIR to FlatBuffer.<unknown>:0: error: loc(callsite(...")
        # and the reason, once on stderr, is hidden with TensorFlow's C++ log.
        if type(error).__name__ != "ConverterError":
            raise
        raise UserError(
            f"TFLite conversion of {direction} (--quantize {quantize}) failed: {_converter_reason(error)}; "
            "export --format savedmodel instead, or try another --quantize"
        ) from None


def _converter_reason(error):
    """The converter's own words for why it failed, in one line."""
    reasons = [e.error_message.splitlines()[0] for e in getattr(error, "errors", ()) if e.error_message.strip()]
    if not reasons:
        lines = [line for line in str(error).splitlines() if "error:" in line] or [
            str(error).strip() or "no reason given"
        ]
        match = re.search(r"error: (?:loc\(.*\): )?(.+)", lines[0])
        reasons = [match.group(1) if match else lines[0]]
    return "; ".join(dict.fromkeys(reasons))


def _convert(converter, quantize, calibration):
    if quantize == "none":
        return converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize != "int8":
        return converter.convert()

    def representative():
        for image in calibration:
            yield [image[None]]

    converter.representative_dataset = representative
    # Selective quantization is what the quantization debugger provides; it runs the
    # deprecated tf.lite.Interpreter internally, whose warning says nothing to our users.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated", category=UserWarning)
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=representative,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=INT8_FLOAT_OPS),
        )
        return debugger.get_nondebug_quantized_model()


def psnr(reference, candidate):
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2, the same as 8-bit PSNR)."""
    mse = float(np.mean((np.asarray(reference, np.float64) - np.asarray(candidate, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(4.0 / mse)


def synthetic_images(count, size, seed):
    """Deterministic smooth colour fields with sharp edges, in [-1, 1], for when no domain images are at hand."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images = []
    for _ in range(count):
        image = np.zeros((size, size, 3), np.float32)
        for c in range(3):
            fx, fy, phase = rng.uniform(0.5, 4, 2).tolist() + [rng.uniform(0, 6.3)]
            image[..., c] = np.sin(2 * np.pi * (fx * xx + fy * yy) + phase)
        mask = (xx - rng.uniform(0.2, 0.8)) ** 2 + (yy - rng.uniform(0.2, 0.8)) ** 2 < rng.uniform(0.02, 0.1)
        image[mask] = rng.uniform(-1, 1, 3)
        images.append(0.8 * image)
    return np.stack(images)


def _spread(files, count, offset=0.0):
    """`count` files spread evenly over the list, starting `offset` of a step in."""
    if len(files) <= count:
        return list(files)
    step = len(files) / count
    return [files[int(i * step + offset * step)] for i in range(count)]


def _domain_files(config, calibration_dirs, directions=inference.DIRECTIONS):
    """{direction: (calibration files, verification files, label)} from the source domains, or None if unavailable.

    For one direction alone (a pretrained generator) a single --calibration-dir is
    that direction's source images."""
    if len(calibration_dirs) == 1 and len(directions) == 1:
        files = data.list_images(calibration_dirs[0])
        return {directions[0]: (files, files, str(calibration_dirs[0]))}
    if len(calibration_dirs) == 2:
        a, b = (data.list_images(d) for d in calibration_dirs)
        return {"a2b": (a, a, str(calibration_dirs[0])), "b2a": (b, b, str(calibration_dirs[1]))}
    if len(calibration_dirs) == 1:
        root = Path(calibration_dirs[0]).expanduser()
        for a, b in (("trainA", "trainB"), ("testA", "testB"), ("A", "B")):
            if (root / a).is_dir() and (root / b).is_dir():
                fa, fb = data.list_images(root / a), data.list_images(root / b)
                return {"a2b": (fa, fa, str(root / a)), "b2a": (fb, fb, str(root / b))}
        raise UserError(
            f"--calibration-dir {root} needs subfolders trainA/ and trainB/ (or A/ and B/) with images of each "
            "domain; or give --calibration-dir twice: domain A's folder, then domain B's"
        )
    from tfcyclegan import datasets

    if not (config.domain_a and config.domain_b):
        return None  # a model directory of pretrained generators knows no training domains
    try:
        domain_a, domain_b = datasets.resolve_domains(
            config.domain_a, config.domain_b, config.data_root, download=False
        )
    except UserError:
        return None
    return {
        "a2b": (domain_a.train_files, domain_a.test_files or domain_a.train_files, domain_a.root),
        "b2a": (domain_b.train_files, domain_b.test_files or domain_b.train_files, domain_b.root),
    }


def _load_batch(files, size, count, offset=0.0):
    """Up to `count` images spread over `files`, resized to size x size, passing over unreadable ones."""
    good, _ = data.scan_images(_spread(files, 2 * count, offset), progress=False)
    return data.make_eval_batch(_spread(good, count), size, count)


def sample_images(config, calibration_dirs=(), need_calibration=False, log=print, directions=inference.DIRECTIONS):
    """Per direction: (calibration batch or None, verification batch, where the images came from).

    Images are resized to the training size. With no domain images available the
    verification uses deterministic synthetic images (and says so); int8 calibration
    then has nothing to learn from and is an error.
    """
    if len(calibration_dirs) > 2:
        raise UserError("give --calibration-dir once (a folder with trainA/ and trainB/) or twice (A's, then B's)")
    found = _domain_files(config, calibration_dirs, directions)
    size = config.image_size
    if found is None:
        if need_calibration and not (config.domain_a and config.domain_b):
            raise UserError(
                "int8 needs calibration images of the source domain and this model names none; pass "
                "--calibration-dir FOLDER (for a2b: images of domain A)"
            )
        if need_calibration:
            raise UserError(
                f"int8 needs calibration images and the run's domains ({config.domain_a}, {config.domain_b}) are "
                "not available here; pass --calibration-dir"
            )
        log(f"note: the run's domain images are not available here; checking parity on synthetic {size}x{size} images")
        return {
            d: (None, synthetic_images(VERIFY_COUNT, size, seed), "synthetic images")
            for seed, d in enumerate(inference.DIRECTIONS)
            if d in directions
        }
    samples = {}
    for direction, (calibration, verification, label) in found.items():
        if direction not in directions:
            continue
        batch = _load_batch(verification, size, VERIFY_COUNT, offset=0.5)
        if not len(batch):
            raise UserError(f"no readable image in {label} to check the export against; pass --calibration-dir")
        calib = _load_batch(calibration, size, CALIBRATION_COUNT) if need_calibration else None
        samples[direction] = (calib, batch, label)
    return samples


def _compare(reference, candidate, images):
    """{"HxW": (max abs error, PSNR)} of Translator `candidate` against `reference` on
    `images` (the training size); on an odd-size crop of the first, fed straight to the
    exported model, whose own padding it exercises (a .keras generator has none: the
    Translator pads for it); and on the first enlarged to LARGE_SIZE, where float32
    rounding in the instance-norm statistics, which grows with the pixel count, shows."""
    s = images.shape[1]
    odd = images[:1, : s - 3, : s - 1]
    large = np.clip(tf.image.resize(images[:1], LARGE_SIZE, method="bicubic").numpy(), -1, 1)
    direct = candidate if candidate.kind == "keras" else candidate.run
    parity = {}
    for x, run in ((images, candidate), (odd, direct), (large, candidate)):
        expected, got = reference(x), run(x)
        parity[f"{x.shape[1]}x{x.shape[2]}"] = (float(np.max(np.abs(expected - got))), psnr(expected, got))
    return parity


def default_output(run_dir, fmt, quantize="none"):
    """saved_models/<run name>/savedmodel, or .../keras, .../tflite (float32) and .../tflite-<quantize>.

    A model directory named keras (`tfcyclegan import`'s saved_models/<name>/keras)
    exports beside itself, under its parent's name."""
    path = Path(run_dir).expanduser().resolve()
    name = path.parent.name if path.name == "keras" and modeldir.is_model_dir(path) else path.name
    leaf = fmt if fmt != "tflite" else "tflite" if quantize == "none" else f"tflite-{quantize}"
    return Path("saved_models") / name / leaf


KIND_NAMES = {"savedmodel": "SavedModel", "tflite": "TFLite", "keras": "Keras model directory"}
# What an export of each format writes beside metadata.json; a SavedModel's variables/
# holds only the checkpoint files below and its assets/ nothing (the generators have none).
_SAVEDMODEL_FILES = ("saved_model.pb", "fingerprint.pb", "variables", "assets")
_VARIABLES_FILE = re.compile(r"variables\.(index|data-\d+-of-\d+)")
_LISTED_FILES = {
    "tflite": ("files", {f"{d}.tflite" for d in inference.DIRECTIONS}),
    "keras": ("generators", set(modeldir.GENERATOR_FILES.values())),
}


def _foreign_files(target, fmt, meta):
    """Entries of `target` (an earlier export of `fmt` described by `meta`) that such an export does not write."""
    if fmt == "savedmodel":
        own = set(_SAVEDMODEL_FILES)
    else:
        key, names = _LISTED_FILES.get(fmt, ("files", None))
        listed = meta.get(key)
        listed = listed.values() if isinstance(listed, dict) else ()
        own = {n for n in listed if isinstance(n, str) and (n in names if names else "/" not in n)}
    own.add(inference.METADATA_FILE)
    foreign = []
    for entry in sorted(target.iterdir()):
        if entry.name not in own or entry.is_symlink():
            foreign.append(entry.name)
        elif entry.name in ("variables", "assets") and fmt == "savedmodel" and entry.is_dir():
            foreign += [
                f"{entry.name}/{sub.name}"
                for sub in sorted(entry.iterdir())
                if entry.name == "assets" or not _VARIABLES_FILE.fullmatch(sub.name) or not sub.is_file()
            ]
        elif entry.is_dir() != (entry.name in ("variables", "assets")):
            foreign.append(entry.name)
    return foreign


def _check_target(target, fmt):
    """UserError unless `target` is absent, an empty folder, or an earlier tfcyclegan export
    of format `fmt` (by its metadata.json) holding only the files such an export writes:
    nothing else is ever replaced."""
    if not os.path.lexists(target):
        return
    elsewhere = "choose another --output or move it away"
    if not target.is_dir():
        raise UserError(f"{target} exists and is not a tfcyclegan export (it is a file); {elsewhere}")
    if not any(target.iterdir()):
        return
    meta_path = target / inference.METADATA_FILE
    if not meta_path.is_file():
        raise UserError(f"{target} exists and is not a tfcyclegan export (no metadata.json); {elsewhere}")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        meta = None
    why = None
    if not isinstance(meta, dict) or "tfcyclegan_version" not in meta or meta.get("format") not in KIND_NAMES:
        why = "its metadata.json says otherwise"
    elif meta["format"] != fmt:
        why = f"it is a {KIND_NAMES[meta['format']]} export"
    if why:
        raise UserError(
            f"{target} exists and is not an earlier tfcyclegan {KIND_NAMES.get(fmt, fmt)} export ({why}); {elsewhere}"
        )
    foreign = _foreign_files(target, fmt, meta)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise UserError(
            f"{target} holds files that tfcyclegan export did not write ({shown}); move them away or choose another --output"
        )


def _holds_cwd(folder):
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:
        return False
    return cwd == str(folder) or cwd.startswith(str(folder).rstrip(os.sep) + os.sep)


def _replace(staging, work):
    """Put the finished export `staging` at `work` (resolved), replacing an earlier export there.

    An earlier export is renamed aside as a whole, so `work` never holds a mix of old and
    new files. An empty folder, or the current folder (which cannot be renamed from under
    the shell that is in it), is kept and filled instead, the earlier files moved aside
    first and put back if anything fails."""
    if not os.path.lexists(work):
        os.rename(staging, work)
        return
    old = fsutil.unique_dir(work.parent, f".{work.name}.old-")
    if any(work.iterdir()) and not _holds_cwd(work):
        os.rename(work, old / "export")
        try:
            os.rename(staging, work)
        except BaseException:
            os.rename(old / "export", work)
            with contextlib.suppress(OSError):
                old.rmdir()
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    moved_out, moved_in = [], []
    try:
        for entry in sorted(work.iterdir()):
            os.rename(entry, old / entry.name)
            moved_out.append(entry.name)
        for entry in sorted(staging.iterdir()):
            os.rename(entry, work / entry.name)
            moved_in.append(entry.name)
    except BaseException:
        for name in moved_in:
            os.rename(work / name, staging / name)
        for name in moved_out:
            os.rename(old / name, work / name)
        with contextlib.suppress(OSError):
            old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_failure(error):
    """(reason, advice) for an OSError or a TensorFlow file error."""
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        full = error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    else:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        reason = re.sub(
            r"\s*\[Op:\w+\]$", "", first.rsplit("; ", 1)[-1]
        )  # "<path>; No space left on device [Op:SaveV2]"
        full = "No space left" in first or "quota" in first.lower()
    return reason, "free some disk space or choose another --output" if full else "choose another --output"


@contextlib.contextmanager
def _staging(target, fmt):
    """A hidden folder beside `target` that replaces it when the block succeeds and is
    deleted when it fails. A write that fails (a full disk) is one UserError; an
    earlier export at `target` is then left as it was."""
    work = Path(os.path.realpath(target))
    try:
        work.parent.mkdir(parents=True, exist_ok=True)
        staging = fsutil.unique_dir(work.parent, f".{work.name}.tmp-")
    except OSError as error:
        raise UserError(f"cannot write to {work.parent}: {error.strerror}; choose another --output") from None
    earlier = work.is_dir() and any(work.iterdir())
    try:
        yield staging
        _check_target(target, fmt)  # again: files may have been put there during the export
        _replace(staging, work)
    except (OSError, tf.errors.OpError) as error:
        if isinstance(error, tf.errors.OpError) and str(staging) not in str(error):
            raise
        reason, advice = _write_failure(error)
        kept = f" and the earlier export in {target} is intact" if earlier else ""
        raise UserError(
            f"cannot write the export into {work.parent}: {reason}; nothing was written{kept}; {advice}"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _size(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _write_tflite(generator_g, generator_f, folder, quantize, samples, log):
    """a2b.tflite and b2a.tflite in `folder`, converted from a scratch SavedModel."""
    scratch = folder / ".savedmodel"
    write_savedmodel(generator_g, generator_f, scratch)
    for direction in samples:
        log(f"converting {direction} to TFLite ({quantize})")
        blob = convert_tflite(scratch, direction, quantize, samples[direction][0])
        (folder / f"{direction}.tflite").write_bytes(blob)
    shutil.rmtree(scratch)


def _verify(folder, fmt, references, samples, limit, log):
    """Parity of the export in `folder` per direction; UserError if any misses `limit`."""
    parity, failed = {}, []
    for direction in references:
        path = folder / f"{direction}.tflite" if fmt == "tflite" else folder
        _, images, label = samples[direction]
        by_size = _compare(references[direction], inference.load_translator(path, direction), images)
        max_abs, db = max(e for e, _ in by_size.values()), min(d for _, d in by_size.values())
        ok = limit.passes(max_abs, db)
        parity[direction] = {
            "max_abs_error": max_abs,
            "psnr_db": db,
            "images": len(images) + 2,
            "source": label,
            "max_abs_error_by_size": {size: e for size, (e, _) in by_size.items()},
        }
        log(
            f"{direction}: max abs error {max_abs:.2e}, PSNR {db:.1f} dB vs Keras on {len(images) + 2} images "
            f"of {label} ({', '.join(by_size)}; limit: {limit}) {'ok' if ok else 'FAILED'}"
        )
        if not ok:
            failed.append(direction)
    if fmt == "savedmodel":
        failed += _check_uint8(folder, references, samples)
    if failed:
        raise UserError(f"export failed its parity check ({', '.join(failed)}; limit {limit}); nothing was written")
    return parity


def _check_uint8(path, references, samples):
    """Endpoints whose uint8 output is more than one level off the Keras float path."""
    loaded = tf.saved_model.load(str(path))
    failed = []
    for direction in references:
        images = data.to_uint8(samples[direction][1])
        expected = data.to_uint8(references[direction](data.to_float(images))).astype(np.int16)
        got = getattr(loaded, f"{direction}_uint8")(tf.constant(images)).numpy().astype(np.int16)
        if np.max(np.abs(expected - got)) > 1:
            failed.append(f"{direction}_uint8")
    return failed


def _load(source):
    """({direction: generator}, TrainConfig-like description, provenance) of a run or model directory."""
    from tfcyclegan.config import TrainConfig

    if modeldir.is_model_dir(source):
        meta = modeldir.read_metadata(source)
        generators = {d: modeldir.load_generator(source, d) for d in modeldir.directions(source)}
        first = next(iter(generators.values()))
        config = TrainConfig(
            domain_a=meta.get("domain_a"),
            domain_b=meta.get("domain_b"),
            image_size=int(meta.get("image_size") or 256),
            blocks=first.n_blocks,
            ngf=first.ngf,
        )
        provenance = {"model_dir": str(source.resolve())}
        if "sources" in meta:
            provenance["sources"] = meta["sources"]
        if "run_dir" in meta:
            provenance.update(run_dir=meta["run_dir"], checkpoint=meta.get("checkpoint"))
        return generators, config, provenance
    if source.is_file() and source.suffix.lower() in (".pth", ".pt"):
        raise UserError(f"{source} is a PyTorch file; import it first: tfcyclegan import {source}, then export that")
    generator_g, generator_f, config, checkpoint = rundir.restore_generators(source)
    return (
        {"a2b": generator_g, "b2a": generator_f},
        config,
        {"run_dir": str(source.resolve()), "checkpoint": Path(checkpoint).name},
    )


def export(run_dir, fmt="savedmodel", output=None, quantize="none", calibration_dirs=(), log=print):
    """Export the newest checkpoint of `run_dir`, or a model directory; returns an ExportResult.

    savedmodel: one SavedModel with endpoints a2b, b2a (float32) and a2b_uint8,
    b2a_uint8. tflite: a2b.tflite and b2a.tflite, quantized as `quantize` says. keras:
    a model directory (tfcyclegan.modeldir). Each gets a metadata.json. A model
    directory holding one generator exports that direction only. Each direction must
    reach PARITY against the Keras generator on source-domain images (or synthetic
    ones), else UserError and nothing is written.
    """
    if fmt not in FORMATS:
        raise UserError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if quantize not in QUANTIZE:
        raise UserError(f"--quantize must be one of {', '.join(QUANTIZE)}, not {quantize!r}")
    if fmt != "tflite" and quantize != "none":
        raise UserError(f"--quantize applies to --format tflite only; --format {fmt} keeps float32 weights")
    run_dir = Path(run_dir).expanduser()
    target = Path(output).expanduser() if output else default_output(run_dir, fmt, quantize)
    _check_target(target, fmt)  # before any work
    generators, config, provenance = _load(run_dir)
    generator_g, generator_f = generators["a2b"], generators.get("b2a")
    samples = sample_images(
        config, tuple(calibration_dirs), need_calibration=quantize == "int8", log=log, directions=list(generators)
    )
    references = {d: inference.keras_translator(g, d) for d, g in generators.items()}
    limit = PARITY[fmt if fmt != "tflite" else quantize]
    metadata = {
        "format": fmt,
        "tfcyclegan_version": __version__,
        "domain_a": config.domain_a,
        "domain_b": config.domain_b,
        "image_size": config.image_size,
        "blocks": config.blocks,
        "ngf": config.ngf,
        **provenance,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if fmt == "savedmodel":
        metadata["endpoints"] = {name: what for name, what in ENDPOINTS.items() if name.split("_")[0] in generators}
    elif fmt == "tflite":
        metadata["quantize"] = quantize
        metadata["io"] = "float32 [-1, 1] (N, H, W, 3) in and out, any H, W >= 8"
        metadata["files"] = {d: f"{d}.tflite" for d in generators}
    with _staging(target, fmt) as staging:
        if fmt == "savedmodel":
            write_savedmodel(generator_g, generator_f, staging)
        elif fmt == "keras":
            metadata = modeldir.save(staging, generators, metadata)
        else:
            _write_tflite(generator_g, generator_f, staging, quantize, samples, log)
        parity = _verify(staging, fmt, references, samples, limit, log)
        metadata["parity"] = {"limit": str(limit), **parity}
        (staging / inference.METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        size = _size(staging)
    shown = target if target.name not in ("", "..") else Path(os.path.realpath(target))  # not "exported to ."
    return ExportResult(shown, fmt, quantize, size, {d: (p["max_abs_error"], p["psnr_db"]) for d, p in parity.items()})
