"""Every option of a training run in one object, saved beside the run as config.json."""

import dataclasses
import json
import math
from pathlib import Path

from tfcyclegan.util import fsutil
from tfcyclegan.util.errors import UsageError, UserError, first_line

# "auto" is settled to one of the others before a run trains (training.train.settle_precision).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
GENERATORS = ("resnet", "mobile")  # networks.ResnetGenerator, networks.MobileResnetGenerator
HEALTH = ("on", "off")
CHOICES = {"precision": PRECISIONS, "strategy": STRATEGIES, "generator": GENERATORS, "health": HEALTH}

# Inclusive (low, high) of every number. The upper bounds are far above any useful value;
# they keep a typo or a hostile config.json / metadata.json from building a network for
# minutes or filling the machine's memory (a pool holds pool_size crops per domain).
LIMITS = {
    "epochs": (1, 100_000),
    "decay_epoch": (0, 100_000),
    "blocks": (1, 32),
    "ngf": (1, 256),
    "ndf": (1, 256),
    "disc_layers": (1, 6),
    "image_size": (16, 4096),
    "load_size": (16, 8192),
    "batch_size": (1, 1024),
    "pool_size": (0, 1000),
    "steps_per_epoch": (1, 10_000_000),
    "seed": (0, 2**32 - 1),  # what keras.utils.set_random_seed accepts
    "sample_count": (1, 64),
    "log_every": (1, 10_000_000),
    "simulate_devices": (0, 64),
    "worker_timeout": (0, 7 * 24 * 3600),
    "keep_every": (0, 100_000),
    "warmup_discriminators": (0, 10_000_000),
    "beta1": (0.0, 1.0),
    "lambda_gan": (0.0, math.inf),
    "lambda_identity": (0.0, math.inf),
    "lambda_cycle": (0.0, math.inf),
    "lambda_l1": (0.0, math.inf),
    "lambda_feature": (0.0, math.inf),
}
TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


@dataclasses.dataclass
class TrainConfig:
    """Options of `tfcyclegan fit`; defaults follow the paper and the official code."""

    domain_a: str = "demo:flat"
    domain_b: str = "demo:striped"
    data_root: str | None = None
    run_dir: str | None = None
    epochs: int = 200
    decay_epoch: int = 100
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_gan: float = 1.0
    lambda_identity: float = 5.0
    lambda_cycle: float = 10.0
    generator: str = "resnet"
    blocks: int = 6
    ngf: int = 64
    ndf: int = 64
    disc_layers: int = 3
    image_size: int = 256
    load_size: int = 286
    batch_size: int = 1
    pool_size: int = 50
    steps_per_epoch: int | None = None
    seed: int = 0
    flip: bool = True
    sample_count: int = 4
    log_every: int = 10
    precision: str = "float32"
    strategy: str = "auto"
    simulate_devices: int = 0
    worker_timeout: int = 300
    health: str = "on"
    keep_every: int = 0
    warmup_discriminators: int | None = None

    def problems(self, name=lambda field: "--" + field.replace("_", "-")):
        """What is wrong with the options, one string each; `name(field)` spells an option in them
        (--ngf on the command line, "ngf" in a config.json)."""
        kinds = {f.name: f.type for f in dataclasses.fields(self)}
        wrong = [value_problem(f, getattr(self, f), name(f), kinds) for f in kinds]
        wrong = [p for p in wrong if p]
        if wrong:  # the checks below compare values, which needs the right types
            return wrong
        if not self.decay_epoch <= self.epochs:
            wrong.append(
                f"{name('decay_epoch')} must be between 0 and {name('epochs')}={self.epochs} (got {self.decay_epoch})"
            )
        if self.load_size < self.image_size:
            wrong.append(
                f"{name('load_size')} must be >= {name('image_size')}={self.image_size} (got {self.load_size})"
            )
        return wrong

    def validate(self):
        """Raise UsageError (exit code 2) for options no run can use."""
        problems = self.problems()
        if problems:
            raise UsageError("; ".join(problems))
        return self

    def non_defaults(self):
        """Names of the options that differ from the defaults."""
        default = TrainConfig()
        return {f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(default, f.name)}

    def describe(self):
        """Every option, one per line, non-defaults marked with '*' (as the official code prints)."""
        changed = self.non_defaults()
        width = max(len(f.name) for f in dataclasses.fields(self))
        lines = [
            f"{'*' if f.name in changed else ' '} {f.name:{width}s} {getattr(self, f.name)}"
            for f in dataclasses.fields(self)
        ]
        return "\n".join(["options (* = not default):", *lines])

    def to_dict(self):
        return dataclasses.asdict(self)

    def save(self, path, **extra):
        """Write the options as JSON, with `extra` keys beside them (which `load` ignores)."""
        Path(path).write_text(json.dumps({**self.to_dict(), **extra}, indent=2) + "\n")

    @classmethod
    def load(cls, path):
        """The config saved at `path`, held to the same types and bounds as the command line's
        options (`problems`); a key missing, mistyped or out of range is a UserError naming it."""
        try:
            values = json.loads(fsutil.read_regular_text(path))
        except (OSError, ValueError) as error:
            raise UserError(f"cannot read {path}: {first_line(error)}; is this a tfcyclegan run directory?") from None
        if not isinstance(values, dict):
            problems = ["not a JSON object"]
        else:
            fields = dataclasses.fields(cls)
            config = cls(**{**ADDED_LATER, **{f.name: values[f.name] for f in fields if f.name in values}})
            problems = config.problems(name=lambda field: json.dumps(field))
            missing = [json.dumps(f.name) for f in fields if f.name not in values and f.name not in ADDED_LATER]
            if len(missing) > 3:
                problems.append(f"{', '.join(missing[:3])} and {len(missing) - 3} more keys are missing")
            elif missing:
                problems.append(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
        if problems:
            raise UserError(
                f"{path} is not a valid tfcyclegan config ({'; '.join(problems)}); "
                "give a run directory written by `tfcyclegan fit` (its config.json lists every option)"
            )
        return config


FIELDS = dataclasses.fields(TrainConfig)
# Options added after runs were first saved, with the value a config.json without them means.
ADDED_LATER = {"generator": "resnet", "health": "on", "keep_every": 0, "warmup_discriminators": 0}
KINDS = {f.name: f.type for f in FIELDS}


def value_problem(field, value, name=None, kinds=None):
    """What is wrong with one value of option `field` (None if nothing): its type, a
    non-finite number, its range (LIMITS) or its choices. `name` spells the option;
    `kinds` maps fields to types (default: TrainConfig's)."""
    name = name or field
    kind = (kinds or KINDS)[field]
    optional = type(None) in getattr(kind, "__args__", ())
    if optional:
        kind = next(k for k in kind.__args__ if k is not type(None))
    if value is None:
        return None if optional else f"{name} must be {TYPE_NAMES[kind]} (got null)"
    # JSON true/false are Python bools, which are ints too: a number must not be a bool.
    if kind is bool:
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float) if kind is float else kind) and not isinstance(value, bool)
    if not ok:
        return f"{name} must be {TYPE_NAMES[kind]} (got {json.dumps(value)})"
    if kind is float and not math.isfinite(value):
        return f"{name} must be a finite number (got {value})"
    if field in CHOICES and value not in CHOICES[field]:
        return f"{name} must be one of {', '.join(CHOICES[field])} (got {value})"
    if kind not in (int, float):
        return None
    if field == "lr" and value <= 0:
        return f"{name} must be > 0 (got {value})"
    if field == "beta1" and value >= 1:
        return f"{name} must be < 1 (got {value})"
    if field == "image_size" and (value < 16 or value % 4):
        return f"{name} must be a multiple of 4 and >= 16 (got {value})"
    low, high = LIMITS.get(field, (-math.inf, math.inf))
    if value < low:
        return f"{name} must be >= {low} (got {value})"
    if value > high:
        return f"{name} must be <= {high} (got {value})"
    return None
