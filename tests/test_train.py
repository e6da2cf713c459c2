"""train.fit end to end on tiny models: artifacts, exact resume, interruption, config checks."""

import csv
import dataclasses
import json
import os
import random
import shutil
import signal
import threading
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_config, write_noise_domains
from PIL import Image

from tfcyclegan import export
from tfcyclegan.core.model import LOSS_NAMES
from tfcyclegan.runs import rundir
from tfcyclegan.runs.config import TrainConfig
from tfcyclegan.runs.layout import RunLayout
from tfcyclegan.training import callbacks, train
from tfcyclegan.util.errors import UserError


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("domains")
    write_noise_domains(root, (6, 4), shape=(40, 40), file_name="img {}:x.png")
    return root


def tiny(folders, run_dir, **overrides):
    """tiny_config for domains folders/a and folders/b: two epochs of three steps, decaying from epoch 1."""
    options = dict(epochs=2, decay_epoch=1, load_size=36, pool_size=3, steps_per_epoch=3, sample_count=2, log_every=1)
    return tiny_config(domain_a=folders / "a", domain_b=folders / "b", run_dir=run_dir, **{**options, **overrides})


def full_state(run_dir):
    """Every variable of the newest checkpoint, by name."""
    reader = tf.train.load_checkpoint(str(RunLayout(run_dir).checkpoints))
    names = reader.get_variable_to_dtype_map()
    return {k: reader.get_tensor(k) for k, dtype in names.items() if dtype.is_numeric and "save_counter" not in k}


def loss_rows(run_dir):
    with open(run_dir / "losses.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def signal_at(step, ruin=False):
    """A callback that sends SIGTERM (SIGINT may be ignored under a background shell) to
    this process at the end of training step `step`, first turning a weight of G to NaN
    when `ruin`."""

    class Signal(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.generator_optimizer.iterations.numpy() == step:
                if ruin:
                    weights = self.model.generator_g.trainable_variables[0]
                    weights.assign(tf.fill(weights.shape, float("nan")))
                os.kill(os.getpid(), signal.SIGTERM)

    return Signal()


def test_fit_writes_every_artifact(folders, tmp_path):
    run_dir = tmp_path / "run"
    train.fit(tiny(folders, run_dir), verbose=0)
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["ngf"] == 4 and saved["domain_a"] == str(folders / "a")
    assert tf.train.latest_checkpoint(run_dir / "checkpoints").endswith("ckpt-6")
    with open(run_dir / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and set(LOSS_NAMES) <= set(rows[0])
    assert (run_dir / "losses.png").stat().st_size > 0
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    grid = np.asarray(Image.open(run_dir / "samples" / "epoch_001.png"))
    assert grid.shape == (2 * 32 + 4, 4 * 32 + 3 * 4, 3)  # 2 rows; real A | G(A) | real B | F(B)
    tags = set()
    for event_file in (run_dir / "logs").iterdir():
        for record in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags |= {v.tag for v in record.summary.value}
    assert set(LOSS_NAMES) | {"learning_rate"} <= tags
    assert any("real|translated|reconstructed" in t for t in tags)


@pytest.fixture(scope="module")
def straight(folders, tmp_path_factory):
    """An uninterrupted 2-epoch run that resumed runs must reproduce."""
    run_dir = tmp_path_factory.mktemp("straight")
    train.fit(tiny(folders, run_dir), verbose=0)
    return run_dir


def test_resume_after_an_epoch_matches_an_uninterrupted_run(folders, straight, tmp_path):
    resumed = tmp_path / "resumed"

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):  # after the checkpoint saver's
            raise KeyboardInterrupt

    train.fit(tiny(folders, resumed), verbose=0, callbacks=[StopAfterFirstEpoch()])
    assert tf.train.latest_checkpoint(resumed / "checkpoints").endswith("ckpt-3")
    train.fit(tiny(folders, resumed), verbose=0)

    a, b = full_state(straight), full_state(resumed)
    assert a.keys() == b.keys()
    for key in a:  # weights, Adam moments, step counters and both pools
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_interrupt_mid_epoch_saves_and_resume_finishes_the_same_batches(folders, straight, tmp_path):
    resumed = tmp_path / "resumed"

    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.generator_optimizer.iterations.numpy() == 4:
                raise KeyboardInterrupt

    train.fit(tiny(folders, resumed), verbose=0, callbacks=[Interrupt()])
    assert tf.train.latest_checkpoint(resumed / "checkpoints").endswith("ckpt-4")
    train.fit(tiny(folders, resumed), verbose=0)
    a, b = full_state(straight), full_state(resumed)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)
    # Epoch 2 was trained in two parts (step 4, then 5-6): its row is the mean over all three.
    for want, got in zip(loss_rows(straight), loss_rows(resumed), strict=True):
        assert want.keys() == got.keys()
        np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-5)


def test_fit_leaves_the_callers_config_as_it_was(folders, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default run directory, runs/a2b, lands here
    config = dataclasses.replace(tiny(folders, "", steps_per_epoch=None, epochs=1, decay_epoch=0, ngf=8), run_dir=None)
    given = dataclasses.replace(config)
    assert train.fit(config, verbose=0) == Path("runs/a2b")
    assert config == given
    saved = rundir.load_config("runs/a2b")
    assert (saved.run_dir, saved.steps_per_epoch) == ("runs/a2b", 6)
    # Resumed with more epochs: the run is rescheduled (its decay epoch moves to 1).
    longer = dataclasses.replace(config, epochs=2)
    train.fit(longer, explicit={"epochs"}, verbose=0)
    assert longer == dataclasses.replace(given, epochs=2)
    assert rundir.load_config("runs/a2b").decay_epoch == 1
    # A new run started from a model directory takes its ngf (4); the caller's stays 8.
    export.export("runs/a2b", "keras", output=tmp_path / "model", log=lambda _: None)
    fresh = dataclasses.replace(config, run_dir=str(tmp_path / "fresh"), ngf=4)
    given_fresh = dataclasses.replace(fresh)
    train.fit(fresh, verbose=0, init_from=tmp_path / "model")
    assert fresh == given_fresh
    assert rundir.load_config(tmp_path / "fresh").ngf == 8


def test_fit_runs_on_another_thread_and_leaves_the_signal_handlers_alone(folders, tmp_path):
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    outcome = {}

    def work():
        try:
            outcome["run"] = train.fit(tiny(folders, tmp_path / "run", epochs=1, decay_epoch=0), verbose=0)
        except Exception as error:  # shown by the assertion below
            outcome["error"] = error

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert outcome == {"run": tmp_path / "run"}
    assert tf.train.latest_checkpoint(tmp_path / "run" / "checkpoints").endswith("ckpt-3")
    assert {signum: signal.getsignal(signum) for signum in handlers} == handlers


def test_fit_leaves_the_callers_random_state_alone(folders, tmp_path):
    random.seed(7)
    np.random.seed(7)
    expected = (random.random(), np.random.random())
    random.seed(7)
    np.random.seed(7)
    train.fit(tiny(folders, tmp_path / "run", epochs=1, decay_epoch=0), verbose=0)
    assert (random.random(), np.random.random()) == expected


def test_resume_with_different_options_says_what_differs(folders, tmp_path):
    run_dir = tmp_path / "run"
    train.fit(tiny(folders, run_dir, epochs=1, decay_epoch=0), verbose=0)
    with pytest.raises(UserError, match="--ngf: run has 4, given 8"):
        train.fit(tiny(folders, run_dir, epochs=1, decay_epoch=0, ngf=8), explicit={"ngf"}, verbose=0)


def test_finished_run_is_not_trained_again(folders, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train.fit(tiny(folders, run_dir, epochs=1, decay_epoch=0), verbose=0)
    train.fit(tiny(folders, run_dir, epochs=1, decay_epoch=0), verbose=0)
    assert "already finished" in capsys.readouterr().out


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(folders, tmp_path):
    run_dir = tmp_path / "run"
    good = {}

    class RuinSecondEpoch(keras.callbacks.Callback):
        # Epoch 1 (steps 1-3) trains and is saved; then G's weights turn NaN, as after a blow-up.
        def on_train_batch_begin(self, batch, logs=None):
            if self.model.generator_optimizer.iterations.numpy() == 3 and not good:
                good.update(full_state(run_dir))
                weights = self.model.generator_g.trainable_variables[0]
                weights.assign(tf.fill(weights.shape, float("nan")))

    with pytest.raises(UserError, match="training diverged: .* at step .*lower --lr"):
        train.fit(tiny(folders, run_dir), verbose=0, callbacks=[RuinSecondEpoch()])
    assert tf.train.latest_checkpoint(run_dir / "checkpoints").endswith("ckpt-3")
    kept = full_state(run_dir)
    assert good and kept.keys() == good.keys()
    for key in good:
        np.testing.assert_array_equal(kept[key], good[key], err_msg=key)
        assert np.all(np.isfinite(kept[key])), key


def test_a_run_that_diverges_from_the_start_saves_nothing(folders, tmp_path):
    # lr so large the weights blow up in the first epoch.
    config = tiny(folders, tmp_path / "diverge", lr=1e30, lambda_cycle=1e30)
    with pytest.raises(UserError, match="training diverged: .* at step .*lower --lr"):
        train.fit(config, verbose=0)
    assert tf.train.latest_checkpoint(tmp_path / "diverge" / "checkpoints") is None


def test_load_generators_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="not a tfcyclegan run directory"):
        rundir.load_generators(tmp_path)
    TrainConfig().save(tmp_path / "config.json")
    with pytest.raises(UserError, match="no checkpoint yet"):
        rundir.load_generators(tmp_path)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_with_float32_variables_and_loads_in_float32(folders, tmp_path, precision):
    run_dir = tmp_path / "run"
    train.fit(tiny(folders, run_dir, epochs=1, decay_epoch=0, precision=precision), verbose=0)
    with open(run_dir / "losses.csv") as f:
        row = next(csv.DictReader(f))
    assert all(np.isfinite(float(row[name])) for name in LOSS_NAMES)
    reader = tf.train.load_checkpoint(str(RunLayout(run_dir).checkpoints))
    dtypes = reader.get_variable_to_dtype_map()
    assert {d for d in dtypes.values() if d.is_floating} == {tf.float32}  # no half-precision variable saved
    g, _, _ = rundir.load_generators(run_dir)  # a float32 model
    assert g.compute_dtype == "float32" and g(np.zeros((1, 32, 32, 3), "float32")).dtype == tf.float32
    if precision == "mixed_bfloat16":
        # The export path writes float32 graphs whatever the run trained in.
        result = export.export(run_dir, "savedmodel", output=tmp_path / "exported", log=lambda message: None)
        saved = tf.train.load_checkpoint(str(result.path / "variables" / "variables")).get_variable_to_dtype_map()
        assert {d for d in saved.values() if d.is_floating} == {tf.float32}
        x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
        loaded = tf.saved_model.load(str(result.path))
        y = loaded.a2b(x)
        # A bfloat16 graph would be off by ~1e-2.
        assert y.dtype == tf.float32 and np.abs(y.numpy() - g(x).numpy()).max() < 1e-5


def test_load_generators_restores_the_trained_weights(folders, straight):
    """The generators a run dir hands to translate/export/evaluate are the trained ones."""
    g, f, _ = rundir.load_generators(straight)
    config = TrainConfig.load(RunLayout(straight).config)
    model = train.build_model(config, steps_per_epoch=3)
    rundir.make_checkpoint(model).restore(tf.train.latest_checkpoint(RunLayout(straight).checkpoints)).assert_consumed()
    for trained, loaded in zip(model.generator_g.weights + model.generator_f.weights, g.weights + f.weights):
        np.testing.assert_array_equal(loaded.numpy(), trained.numpy())


def test_extending_a_run_recomputes_the_schedule_and_may_change_precision(folders, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train.fit(tiny(folders, run_dir), verbose=0)  # 2 epochs of 3 steps, decay from epoch 1
    rates = {}

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            # Keras 3 evaluates the schedule at the optimizer's step: the rate this step runs at.
            optimizer = self.model.generator_optimizer
            rates[int(optimizer.iterations.numpy())] = float(optimizer.learning_rate)

    capsys.readouterr()
    # Checkpoints hold float32 variables: an extension may train in another precision, both ways.
    for epochs, precision in ((3, "mixed_bfloat16"), (4, "float32")):
        config = tiny(folders, run_dir, epochs=epochs, precision=precision)
        train.fit(config, explicit={"epochs", "precision"}, verbose=0, callbacks=[Record()])
        notes = capsys.readouterr().err  # notes on stderr (tfcyclegan.util.report)
        assert (
            f"extending {run_dir} from {epochs - 1} to {epochs} epochs; learning rate decays linearly from epoch "
            f"{epochs - 1} to 0 at epoch {epochs}"
        ) in notes.splitlines()
        assert f"resuming {run_dir} at epoch {epochs}, step {3 * (epochs - 1)}" in notes
        saved = json.loads((run_dir / "config.json").read_text())
        assert (saved["epochs"], saved["decay_epoch"], saved["precision"]) == (epochs, epochs - 1, precision)
    # LinearDecay's formula in numpy for the steps of both extensions (3 steps per epoch).
    step, epochs = np.arange(6, 12), np.repeat([3, 4], 3)
    decay_start, last_step = 3 * (epochs - 1), 3 * epochs - 1
    expected = 2e-4 * (1 - np.clip((step - decay_start) / (last_step - decay_start), 0, 1))
    np.testing.assert_allclose([rates[s] for s in step], expected, rtol=1e-6)
    assert rates[8] == 0.0 and rates[11] == 0.0  # the last step of each extension runs at exactly 0
    assert tf.train.latest_checkpoint(run_dir / "checkpoints").endswith("ckpt-12")
    with pytest.raises(UserError, match=r"--epochs 3: .* has already trained 12 steps, into epoch 4; give --epochs 4"):
        train.fit(tiny(folders, run_dir, epochs=3, decay_epoch=0), explicit={"epochs", "decay_epoch"}, verbose=0)


def test_steps_per_epoch_is_saved_and_kept_when_images_change(folders, tmp_path, capsys):
    domains = tmp_path / "domains"
    for name in ("a", "b"):
        (domains / name).mkdir(parents=True)
        for image in sorted((folders / name).iterdir())[:2]:
            shutil.copy(image, domains / name)
    run_dir = tmp_path / "run"
    train.fit(tiny(domains, run_dir, epochs=1, decay_epoch=0, steps_per_epoch=None), verbose=0)
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["steps_per_epoch"] == 2 and saved["images"] == {"A": 2, "B": 2}
    shutil.copy(sorted((folders / "a").iterdir())[2], domains / "a")  # 3 images would make 3 steps
    capsys.readouterr()
    train.fit(tiny(domains, run_dir, epochs=2, decay_epoch=0, steps_per_epoch=None), explicit={"epochs"}, verbose=0)
    notes = [line for line in capsys.readouterr().err.splitlines() if "steps per epoch" in line]
    assert notes == [
        f"note: the domains now hold 3 (A) and 2 (B) training images, 2 and 2 when {run_dir} last trained; "
        "it keeps its 2 steps per epoch"
    ]
    assert tf.train.latest_checkpoint(run_dir / "checkpoints").endswith("ckpt-4")
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["steps_per_epoch"] == 2 and saved["images"] == {"A": 3, "B": 2}


def test_a_signal_in_an_epochs_last_batch_keeps_its_outputs_and_nan_weights_are_never_saved(
    folders, tmp_path, monkeypatch, capsys
):
    run_dir = tmp_path / "run"
    saved = []
    save = callbacks.save_checkpoint

    def record(manager, step):
        saved.append(step)
        return save(manager, step)

    monkeypatch.setattr(callbacks, "save_checkpoint", record)
    train.fit(tiny(folders, run_dir), verbose=0, callbacks=[signal_at(3)])  # the last step of epoch 1
    assert f"interrupted: saved {run_dir / 'checkpoints' / 'ckpt-3'}" in capsys.readouterr().out
    assert saved == [3]  # the epoch's checkpoint, not saved a second time for the interrupt
    assert [row["epoch"] for row in loss_rows(run_dir)] == [1]
    assert (run_dir / "samples" / "epoch_001.png").exists()
    tags = set()
    for event_file in (run_dir / "logs").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags |= {(v.tag, event.step) for v in event.summary.value}
    assert ("epoch/loss_G", 1) in tags

    # G's weights turn NaN in step 4 and a signal arrives before any loss shows it.
    with pytest.raises(UserError, match="training diverged: the weights are not finite at step 4; the last good "):
        train.fit(tiny(folders, run_dir), verbose=0, callbacks=[signal_at(4, ruin=True)])
    assert saved == [3] and tf.train.latest_checkpoint(run_dir / "checkpoints").endswith("ckpt-3")


def adam_and_weights(model):
    """The networks' weights and each Adam's variables (inside a LossScaleOptimizer or not)."""
    networks = (model.generator_g, model.generator_f, model.discriminator_x, model.discriminator_y)
    adams = [getattr(getattr(model, name), "inner_optimizer", getattr(model, name)) for name in rundir.OPTIMIZERS]
    return [v for network in networks for v in network.weights] + [v for adam in adams for v in adam.variables]


def test_checkpoints_restore_across_the_loss_scaled_layout_of_mixed_float16(tmp_path):
    """mixed_float16 checkpoints Adam inside a LossScaleOptimizer; float32 runs checkpoint
    Adam itself. Either restores into the other, every weight and Adam moment intact."""
    config = tiny_config(epochs=2, decay_epoch=1)
    source = train.build_model(config, steps_per_epoch=3)
    for variable in source.generator_optimizer.variables:
        variable.assign(tf.fill(variable.shape, tf.constant(7, variable.dtype)))
    path = rundir.make_checkpoint(source).save(str(tmp_path / "float32" / "ckpt"))
    for precision in ("mixed_float16", "float32"):
        config.precision = precision
        target = train.build_model(config, steps_per_epoch=3)
        rundir.restore_checkpoint(target, path)
        assert rundir.checkpoint_step(path) == int(target.generator_optimizer.iterations.numpy()) == 7
        for want, got in zip(adam_and_weights(source), adam_and_weights(target), strict=True):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=got.path)
        path = rundir.make_checkpoint(target).save(str(tmp_path / precision / "ckpt"))


def test_discriminator_warm_up_freezes_the_generators_and_resumes_exactly_in_the_middle(folders, tmp_path, monkeypatch):
    # Generators to fine-tune: those of a trained tiny run (--init-generators takes a run directory).
    source = tmp_path / "source"
    train.fit(tiny(folders, source, epochs=1, decay_epoch=1), verbose=0)
    g, _, _ = rundir.load_generators(source)

    def config(run_dir):
        return tiny(folders, run_dir, epochs=1, decay_epoch=1, warmup_discriminators=4)

    straight = tmp_path / "straight"
    train.fit(config(straight), explicit={"warmup_discriminators"}, init_from=source, verbose=0)

    # Interrupted after warm-up step 2 of 4: a signal seen there, as StopOnSignal sees SIGTERM.
    resumed = tmp_path / "resumed"
    models = []
    warmed = train._warmed

    def recording(model):
        models.append(model)
        return warmed(model)

    class StopAtStep2(callbacks.StopOnSignal):
        @property
        def received(self):
            return self.signalled or int(models[0].discriminator_x_optimizer.iterations) == 2

        @received.setter
        def received(self, value):
            self.signalled = value

    with monkeypatch.context() as patch:
        patch.setattr(train, "_warmed", recording)
        patch.setattr(callbacks, "StopOnSignal", StopAtStep2)
        train.fit(config(resumed), explicit={"warmup_discriminators"}, init_from=source, verbose=0)
    state = full_state(resumed)
    assert state["generator_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == 0
    assert state["discriminator_x_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == 2
    np.testing.assert_array_equal(  # the generators stayed frozen
        state["generator_g/conv_in:kernel/.ATTRIBUTES/VARIABLE_VALUE"], g.get_weights()[0]
    )
    train.fit(config(resumed), verbose=0)

    a, b = full_state(straight), full_state(resumed)
    assert a.keys() == b.keys()
    assert a["discriminator_x_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"] == 4 + 3
    for key in a:  # weights, Adam moments, step counters and both pools
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)


# A run directory's config.json is the run's, checkpoint or not, and names its folders
# absolute (issue #25 items 10 and 12). `_fit` is replaced: these check what would be trained.

TINY = ("--ngf", 4, "--ndf", 4, "--blocks", 1, "--disc-layers", 1, "--image-size", 16, "--load-size", 16,
        "--epochs", 2, "--decay-epoch", 1, "--pool-size", 2)  # fmt: skip


def planned(monkeypatch):
    """The _Plans `fit` hands to training, which is not run."""
    plans = []
    monkeypatch.setattr(train, "_fit", lambda plan, *rest: plans.append(plan) or plan.run_dir)
    return plans


def save_checkpoint(run):
    """A checkpoint at step 0 of the run's own networks, as an interrupted first epoch leaves."""
    model = train.build_model(rundir.load_config(run), steps_per_epoch=1)
    tf.train.CheckpointManager(rundir.make_checkpoint(model), RunLayout(run).checkpoints, 1).save()


def image_folders(root, count):
    rng = np.random.default_rng(count)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def test_a_run_killed_before_its_first_checkpoint_resumes_its_own_config(folders, tmp_path, monkeypatch):
    from helpers import assert_one_line_error, invoke

    plans = planned(monkeypatch)
    run = tmp_path / "k1"
    first = invoke("fit", "--domain-a", folders / "a", "--domain-b", folders / "b", "--run-dir", run, *TINY)
    assert first.exit_code == 0, first.output
    assert not rundir.has_checkpoint(run)  # as if killed before its first checkpoint
    saved = RunLayout(run).config.read_text()
    again = invoke("fit", "--run-dir", run)  # what the interrupted message suggests
    assert again.exit_code == 0, again.output
    assert f"note: {run} has no checkpoint yet; training it from the start with its config.json" in again.stderr
    assert plans[-1].config == plans[0].config and plans[-1].config.ngf == 4
    assert RunLayout(run).config.read_text() == saved
    assert_one_line_error(invoke("fit", "--run-dir", run, "--ngf", 8), "(--ngf: run has 4, given 8)")


def test_a_resume_from_another_folder_trains_on_the_run_s_own_images(tmp_path, monkeypatch):
    from helpers import assert_one_line_error, invoke

    plans = planned(monkeypatch)
    project, other = (
        image_folders(tmp_path / "project" / "data", 3).parent,
        image_folders(tmp_path / "other" / "data", 5).parent,
    )
    monkeypatch.chdir(project)
    assert invoke("fit", "--domain-a", "data/a", "--domain-b", "data/b", "--run-dir", "runs/rs", *TINY).exit_code == 0
    saved = json.loads(RunLayout(project / "runs/rs").config.read_text())
    folder = {side: str((project / "data" / side).resolve()) for side in "ab"}
    assert (saved["domain_a"], saved["domain_b"]) == (folder["a"], folder["b"])
    assert (saved["domains"], saved["images"]) == ({"A": folder["a"], "B": folder["b"]}, {"A": 3, "B": 3})
    save_checkpoint(project / "runs/rs")
    monkeypatch.chdir(other)
    result = invoke("fit", "--run-dir", "../project/runs/rs")
    assert result.exit_code == 0, result.output
    assert {os.path.dirname(f) for f in plans[-1].files_a} == {folder["a"]} and len(plans[-1].files_b) == 3
    assert_one_line_error(
        invoke("fit", "--run-dir", "../project/runs/rs", "--domain-a", "data/a"),
        f"(--domain-a: run has '{folder['a']}', given '{(other / 'data' / 'a').resolve()}')",
    )


def test_a_named_domain_under_another_data_root_is_refused(tmp_path, monkeypatch):
    from helpers import assert_one_line_error, invoke

    plans = planned(monkeypatch)
    for root in ("first", "second"):  # two complete copies of horse2zebra, offline
        for split in ("trainA", "trainB", "testA", "testB"):
            image_folders(tmp_path / "split", 2)
            shutil.move(tmp_path / "split" / "a", tmp_path / root / "horse2zebra" / split)
            shutil.rmtree(tmp_path / "split")
    run = tmp_path / "run"
    env = {"TFCYCLEGAN_DATA": str(tmp_path / "first")}
    assert (
        invoke("fit", "--domain-a", "horses", "--domain-b", "zebras", "--run-dir", run, *TINY, env=env).exit_code == 0
    )
    assert json.loads(RunLayout(run).config.read_text())["domain_a"] == "horses"
    save_checkpoint(run)
    assert invoke("fit", "--run-dir", run, env=env).exit_code == 0
    assert_one_line_error(
        invoke("fit", "--run-dir", run, env={"TFCYCLEGAN_DATA": str(tmp_path / "second")}),
        f"{run} trained on domain A images in {tmp_path / 'first' / 'horse2zebra'}, but its domain 'horses' resolves "
        f"to {tmp_path / 'second' / 'horse2zebra'} here",
    )
    assert len(plans) == 2
    # A relative --data-root is saved absolute, and the same --data-root given again is no change.
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "other"
    assert invoke("fit", "--domain-a", "horses", "--domain-b", "zebras", "--data-root", "first", "--run-dir", other,
                  *TINY).exit_code == 0  # fmt: skip
    assert json.loads(RunLayout(other).config.read_text())["data_root"] == str(tmp_path / "first")
    save_checkpoint(other)
    assert invoke("fit", "--run-dir", other, "--data-root", "first").exit_code == 0
    assert len(plans) == 4


def test_an_old_config_with_relative_folders_resumes_on_the_images_of_its_own_folder(tmp_path, monkeypatch):
    from helpers import invoke

    plans = planned(monkeypatch)
    project = image_folders(tmp_path / "project" / "data", 3).parent
    image_folders(tmp_path / "other" / "data", 5)
    monkeypatch.chdir(project)
    assert invoke("fit", "--domain-a", "data/a", "--domain-b", "data/b", "--run-dir", "runs/rs", *TINY).exit_code == 0
    config = RunLayout(project / "runs/rs").config
    old = {key: value for key, value in json.loads(config.read_text()).items() if key != "domains"}
    config.write_text(json.dumps({**old, "domain_a": "data/a", "domain_b": "data/b", "run_dir": "runs/rs"}))
    save_checkpoint(project / "runs/rs")
    own = str((project / "data" / "a").resolve())
    for where, run_dir in ((project, "runs/rs"), (tmp_path / "other", "../project/runs/rs")):
        monkeypatch.chdir(where)
        result = invoke("fit", "--run-dir", run_dir)
        assert result.exit_code == 0, result.output
        assert {os.path.dirname(f) for f in plans[-1].files_a} == {own}
        assert json.loads(config.read_text())["domain_a"] == own  # saved absolute from now on
        config.write_text(json.dumps({**old, "domain_a": "data/a", "domain_b": "data/b", "run_dir": "runs/rs"}))


def test_bfloat16_on_a_cpu_without_it_says_so_and_auto_falls_back_to_float32(folders, tmp_path, capsys):
    # On an AMD EPYC (Zen 3, no avx512_bf16, no AMX) a mixed_bfloat16 step took 7x float32's time, unannounced.
    zen3 = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx2 fma\n"
    amx = "processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: fpu avx2 avx512_bf16 amx_bf16\n"
    config = tiny(folders, tmp_path, precision="mixed_bfloat16")
    train.settle_precision(config, cpuinfo=zen3, gpu_capabilities=[])
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: this CPU (AMD EPYC 7B13) has neither avx512_bf16 nor amx_bf16")
    assert config.precision == "mixed_bfloat16"
    train.settle_precision(config, cpuinfo=amx, gpu_capabilities=[])
    assert capsys.readouterr().err == ""
    for cpuinfo, chosen in ((zen3, "float32"), (amx, "mixed_bfloat16")):
        config = tiny(folders, tmp_path, precision="auto")
        train.settle_precision(config, cpuinfo=cpuinfo, gpu_capabilities=[])
        assert config.precision == chosen
        assert capsys.readouterr().err.startswith(f"--precision auto: {chosen} (")


def test_precision_auto_trains_and_saves_what_it_chose(folders, tmp_path):
    run_dir = tmp_path / "run"
    train.fit(tiny(folders, run_dir, epochs=1, decay_epoch=0, precision="auto"), verbose=0)
    expected, _ = train.cpu.choose_precision(train.cpu.read_cpuinfo())
    assert json.loads((run_dir / "config.json").read_text())["precision"] == expected


def test_fit_with_mobile_generators_trains_resumes_exactly_translates_and_exports(folders, tmp_path, monkeypatch):
    from tfcyclegan.core.networks import MobileResnetGenerator

    straight_run, resumed = tmp_path / "straight", tmp_path / "resumed"
    train.fit(tiny(folders, straight_run, generator="mobile"), verbose=0)
    save = callbacks.CheckpointSaver.on_epoch_end

    def stop_after_first_epoch(self, epoch, logs=None):
        save(self, epoch, logs)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(callbacks.CheckpointSaver, "on_epoch_end", stop_after_first_epoch)
        train.fit(tiny(folders, resumed, generator="mobile"), verbose=0)
    train.fit(tiny(folders, resumed), verbose=0)  # config.json's generator wins on resume
    a, b = full_state(straight_run), full_state(resumed)
    assert a.keys() == b.keys() and any("depthwise_1" in key for key in a)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)

    generator_g, generator_f, config = rundir.load_generators(resumed)
    assert isinstance(generator_g, MobileResnetGenerator) and config.generator == "mobile"
    result = export.export(resumed, "keras", output=tmp_path / "keras")
    assert set(result.parity) == {"a2b", "b2a"}
    with pytest.raises(UserError, match="--generator: run has 'mobile', given 'resnet'"):
        train.fit(tiny(folders, resumed, generator="resnet", epochs=3), explicit={"generator"}, verbose=0)


def test_a_config_json_from_before_generator_existed_loads_as_resnet(tmp_path):
    TrainConfig().save(tmp_path / "config.json")
    values = json.loads((tmp_path / "config.json").read_text())
    del values["generator"]
    (tmp_path / "config.json").write_text(json.dumps(values))
    assert TrainConfig.load(tmp_path / "config.json").generator == "resnet"
