"""Builders shared by several test modules (pytest puts tests/ on sys.path)."""

import signal

import keras
import numpy as np
import tensorflow as tf
from click.testing import CliRunner
from PIL import Image
from tfcyclegan_cli.main import main

from tfcyclegan.runs import rundir
from tfcyclegan.runs.config import TrainConfig
from tfcyclegan.runs.layout import RunLayout
from tfcyclegan.training import train


def default_sigint():
    """A Popen preexec_fn: SIGINT back to its default in the child. A shell running the
    tests in the background starts them with SIGINT ignored, and Python keeps an
    inherited ignore, so a Ctrl-C sent to the child would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def photo_like(h, w, seed=0):
    """A photo-like test image in [-1, 1]: smooth colour gradients, a flat disc (an edge) and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.stack([np.sin(xx / 37 + c + seed) * np.cos(yy / 53 - c) for c in range(3)], axis=-1) * 0.7
    image[(xx - w / 3) ** 2 + (yy - h / 2) ** 2 < (min(h, w) / 4) ** 2] = [0.6, -0.4, 0.1]
    return np.clip(image + rng.normal(0, 0.03, image.shape), -1, 1).astype(np.float32)


def invoke(*args, env=None):
    """Run the `tfcyclegan` command in-process; arguments may be paths or numbers."""
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def one_line_error(result, code=1):
    """The message of a failed command's single `error: ...` line (exit `code`, no traceback)."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0][len("error: ") :]


def assert_one_line_error(result, fragment, code=1):
    """A failed command printed one `error: ...` line, and it contains `fragment`."""
    line = "error: " + one_line_error(result, code)
    assert fragment in line, line


def write_untrained_run(root, image_size=32):
    """A run dir for the domain folders root/A and root/B: tiny networks (ngf 8, 1 block),
    untrained, trained at `image_size`, saved as `tfcyclegan fit` saves them; returns root/run."""
    config = TrainConfig(domain_a=str(root / "A"), domain_b=str(root / "B"), ngf=8, blocks=1, ndf=8,
                         image_size=image_size, load_size=image_size, epochs=1, decay_epoch=0)  # fmt: skip
    keras.utils.set_random_seed(0)
    model = train.build_model(config, steps_per_epoch=1)
    run = root / "run"
    tf.train.CheckpointManager(rundir.make_checkpoint(model), RunLayout(run).checkpoints, 1).save()
    config.save(RunLayout(run).config)
    return run


def write_noise_domains(root, count, size):
    """root/a and root/b, each holding `count` random size x size PNGs (seeded)."""
    rng = np.random.default_rng(0)
    for domain in ("a", "b"):
        (root / domain).mkdir()
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(root / domain / f"{i}.png")


def write_noise_run(root, count, shape=(36, 36)):
    """root/A and root/B with `count` seeded random images of `shape` (h, w) each, and an
    untrained tiny run for them (write_untrained_run); returns root/run."""
    rng = np.random.default_rng(0)
    for domain in "AB":
        (root / domain).mkdir()
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(root / domain / f"{i}.png")
    return write_untrained_run(root)
