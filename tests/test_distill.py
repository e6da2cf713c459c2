"""Distillation (core/distill.py, training/distill.py, `tfcyclegan distill`): the objective
against numpy, the student learning the teacher, exact resume, the run directory's
readers, and every bad input of issue #22 as one line."""

import json
import shutil
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_one_line_error, invoke, write_noise_run

from tfcyclegan.core import distill as objective
from tfcyclegan.core.networks import MobileResnetGenerator, ResnetGenerator
from tfcyclegan.inference import load_translator
from tfcyclegan.runs import rundir
from tfcyclegan.runs.distillconfig import DistillConfig
from tfcyclegan.runs.layout import RunLayout
from tfcyclegan.training import callbacks
from tfcyclegan.training import distill as distilling

REPO_FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """An untrained tiny run (ngf 8, 1 block) on 36x36 noise images in root/A and root/B."""
    return write_noise_run(tmp_path_factory.mktemp("teacher"), 6)


def tiny(teacher, run_dir, **overrides):
    values = dict(
        teacher=str(teacher),
        direction="a2b",
        domain_a=str(teacher.parent / "A"),
        run_dir=str(run_dir),
        ngf=4,
        blocks=2,
        image_size=32,
        load_size=36,
        epochs=2,
        decay_epoch=1,
        steps_per_epoch=3,
        sample_count=2,
        log_every=1,
        lr=2e-3,
    )
    values.update(overrides)
    return DistillConfig(**values)


def checkpoint_state(run_dir):
    reader = tf.train.load_checkpoint(str(RunLayout(run_dir).checkpoints))
    names = reader.get_variable_to_dtype_map()
    return {k: reader.get_tensor(k) for k, dtype in names.items() if dtype.is_numeric and "save_counter" not in k}


def test_the_objective_is_gan_compressions_against_numpy():
    student, teacher = MobileResnetGenerator(ngf=2, n_blocks=3), ResnetGenerator(ngf=4, n_blocks=2)
    model = objective.Distiller(student, teacher, image_size=16)
    model.compile(lambda_l1=10.0, lambda_feature=1.0)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    teacher_y, teacher_features = model.teach(x)
    terms, student_y = model.compute_losses(x, teacher_y, teacher_features)
    # Features after the downsampling (layer 11) and after blocks round(f * n) for f = 1/3, 2/3, 1.
    assert model.student_points == [11, 12, 13, 14] and model.teacher_points == [11, 12, 12, 13]

    def stack(net, x, upto):
        for layer in net.stack[: upto + 1]:
            x = layer(x, training=False)
        return np.asarray(x, np.float64)

    expected_l1 = np.abs(np.asarray(student(x), np.float64) - np.asarray(teacher(x), np.float64)).mean()
    expected_feature = 0.0
    for mapping, s, t in zip(model.mappings, model.student_points, model.teacher_points):
        kernel, bias = (np.asarray(w, np.float64) for w in mapping.weights)
        mapped = stack(student, x, s) @ kernel[0, 0] + bias  # a 1x1 convolution
        expected_feature += ((mapped - stack(teacher, x, t)) ** 2).mean()
    np.testing.assert_allclose(float(terms["loss_L1"]), expected_l1, rtol=1e-5)
    np.testing.assert_allclose(float(terms["loss_feature"]), expected_feature, rtol=1e-4)
    np.testing.assert_allclose(float(terms["loss_S"]), 10 * expected_l1 + expected_feature, rtol=1e-4)
    assert student_y.shape == x.shape and "loss_GAN" not in terms


def test_the_student_moves_toward_the_teacher():
    keras.utils.set_random_seed(0)
    model = objective.Distiller(
        MobileResnetGenerator(ngf=4, n_blocks=2), ResnetGenerator(ngf=8, n_blocks=1), image_size=32
    )
    model.compile(keras.optimizers.Adam(2e-3, beta_1=0.5))
    x = tf.constant(np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype("float32"))

    def distance():
        return float(np.abs(np.asarray(model.student(x), np.float64) - np.asarray(model.teacher(x), np.float64)).mean())

    teacher_before, first = [w.numpy() for w in model.teacher.weights], distance()
    step = tf.function(model.train_step)
    features = [float(step((x, tf.zeros_like(x)))["loss_feature"]) for _ in range(60)]
    assert distance() < 0.6 * first  # measured: 0.50x
    assert features[-1] < 0.8 * features[0]
    for before, after in zip(teacher_before, model.teacher.weights):  # the teacher is frozen
        np.testing.assert_array_equal(before, after.numpy())


def test_a_run_logs_each_epochs_losses(teacher, tmp_path):
    run = tmp_path / "run"
    distilling.distill(tiny(teacher, run, epochs=1, decay_epoch=1, steps_per_epoch=10), verbose=0)
    distilling.distill(tiny(teacher, run, epochs=3, decay_epoch=3), explicit={"epochs", "decay_epoch"}, verbose=0)
    rows = (run / "losses.csv").read_text().splitlines()
    assert rows[0] == "epoch,loss_S,loss_L1,loss_feature" and len(rows) == 4
    assert float(rows[-1].split(",")[2]) < float(rows[1].split(",")[2])  # L1 to the teacher fell


@pytest.fixture(scope="module")
def straight(teacher, tmp_path_factory):
    run = tmp_path_factory.mktemp("straight") / "run"
    distilling.distill(tiny(teacher, run, domain_b=str(teacher.parent / "B")), verbose=0)
    return run


def test_a_run_writes_every_artifact_and_reads_as_a_one_way_run(teacher, straight, tmp_path):
    saved = json.loads((straight / "config.json").read_text())
    generator_g, _, _ = rundir.load_generators(teacher)
    assert saved["teacher_sha256"] == distilling.weights_sha256(generator_g) and saved["generator"] == "mobile"
    assert saved["direction"] == "a2b" and saved["teacher"] == str(teacher.resolve())
    assert sorted(p.name for p in (straight / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    grid = tf.io.decode_png(tf.io.read_file(str(straight / "samples" / "epoch_002.png")))
    assert grid.shape == (2 * 32 + 4, 3 * 32 + 2 * 4, 3)  # input | teacher | student
    assert (straight / "losses.png").stat().st_size > 0
    assert (straight / "losses.csv").read_text().splitlines()[0] == "epoch,loss_S,loss_L1,loss_feature,loss_GAN,loss_D"
    translator = load_translator(straight, None)  # one way: no --direction needed
    assert translator.direction == "a2b"
    assert translator(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 32, 32, 3)
    result = invoke("translate", "--model", straight, "--direction", "b2a", teacher.parent / "A", "-o", tmp_path / "o")
    assert_one_line_error(result, "translates a2b only")
    result = invoke("export", straight, "--format", "tflite", "--output", tmp_path / "tflite")
    assert result.exit_code == 0, result.output
    metadata = json.loads((tmp_path / "tflite" / "metadata.json").read_text())
    assert metadata["files"] == {"a2b": "a2b.tflite"} and metadata["generator"] == "mobile"


def test_resume_after_an_interrupt_mid_epoch_matches_an_uninterrupted_run(teacher, straight, tmp_path, monkeypatch):
    resumed = tmp_path / "run"

    class Signal(callbacks.Throughput):
        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, logs)
            if int(self.model.student_optimizer.iterations.numpy()) == 4:
                signal.raise_signal(signal.SIGTERM)

    with monkeypatch.context() as patch:
        patch.setattr(callbacks, "Throughput", Signal)
        distilling.distill(tiny(teacher, resumed, domain_b=str(teacher.parent / "B")), verbose=0)
    assert tf.train.latest_checkpoint(resumed / "checkpoints").endswith("ckpt-4")
    distilling.distill(tiny(teacher, resumed, domain_b=str(teacher.parent / "B")), verbose=0)
    a, b = checkpoint_state(straight), checkpoint_state(resumed)
    assert a.keys() == b.keys() and any(key.startswith("discriminator_y/") for key in a)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert (straight / "losses.csv").read_text() == (resumed / "losses.csv").read_text()


def test_more_epochs_extend_a_finished_run(teacher, straight, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    result = invoke("distill", teacher, "--direction", "a2b", "--domain-a", teacher.parent / "A", "--run-dir", run,
                    "--epochs", 3)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 -> 3 epochs" in result.stderr
    assert tf.train.latest_checkpoint(run / "checkpoints").endswith("ckpt-9")


def test_bad_teachers_are_one_line_each(teacher, tmp_path):
    source = teacher.parent / "A"
    common = ("--domain-a", source, "--run-dir", tmp_path / "run", "--image-size", 32, "--load-size", 32)
    result = invoke("distill", tmp_path / "missing", *common)
    assert_one_line_error(result, "no such file or folder")
    (tmp_path / "model.tflite").write_bytes(b"\0\0\0\0TFL3" + bytes(64))
    assert_one_line_error(invoke("distill", tmp_path / "model.tflite", *common), "keeps no Keras layers")
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"x")
    assert_one_line_error(invoke("distill", tmp_path / "sm", *common), "is a SavedModel, which this command")
    (tmp_path / "bad.pth").write_bytes(b"not a torch file")
    assert_one_line_error(invoke("distill", tmp_path / "bad.pth", *common), "bad.pth")
    assert_one_line_error(invoke("distill", teacher, *common), "translates both ways", code=2)
    pth = REPO_FIXTURES / "torch" / "official_zip.pth"
    assert_one_line_error(invoke("distill", pth, *common, "--direction", "b2a"), "has no b2a generator")
    assert_one_line_error(invoke("distill", teacher, *common, "--direction", "a2b", "--ngf", 0), "--ngf", code=2)
    assert not (tmp_path / "run").exists()  # nothing was written by any of them


def test_resume_refuses_another_teacher_or_student_and_survives_ctrl_c_while_the_teacher_loads(
    teacher, straight, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    other = REPO_FIXTURES / "torch" / "official_zip.pth"
    common = ("--direction", "a2b", "--domain-a", teacher.parent / "A", "--run-dir", run)
    result = invoke("distill", other, *common)
    config_sha = json.loads((run / "config.json").read_text())["teacher_sha256"]
    assert_one_line_error(result, f"config.json has {config_sha}")
    assert_one_line_error(invoke("distill", teacher, *common, "--ngf", 8), "--ngf: run has 4, given 8")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(distilling, "load_teacher", interrupted)
    result = invoke("distill", teacher, *common, "--epochs", 3)
    assert result.exit_code == 130 and "Traceback" not in result.output
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == before
    result = invoke("distill", teacher, *common)  # still usable: finished, says so
    assert result.exit_code == 0 and "already finished all 2 epochs" in result.output
