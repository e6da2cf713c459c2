"""What is at a path, answered once: `identify` names its Kind, and the kinds that hold Keras
weights load their generators through one table (`load_generators`).

    RUN_DIR     a run directory: config.json (and checkpoints/), tfcyclegan.runs.rundir
    MODEL_DIR   a model directory: generator_g.keras / generator_f.keras, modeldir
    SAVEDMODEL  a SavedModel folder: saved_model.pb (or .pbtxt)
    TFLITE      a .tflite file: a flatbuffer with the TFL3 identifier, whatever its name
    TFLITE_DIR  a folder whose metadata.json lists .tflite files (`export --format tflite`)
    PTH         a PyTorch .pth / .pt generator state dict, tfcyclegan.models.pretrained

Each command that takes a model states what it accepts as an Accepts (translate,
evaluate and study: ANY kind; export: EXPORTABLE; fit --init-generators and distill:
KERAS_WEIGHTS), and Accepts.identify refuses anything else in one line naming what works.
Nothing is loaded to tell a kind: only names, and the first bytes of a file.
"""

from dataclasses import dataclass, field
from pathlib import Path

from tfcyclegan.models import metadata as model_metadata
from tfcyclegan.models import modeldir
from tfcyclegan.models.export_format import (
    DIRECTIONS,
    SAVEDMODEL_FILE,
    SAVEDMODEL_TEXT_FILE,
    TFLITE_MAGIC,
    TFLITE_MAGIC_OFFSET,
)
from tfcyclegan.models.metadata import ModelMetadata
from tfcyclegan.util import fsutil
from tfcyclegan.util.errors import UsageError, UserError, first_line
from tfcyclegan.util.runmarker import CONFIG_FILE

REEXPORT = "re-export the model with `tfcyclegan export`"
PTH_SUFFIXES = (".pth", ".pt")


@dataclass(frozen=True)
class Kind:
    """A kind of model path: what it is called (`name`, also in a list of what to give)
    and how it is told (`expected`, in a list of what was expected). A kind that is not
    `listed` is covered in those lists by another's words, as a folder of .tflite files
    by ".tflite"."""

    key: str
    name: str
    expected: str
    listed: bool = True


RUN_DIR = Kind("run_dir", "a run directory", "a run directory (config.json + checkpoints/)")
MODEL_DIR = Kind("model_dir", "a model directory", "a model directory (generator_g.keras)")
SAVEDMODEL = Kind("savedmodel", "a SavedModel", "a SavedModel from `tfcyclegan export`")
TFLITE = Kind("tflite", "a .tflite", "a .tflite")
TFLITE_DIR = Kind("tflite_dir", "a folder of .tflite files", "a folder of .tflite files", listed=False)
PTH = Kind("pth", "a .pth file", "a PyTorch .pth file")

ANY = (RUN_DIR, MODEL_DIR, SAVEDMODEL, TFLITE, TFLITE_DIR, PTH)
KERAS_WEIGHTS = (RUN_DIR, MODEL_DIR, PTH)
EXPORTABLE = (RUN_DIR, MODEL_DIR)


def _listing(words):
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def is_tflite(path):
    """Whether the file at `path` is a TFLite flatbuffer (its file identifier); OSError if unreadable."""
    with open(path, "rb") as f:
        return f.read(TFLITE_MAGIC_OFFSET + len(TFLITE_MAGIC))[TFLITE_MAGIC_OFFSET:] == TFLITE_MAGIC


def tflite_files(folder):
    """{direction: file name} that a folder's metadata.json lists (export --format tflite), {} if none."""
    return model_metadata.read(folder, REEXPORT).files or {}


def identify(path):
    """The Kind at `path` (expanded), or None for anything that is no model. A path that does
    not exist, is no regular file or folder, or cannot be read is a UserError."""
    path = Path(path).expanduser()
    if path.is_dir():
        if (path / CONFIG_FILE).is_file():
            return RUN_DIR
        if modeldir.is_model_dir(path):
            return MODEL_DIR
        if (path / SAVEDMODEL_FILE).is_file() or (path / SAVEDMODEL_TEXT_FILE).is_file():
            return SAVEDMODEL
        return TFLITE_DIR if tflite_files(path) else None
    if not path.is_file():
        return None
    try:
        if is_tflite(path):
            return TFLITE
    except OSError as error:
        raise UserError(f"cannot read model {path}: {first_line(error)}") from None
    return PTH if path.suffix.lower() in PTH_SUFFIXES else None


def directions(path, kind):
    """The directions the model at `path` translates, or None when its file decides (.tflite, .pth)."""
    if kind is RUN_DIR:
        from tfcyclegan.runs import rundir

        return rundir.directions(path)  # a distilled student translates a2b only
    if kind is SAVEDMODEL:
        return DIRECTIONS
    if kind is MODEL_DIR:
        return tuple(modeldir.directions(path))
    if kind is TFLITE_DIR:
        return tuple(tflite_files(path))
    return None


@dataclass(frozen=True)
class Accepts:
    """The kinds a command takes as its model, `role` naming that argument in messages
    ("model", "--init-generators"), with `advice` for a kind it refuses ({Kind: text},
    "{path}" standing for the path)."""

    role: str
    kinds: tuple
    advice: dict = field(default_factory=dict)

    def identify(self, path):
        """(path expanded, its Kind) when this command takes it; else one UserError naming what works."""
        path = Path(path).expanduser()
        listed = [kind for kind in self.kinds if kind.listed]
        give = _listing([kind.name for kind in listed])
        expected = f"expected {_listing([kind.expected for kind in listed])}"
        if not path.exists():
            raise UserError(f"{self.role} {path}: no such file or folder; give {give}")
        if not path.is_dir() and not path.is_file():  # a named pipe or a device would block or never end
            raise UserError(
                f"{self.role} {path} is not a regular file ({fsutil.kind_of(path.stat().st_mode)}); {expected}"
            )
        kind = identify(path)
        if kind is None:
            # A folder named like a model file (x.pth, x.tflite) is said to be one.
            what = "a folder, " if path.is_dir() and path.suffix else ""
            raise UserError(f"{path} is {what}not a model: {expected}")
        if kind not in self.kinds:
            advice = self.advice.get(kind, f"give {give}").format(path=path)
            raise UserError(f"{self.role} {path} is {kind.name}, which this command does not take; {advice}")
        return path, kind


def check_checkpoint_kind(path, kind, checkpoint):
    """--checkpoint N applies to a run directory only: a UsageError for any other kind."""
    if kind is not RUN_DIR:
        raise UsageError(f"--checkpoint {checkpoint} applies to a run directory; {path} is {kind.name}")


def _run_generators(path, wanted, checkpoint=None):
    from tfcyclegan.runs import rundir

    if "b2a" in (wanted or ()) and "b2a" not in rundir.directions(path):
        raise UserError(f"{path} is a distilled student, which translates a2b only; use --direction a2b")
    generator_g, generator_f, config, checkpoint = rundir.restore_generators(path, checkpoint)
    described = ModelMetadata.of_run(config, run_dir=str(path.resolve()), checkpoint=Path(checkpoint).name)
    generators = {"a2b": generator_g, "b2a": generator_f}
    return {d: g for d, g in generators.items() if g is not None}, described


def _model_dir_generators(path, wanted):
    generators = {d: modeldir.load_generator(path, d) for d in wanted or modeldir.directions(path)}
    return generators, model_metadata.read(path)


def _pth_generators(path, wanted):
    from tfcyclegan.models import pretrained

    generator, described = pretrained.load_source(path)
    # A .pth file holds one generator, which translates the one way it was trained.
    meta = ModelMetadata(blocks=generator.n_blocks, ngf=generator.ngf, sources={"a2b": described})
    return {"a2b": generator}, meta


# The one table of Keras generator loaders: Kind -> (path, directions wanted or None) ->
# ({direction: ResnetGenerator}, ModelMetadata). Nothing is unpickled or run from a file:
# a run is read as config.json plus a checkpoint, a .keras file in Keras' safe mode, a
# .pth through a restricted unpickler that builds tensors only.
GENERATOR_LOADERS = {RUN_DIR: _run_generators, MODEL_DIR: _model_dir_generators, PTH: _pth_generators}


def load_generators(path, accepts, wanted=None, checkpoint=None):
    """({direction: generator}, ModelMetadata, Kind) of the model at `path`, which `accepts`
    (an Accepts of kinds in KERAS_WEIGHTS) must take. `wanted` limits a model directory
    to those directions (a missing one is an error naming the one there); `checkpoint`
    picks a run directory's checkpoint by number (a UsageError for any other kind)."""
    path, kind = accepts.identify(path)
    if checkpoint is not None:
        check_checkpoint_kind(path, kind, checkpoint)
        generators, meta = _run_generators(path, wanted, checkpoint)
        return generators, meta, kind
    generators, meta = GENERATOR_LOADERS[kind](path, wanted)
    return generators, meta, kind
