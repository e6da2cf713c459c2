"""export(): one export from start to finish. Check the options and the target, load
the generators of a run or model directory, write the chosen kind into a staging
folder, check its parity against Keras, describe it in metadata.json, and publish it."""

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tfcyclegan import inference
from tfcyclegan.core.networks import MobileResnetGenerator
from tfcyclegan.export import parity, samples, savedmodel, tflite
from tfcyclegan.export.options import FORMATS, QUANTIZE
from tfcyclegan.models import identify, modeldir, publish
from tfcyclegan.models import metadata as model_metadata
from tfcyclegan.models.export_format import tflite_file
from tfcyclegan.models.metadata import ModelMetadata
from tfcyclegan.util import fsutil, report
from tfcyclegan.util.errors import UsageError
from tfcyclegan.version import __version__

# What `export` takes: the kinds whose Keras generators it can convert and check against.
ACCEPTS = identify.Accepts(
    "model",
    identify.EXPORTABLE,
    advice={
        identify.PTH: "import it first: tfcyclegan import {path}, then export that",
        identify.SAVEDMODEL: "export the run or model directory it was made from",
        identify.TFLITE: "export the run or model directory it was made from",
        identify.TFLITE_DIR: "export the run or model directory it was made from",
    },
)


@dataclass
class ExportResult:
    """Where an export landed, its size in bytes, and per direction (max abs error, PSNR dB)."""

    path: Path
    format: str
    quantize: str
    size: int
    parity: dict = field(default_factory=dict)


def default_output(run_dir, fmt, quantize="none"):
    """saved_models/<run name>/savedmodel, or .../keras, .../tflite (float32) and .../tflite-<quantize>.

    A model directory named keras (`tfcyclegan import`'s saved_models/<name>/keras)
    exports beside itself, under its parent's name."""
    path = Path(run_dir).expanduser().resolve()
    name = path.parent.name if path.name == "keras" and modeldir.is_model_dir(path) else path.name
    leaf = fmt if fmt != "tflite" else "tflite" if quantize == "none" else f"tflite-{quantize}"
    return Path("saved_models") / name / leaf


def check_options(fmt, quantize, calibration_dirs=()):
    """UsageError (exit 2) for options no export can use."""
    if fmt not in FORMATS:
        raise UsageError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if quantize not in QUANTIZE:
        raise UsageError(f"--quantize must be one of {', '.join(QUANTIZE)}, not {quantize!r}")
    if fmt != "tflite" and quantize != "none":
        raise UsageError(f"--quantize applies to --format tflite only; --format {fmt} keeps float32 weights")
    samples.check_calibration_dirs(calibration_dirs)


def _load(source, checkpoint=None):
    """({direction: generator}, ModelMetadata describing them) of a run or model directory
    (the run's checkpoint number `checkpoint`, when given)."""
    generators, meta, kind = identify.load_generators(source, ACCEPTS, checkpoint=checkpoint)
    if kind is identify.MODEL_DIR:
        first = next(iter(generators.values()))
        # What the export says of its origin: this model directory, and where that came from.
        described = ModelMetadata(
            domain_a=meta.domain_a,
            domain_b=meta.domain_b,
            data_root=meta.data_root,
            image_size=meta.image_size or 256,
            generator="mobile" if isinstance(first, MobileResnetGenerator) else "resnet",
            blocks=first.n_blocks,
            ngf=first.ngf,
            model_dir=str(source.resolve()),
            sources=meta.sources,
            run_dir=meta.run_dir,
            checkpoint=meta.checkpoint,
        )
        return generators, described
    return generators, meta


def _size(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def export(
    run_dir, fmt="savedmodel", output=None, quantize="none", calibration_dirs=(), log=report.note, checkpoint=None
):
    """Export the newest checkpoint of `run_dir` (or checkpoint number `checkpoint`), or a model
    directory; returns an ExportResult.

    savedmodel: one SavedModel with endpoints a2b, b2a (float32) and a2b_uint8,
    b2a_uint8. tflite: a2b.tflite and b2a.tflite, quantized as `quantize` says. keras:
    a model directory (tfcyclegan.models.modeldir). Each gets a metadata.json. A model
    directory holding one generator exports that direction only. Each direction must
    reach PARITY against the Keras generator on source-domain images (or synthetic
    ones), else UserError and nothing is written. Progress and the parity of each
    direction go to `log`.
    """
    check_options(fmt, quantize, calibration_dirs)
    run_dir = Path(run_dir).expanduser()
    target = Path(output).expanduser() if output else default_output(run_dir, fmt, quantize)
    fsutil.check_utf8(target, "--output")
    publish.check_target(target, fmt)  # before any work
    generators, described = _load(run_dir, checkpoint)
    generator_g, generator_f = generators["a2b"], generators.get("b2a")
    images = samples.sample_images(
        described, tuple(calibration_dirs), need_calibration=quantize == "int8", log=log, directions=list(generators)
    )
    references = {d: inference.keras_translator(g, d) for d, g in generators.items()}
    limit = parity.PARITY[fmt if fmt != "tflite" else quantize]
    metadata = dataclasses.replace(described, format=fmt, tfcyclegan_version=__version__)
    metadata = metadata.with_extra(exported=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    if fmt == "savedmodel":
        metadata = metadata.with_extra(endpoints=savedmodel.endpoints(generators))
    elif fmt == "tflite":
        metadata = dataclasses.replace(metadata, files={d: tflite_file(d) for d in generators})
        metadata = metadata.with_extra(quantize=quantize, io=tflite.IO)
    with publish.staged(target, fmt) as staging:
        if fmt == "savedmodel":
            savedmodel.write_savedmodel(generator_g, generator_f, staging)
        elif fmt == "keras":
            metadata = modeldir.save(staging, generators, metadata)
        else:
            tflite.write_tflite(generator_g, generator_f, staging, quantize, images, log)
        measured = parity.verify(staging, fmt, references, images, limit, log)
        metadata = metadata.with_extra(parity={"limit": str(limit), **measured})
        model_metadata.write(staging, metadata)
        size = _size(staging)
    shown = target if target.name not in ("", "..") else Path(os.path.realpath(target))  # not "exported to ."
    return ExportResult(
        shown, fmt, quantize, size, {d: (p["max_abs_error"], p["psnr_db"]) for d, p in measured.items()}
    )
