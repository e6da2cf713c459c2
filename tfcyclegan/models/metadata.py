"""metadata.json: what an export or a model directory says about the generators it holds.

One schema for its writers (tfcyclegan.export.pipeline, modeldir.save,
pretrained.import_generators) and its readers (modeldir, the loaders of
tfcyclegan.inference, publish.check_target, the export's own loader). A model is
described by this, not by a TrainConfig: pretrained generators know no training domains,
and an export knows no learning rate.

    format               savedmodel, tflite or keras (export_format.FORMATS)
    tfcyclegan_version   the version that wrote it
    domain_a, domain_b   the domains the generators were trained on, when known
    data_root            where the run found its named domains, when not the default
    image_size           their training size (evaluate and export resize to it)
    blocks, ngf          the generators' architecture
    generators           keras: direction -> .keras file (modeldir.GENERATOR_FILES)
    files                tflite: direction -> .tflite file (export_format.FILES_KEY)
    run_dir, checkpoint  where the generators were trained: the run and its checkpoint
    model_dir            or the model directory an export was made from
    sources              or, for imported generators, direction -> the .pth file's
                         name, SHA-256, size and architecture (pretrained.load_source)

Known keys are validated when read, the numbers against the bounds of `fit`'s options;
every other key (created, exported, endpoints, quantize, io, parity, pre- and
post-processing...) is kept as written in `extra`, so a file reads back as it was and
files of earlier versions (tests/fixtures/v1) still read.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from tfcyclegan.models.export_format import FILES_KEY, FORMATS
from tfcyclegan.util.errors import UserError

METADATA_FILE = "metadata.json"
GENERATORS_KEY = "generators"
REMEDY = "import or export the model again"
_TEXT = (
    "format",
    "tfcyclegan_version",
    "generator",
    "domain_a",
    "domain_b",
    "data_root",
    "run_dir",
    "checkpoint",
    "model_dir",
)
_NUMBERS = ("image_size", "blocks", "ngf")  # each also an option of `fit`, with its bounds
_LISTINGS = {"generators": GENERATORS_KEY, "files": FILES_KEY}


@dataclass(frozen=True)
class ModelMetadata:
    """The known keys of a metadata.json (None: absent) and, in `extra`, every other key."""

    format: str | None = None
    tfcyclegan_version: str | None = None
    domain_a: str | None = None
    domain_b: str | None = None
    data_root: str | None = None
    image_size: int | None = None
    generator: str | None = None  # resnet or mobile (TrainConfig.generator)
    blocks: int | None = None
    ngf: int | None = None
    generators: dict | None = None
    files: dict | None = None
    run_dir: str | None = None
    checkpoint: str | None = None
    model_dir: str | None = None
    sources: dict | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def of_run(cls, config, **provenance):
        """The description of a run's generators, from its TrainConfig."""
        return cls(domain_a=config.domain_a, domain_b=config.domain_b, data_root=config.data_root,
                   image_size=config.image_size, generator=config.generator, blocks=config.blocks, ngf=config.ngf,
                   **provenance)  # fmt: skip

    def with_extra(self, **extra):
        """This description with `extra` keys added (or replaced)."""
        return dataclasses.replace(self, extra={**self.extra, **extra})

    def to_dict(self):
        """The JSON object: known keys that are set, in schema order, then `extra`."""
        known = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**{k: v for k, v in known.items() if v is not None}, **self.extra}

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, values, source=METADATA_FILE, remedy=REMEDY):
        """Validate a decoded metadata.json; a UserError naming `source`, each bad key and `remedy`."""
        if not isinstance(values, dict):
            raise UserError(f"{source} is not a JSON object; {remedy}")
        problems = _problems(values)
        if problems:
            raise UserError(f"{source}: {'; '.join(problems)}; {remedy}")
        names = [f.name for f in dataclasses.fields(cls) if f.name != "extra"]
        return cls(
            **{name: values[name] for name in names if name in values},
            extra={k: v for k, v in values.items() if k not in names},
        )

    @classmethod
    def from_json(cls, text, source=METADATA_FILE, remedy=REMEDY):
        try:
            values = json.loads(text)
        except ValueError as error:
            raise UserError(f"cannot read {source}: {error}; {remedy}") from None
        return cls.from_dict(values, source, remedy)

    def listed(self):
        """{direction: file name} of the files the model is made of (keras and tflite), else {}."""
        return self.generators or self.files or {}


def _problems(values):
    from tfcyclegan.runs.config import value_problem

    problems = []
    for key in _TEXT:
        if values.get(key) is not None and not isinstance(values[key], str):
            problems.append(f'"{key}" must be a string (got {json.dumps(values[key])})')
    if isinstance(values.get("format"), str) and values["format"] not in FORMATS:
        problems.append(f'"format" must be one of {", ".join(FORMATS)} (got {values["format"]})')
    problems += [value_problem(key, values[key], json.dumps(key)) for key in _NUMBERS if key in values]
    if values.get("sources") is not None and not isinstance(values["sources"], dict):
        problems.append(f'"sources" must map a2b and b2a to their sources (got {json.dumps(values["sources"])})')
    for key in _LISTINGS.values():
        listing = values.get(key, {})
        if not isinstance(listing, dict) or not all(isinstance(name, str) for name in listing.values()):
            problems.append(f'"{key}" must map a2b and b2a to file names (got {json.dumps(listing)})')
    return [problem for problem in problems if problem]


def path(folder):
    return Path(folder) / METADATA_FILE


def read(folder, remedy=REMEDY):
    """The ModelMetadata of `folder`'s metadata.json (empty when there is none); unreadable
    or invalid, a UserError naming the file and ending in `remedy`."""
    file = path(folder)
    if not file.is_file():
        return ModelMetadata()
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {file}: {error}; {remedy}") from None
    return ModelMetadata.from_json(text, file, remedy)


def write(folder, metadata):
    """Write `metadata` as `folder`'s metadata.json."""
    path(folder).write_text(metadata.to_json())
