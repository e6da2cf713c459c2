"""`tfcyclegan translate` and `tfcyclegan export` end to end: results, and one clear
line (exit 1, no traceback) for each kind of bad input."""

import pytest
import tensorflow as tf
from helpers import assert_one_line_error, invoke, one_line_error, write_noise_run
from PIL import Image


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny run (ngf 8, 1 block) whose domains are folders of random images."""
    return write_noise_run(tmp_path_factory.mktemp("cli"), 4)


@pytest.fixture(scope="module")
def images(run_dir):
    return run_dir.parent / "A"


def test_translate_a_folder_from_a_run_dir(run_dir, images, tmp_path):
    result = invoke(
        "translate",
        "--model",
        run_dir,
        "--direction",
        "b2a",
        images,
        "--output",
        tmp_path / "out",
        "--format",
        "jpg",
        "--batch-size",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"translated 4 images into {tmp_path / 'out'}\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    assert Image.open(tmp_path / "out" / "0.jpg").size == (36, 36)


def test_export_then_translate_with_the_tflite_file(run_dir, images, tmp_path):
    result = invoke("export", run_dir, "--format", "tflite", "--output", tmp_path / "tflite")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"exported TFLite (none) to {tmp_path / 'tflite'} (")
    assert "a2b: max abs error" in result.stderr and "ok" in result.stderr
    result = invoke(
        "translate",
        "--model",
        tmp_path / "tflite" / "a2b.tflite",
        "--direction",
        "a2b",
        images / "0.png",
        "--output",
        tmp_path / "out",
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "0.png").is_file()


def test_wrong_model_path(images, tmp_path):
    result = invoke("translate", "--model", tmp_path / "nowhere", "--direction", "a2b", images, "--output", tmp_path)
    assert one_line_error(result) == (
        f"model {tmp_path / 'nowhere'}: no such file or folder; give a run directory, a model directory, "
        "a SavedModel, a .tflite or a .pth file"
    )


def test_a_file_that_is_not_a_model(images, tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    result = invoke("translate", "--model", tmp_path / "notes.txt", "--direction", "a2b", images, "--output", tmp_path)
    assert one_line_error(result) == (
        f"{tmp_path / 'notes.txt'} is not a model: expected a run directory (config.json + checkpoints/), "
        "a model directory (generator_g.keras), a SavedModel from `tfcyclegan export`, a .tflite or a PyTorch "
        ".pth file"
    )


def test_a_tflite_of_another_model(images, tmp_path):
    module = tf.Module()
    module.kernel = tf.Variable(tf.ones((3, 3, 3, 1)))
    module.f = tf.function(
        lambda x: tf.nn.conv2d(x, module.kernel, 1, "SAME"),
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)],
    )
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.f})
    (tmp_path / "other.tflite").write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm")).convert())
    result = invoke(
        "translate", "--model", tmp_path / "other.tflite", "--direction", "a2b", images, "--output", tmp_path
    )
    assert one_line_error(result) == (
        f"{tmp_path / 'other.tflite'} is not a tfcyclegan translator: it maps float32 [-1, -1, -1, 3] to "
        "float32 [-1, -1, -1, 1], not float32 [batch, height, width, 3] images; "
        "export a run with `tfcyclegan export RUN_DIR --format tflite`"
    )


def test_an_unreadable_image(run_dir, tmp_path):
    (tmp_path / "page.jpg").write_text("<html>404 not found</html>")
    result = invoke(
        "translate", "--model", run_dir, "--direction", "a2b", tmp_path / "page.jpg", "--output", tmp_path / "out"
    )
    assert one_line_error(result) == (
        "none of the 1 inputs was translated (1 could not be read; listed above); nothing was written"
    )
    assert f"skipped {tmp_path / 'page.jpg'}: not an image (text/HTML?)" in result.stderr.splitlines()


def test_one_unreadable_image_among_good_ones(run_dir, images, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.png").write_bytes(b"")
    Image.open(images / "0.png").save(tmp_path / "in" / "good.png")
    result = invoke(
        "translate", "--model", run_dir, "--direction", "a2b", tmp_path / "in", "--output", tmp_path / "out"
    )
    assert one_line_error(result) == (
        f"1 of 2 inputs were skipped (1 could not be read; listed above); the other 1 were written to {tmp_path / 'out'}"
    )
    assert f"skipped {tmp_path / 'in' / 'empty.png'}: file is empty" in result.stderr.splitlines()
    assert (tmp_path / "out" / "good.png").is_file()


def test_export_errors(run_dir, tmp_path):
    assert_one_line_error(
        invoke("export", run_dir, "--quantize", "int8"), "--quantize applies to --format tflite only", code=2
    )
    assert_one_line_error(
        invoke("export", run_dir, *["--calibration-dir", tmp_path] * 3), "give --calibration-dir once", code=2
    )
    result = invoke("export", run_dir, "--format", "onnx")
    assert result.exit_code == 2
    assert one_line_error(invoke("export", tmp_path, "--output", tmp_path / "x")) == (
        f"{tmp_path} is not a model: expected a run directory (config.json + checkpoints/) or a model directory "
        "(generator_g.keras)"
    )
