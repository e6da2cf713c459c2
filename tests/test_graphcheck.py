"""A SavedModel's ops are checked before it is loaded: one whose signature writes and
reads files is refused in one line naming the op, by translate, evaluate and study, and
runs only with --trust-model; tfcyclegan's own exports pass."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_one_line_error, invoke, write_noise_run
from PIL import Image

from tfcyclegan.models import graphcheck
from tfcyclegan.util.errors import UserError


def _hostile_savedmodel(folder, marker):
    """A SavedModel whose a2b and b2a copy /etc/hostname to `marker` whenever they translate."""

    class Hostile(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
        def translate(self, x):
            tf.io.write_file(str(marker), tf.io.read_file("/etc/hostname"))
            return {"output": x}

    module = Hostile()
    tf.saved_model.save(module, str(folder), signatures={"a2b": module.translate, "b2a": module.translate})
    (folder / "metadata.json").write_text(json.dumps({"format": "savedmodel", "domain_a": "A", "domain_b": "B"}))
    return folder


@pytest.fixture
def hostile(tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(images / "0.png")
    marker = tmp_path / "copied_hostname"
    return _hostile_savedmodel(tmp_path / "model", marker), images, marker


def test_translate_refuses_a_savedmodel_that_writes_files(hostile, tmp_path):
    model, images, marker = hostile
    result = invoke("translate", "--model", model, "--direction", "a2b", images, "-o", tmp_path / "out")
    assert_one_line_error(result, "would run the op ReadFile (reads a file) in function __inference_translate_")
    assert "pass --trust-model to run it anyway" in result.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_evaluate_and_study_refuse_it_too(hostile, tmp_path):
    model, images, marker = hostile
    result = invoke("evaluate", model, "--domain-a", images, "--domain-b", images)
    assert_one_line_error(result, "would run the op ReadFile")
    result = invoke("study", model, "--domain-a", images, "--domain-b", images, "--study-dir", tmp_path / "st")
    assert_one_line_error(result, "would run the op ReadFile")
    assert not marker.exists()


def test_trust_model_runs_it(hostile, tmp_path):
    model, images, marker = hostile
    result = invoke("translate", "--model", model, "--direction", "a2b", "--trust-model", images, "-o", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert marker.read_bytes() == open("/etc/hostname", "rb").read()


def test_an_export_of_tfcyclegan_passes_and_the_saver_is_no_exception_elsewhere(tmp_path):
    """tfcyclegan export's SavedModel passes; a copy whose a2b function calls SaveV2, which
    only the format's own saver may hold, is refused."""
    run = write_noise_run(tmp_path, 2)
    assert invoke("export", run, "-o", tmp_path / "sm").exit_code == 0
    graphcheck.check_savedmodel(tmp_path / "sm")

    class Saving(tf.Module):
        def __init__(self):
            self.v = tf.Variable(1.0)

        @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
        def translate(self, x):
            tf.raw_ops.SaveV2(prefix=str(tmp_path / "dropped"), tensor_names=["v"], shape_and_slices=[""],
                              tensors=[self.v.read_value()])  # fmt: skip
            return {"output": x * self.v}

    module = Saving()
    tf.saved_model.save(module, str(tmp_path / "saving"), signatures={"a2b": module.translate})
    with pytest.raises(UserError, match=r"would run the op SaveV2 \(writes checkpoint files\) in function"):
        graphcheck.check_savedmodel(tmp_path / "saving")


def test_a_named_pipe_as_saved_model_pb_is_refused_not_read(tmp_path):
    """TensorFlow's parser reads saved_model.pb first when it exists: a named pipe would block it."""
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pbtxt").write_text("")
    os.mkfifo(tmp_path / "sm" / "saved_model.pb")
    with pytest.raises(UserError, match=r"saved_model.pb is not a regular file \(a named pipe\)"):
        graphcheck.check_savedmodel(tmp_path / "sm")
