"""`tfcyclegan fit` killed at random moments resumes from its last complete checkpoint.

One run, one process start per trial: each start resumes the previous trial's run
(checked: it loads the newest listed checkpoint), trains until it has saved at least
once, and is stopped after a random delay of up to one epoch, so kills land anywhere in
an epoch's training steps, samples, figures and checkpoint write. Ten SIGKILLs, then a SIGINT and
a SIGTERM (each must save, exit 0 and say how to resume), then a start that finishes.
"""

import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from helpers import default_sigint, write_noise_domains

SIGKILL_TRIALS = 10
EPOCHS, STEPS = 80, 2  # room for 12 trials that each train a few epochs on a fast machine
TIMEOUT = 300  # seconds for any one wait; generous for a loaded machine
COMMAND = [sys.executable, "-c", "from tfcyclegan_cli.main import main; main(prog_name='tfcyclegan')"]


@pytest.fixture
def run_args(tmp_path):
    write_noise_domains(tmp_path, count=3, shape=(32, 32))
    run_dir = tmp_path / "run"
    args = ["fit", "--domain-a", tmp_path / "a", "--domain-b", tmp_path / "b", "--run-dir", run_dir,
            "--epochs", EPOCHS, "--decay-epoch", 0, "--steps-per-epoch", STEPS, "--ngf", 4, "--ndf", 4,
            "--blocks", 1, "--disc-layers", 1, "--image-size", 32, "--load-size", 32, "--pool-size", 2,
            "--sample-count", 1]  # fmt: skip
    return run_dir, [str(a) for a in args]


def listed(run_dir):
    """(step of the newest listed checkpoint or 0, its save timestamps) from the manager's state file."""
    try:
        state = (run_dir / "checkpoints" / "checkpoint").read_text()
    except FileNotFoundError:
        return 0, []
    step = int(re.search(r'^model_checkpoint_path: "ckpt-(\d+)"$', state, re.M).group(1))
    return step, [float(t) for t in re.findall(r"^all_model_checkpoint_timestamps: (\S+)$", state, re.M)]


def assert_loadable(run_dir, step):
    """Every tensor of checkpoint `step` reads back, and it holds training step `step`."""
    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints" / f"ckpt-{step}"))
    for name, dtype in reader.get_variable_to_dtype_map().items():
        value = reader.get_tensor(name)
        assert not dtype.is_floating or np.all(np.isfinite(value)), name
    assert reader.get_tensor("generator_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == step


class Fit:
    """One `tfcyclegan fit` process, its output collected in a file."""

    def __init__(self, args, log_path):
        self.log_path = log_path
        self.started = time.time()  # the clock of the checkpoint timestamps
        with open(log_path, "w") as log:
            # Unbuffered, so the test sees each line as soon as it is printed.
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            preexec_fn=default_sigint)  # fmt: skip

    def output(self):
        return self.log_path.read_text(errors="replace")

    def wait_for(self, condition, what):
        deadline = time.monotonic() + TIMEOUT
        while not condition():
            if self.process.poll() is not None:
                pytest.fail(f"fit exited ({self.process.returncode}) before {what}:\n{self.output()}")
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"no {what} after {TIMEOUT}s:\n{self.output()}")
            time.sleep(0.02)

    def finish(self):
        try:
            return self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"fit did not finish within {TIMEOUT}s:\n{self.output()}")


def start_and_train(args, run_dir, log_path):
    """Start fit; check it resumed from the newest listed checkpoint; wait until it saved anew."""
    before, _ = listed(run_dir)
    fit = Fit([*COMMAND, *args], log_path)
    if before:
        line = f"resuming {run_dir} at epoch {before // STEPS + 1}, step {before}"
        fit.wait_for(lambda: line in fit.output(), f"'{line}'")
    fit.wait_for(lambda: listed(run_dir)[0] > before, "new checkpoint")
    return fit


class Delays:
    """Random delays of up to one epoch, timed as the shortest gap seen so far between two
    checkpoints of one process (a gap across a restart includes its start-up)."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.gaps = []

    def next(self, run_dir, started):
        _, stamps = listed(run_dir)
        stamps = [t for t in stamps if t >= started]
        self.gaps += [b - a for a, b in zip(stamps, stamps[1:])]
        return self.rng.uniform(0, min(self.gaps, default=1.0))


@pytest.mark.slow
def test_killed_and_interrupted_runs_resume_from_the_last_complete_checkpoint(run_args, tmp_path):
    run_dir, args = run_args
    delays = Delays(seed=0)
    history = []
    for trial in range(SIGKILL_TRIALS):
        fit = start_and_train(args, run_dir, tmp_path / f"kill{trial}.log")
        time.sleep(delays.next(run_dir, fit.started))
        seen, _ = listed(run_dir)
        fit.process.kill()
        fit.process.wait()
        after, _ = listed(run_dir)
        history.append((seen, after))
        # At most the checkpoint being written is lost: never one already listed.
        assert after >= seen, (trial, history)
        assert_loadable(run_dir, after)
    assert [a for _, a in history] == sorted({a for _, a in history}), history  # steps went forward every trial

    for name, signum in (("SIGINT", signal.SIGINT), ("SIGTERM", signal.SIGTERM)):
        fit = start_and_train(args, run_dir, tmp_path / f"{name}.log")
        time.sleep(delays.next(run_dir, fit.started))
        seen, _ = listed(run_dir)
        fit.process.send_signal(signum)
        assert fit.finish() == 0, (name, fit.output())
        saved, _ = listed(run_dir)
        assert saved >= seen
        assert (
            f"interrupted: saved {run_dir / 'checkpoints' / f'ckpt-{saved}'}; "
            f"resume with: tfcyclegan fit --run-dir {run_dir}"
        ) in fit.output().splitlines(), (name, fit.output())
        assert "Traceback" not in fit.output()
        assert_loadable(run_dir, saved)

    before, _ = listed(run_dir)
    assert before < EPOCHS * STEPS, "the trials ran the whole run; raise EPOCHS"
    fit = Fit([*COMMAND, *args], tmp_path / "final.log")
    assert fit.finish() == 0, fit.output()
    assert f"resuming {run_dir} at epoch {before // STEPS + 1}, step {before}" in fit.output()
    assert f"done: {run_dir}" in fit.output()
    assert listed(run_dir)[0] == EPOCHS * STEPS
    assert_loadable(run_dir, EPOCHS * STEPS)
