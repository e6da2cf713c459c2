"""Every option of a training run in one object, saved beside the run as config.json."""

import dataclasses
import json
from pathlib import Path

from tfcyclegan.errors import UsageError, UserError

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")


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

    def validate(self):
        """Raise UsageError (exit code 2) for options no run can use."""
        problems = []
        if self.epochs < 1:
            problems.append(f"--epochs must be >= 1 (got {self.epochs})")
        if not 0 <= self.decay_epoch <= self.epochs:
            problems.append(f"--decay-epoch must be between 0 and --epochs={self.epochs} (got {self.decay_epoch})")
        if self.image_size < 16 or self.image_size % 4:
            problems.append(f"--image-size must be a multiple of 4 and >= 16 (got {self.image_size})")
        if self.load_size < self.image_size:
            problems.append(f"--load-size must be >= --image-size={self.image_size} (got {self.load_size})")
        for name in ("batch_size", "blocks", "ngf", "ndf", "disc_layers", "sample_count", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(self, name)})")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            problems.append(f"--steps-per-epoch must be >= 1 (got {self.steps_per_epoch})")
        if self.pool_size < 0:
            problems.append(f"--pool-size must be >= 0 (got {self.pool_size})")
        if self.precision not in PRECISIONS:
            problems.append(f"--precision must be one of {', '.join(PRECISIONS)} (got {self.precision})")
        if self.strategy not in STRATEGIES:
            problems.append(f"--strategy must be one of {', '.join(STRATEGIES)} (got {self.strategy})")
        if self.worker_timeout < 0:
            problems.append(f"--worker-timeout must be >= 0 seconds (got {self.worker_timeout})")
        if self.simulate_devices < 0:
            problems.append(f"--simulate-devices must be >= 0 (got {self.simulate_devices})")
        if self.lr <= 0:
            problems.append(f"--lr must be > 0 (got {self.lr})")
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
        lines = [
            f"{'*' if f.name in changed else ' '} {f.name:16s} {getattr(self, f.name)}"
            for f in dataclasses.fields(self)
        ]
        return "\n".join(["options (* = not default):", *lines])

    def to_dict(self):
        return dataclasses.asdict(self)

    def save(self, path):
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path):
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise UserError(f"cannot read {path}: {error}; is this a tfcyclegan run directory?") from None
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
