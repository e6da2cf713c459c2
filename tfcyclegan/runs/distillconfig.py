"""Every option of a distillation run (`tfcyclegan distill`), saved beside it as config.json.

A DistillConfig is a TrainConfig with the teacher and the weights of the distillation
objective added, so every reader of a run directory (translate, export, evaluate,
study) reads a distilled run's config.json as it reads fit's: its student is the
run's G (generator "mobile", domain_a to domain_b), and it has no F (`one_way`).
"""

import dataclasses
import json
from pathlib import Path

from tfcyclegan.runs.config import TrainConfig
from tfcyclegan.util import fsutil

DIRECTIONS = ("a2b", "b2a")
# Options of fit a distillation does not use; kept in config.json for the readers, not printed.
UNUSED = ("lambda_identity", "lambda_cycle", "pool_size", "strategy", "simulate_devices", "worker_timeout")
TEACHER_KEY = "teacher_sha256"


@dataclasses.dataclass
class DistillConfig(TrainConfig):
    """Options of `tfcyclegan distill`: a mobile student of one direction of `teacher`.

    domain_a holds the student's inputs (the teacher's source images); domain_b, when
    given, real target images for the adversarial term. `teacher_sha256` is the
    SHA-256 of the teacher's weights (distill.weights_sha256), which a resumed run must
    find again.
    """

    domain_a: str = ""
    domain_b: str | None = None
    teacher: str = ""
    teacher_sha256: str = ""
    direction: str | None = None  # None: the teacher's only direction
    generator: str = "mobile"
    blocks: int = 9
    ngf: int = 16
    lambda_l1: float = 10.0
    lambda_feature: float = 1.0
    lambda_gan: float = 1.0

    def problems(self, name=lambda field: "--" + field.replace("_", "-")):
        wrong = super().problems(name)
        if self.direction not in DIRECTIONS:
            wrong.append(f"{name('direction')} must be a2b or b2a (got {self.direction!r})")
        if self.generator != "mobile":
            wrong.append(f"{name('generator')} of a distilled student is mobile (got {self.generator!r})")
        return wrong

    def describe(self):
        shown = [line for line in super().describe().splitlines() if line[2:].split(" ")[0] not in UNUSED]
        return "\n".join(shown)

    def non_defaults(self):
        default = DistillConfig()
        return {f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(default, f.name)}


def is_distilled(run_dir):
    """Whether run directory `run_dir` holds a distilled student (its config.json names a teacher)."""
    try:
        # Only a regular file: a named pipe would block the command for good.
        values = json.loads(fsutil.read_regular_text(Path(run_dir) / "config.json"))
    except (OSError, ValueError):
        return False
    return isinstance(values, dict) and TEACHER_KEY in values
