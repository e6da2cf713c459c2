"""Model directories and export metadata (tfcyclegan/models/modeldir.py): what a model file
may ask for is bounded before anything is built (only tfcyclegan's ResnetGenerator with its
own options and a weights file no larger than it; an empty or non-zip file says what it
is), weights must be finite, and bad metadata is one line naming the key."""

import json
import math
import zipfile

import h5py
import keras
import numpy as np
import pytest
from helpers import assert_one_line_error, assert_says, invoke, write_noise_domains
from PIL import Image

from tfcyclegan import inference
from tfcyclegan.core.networks import ResnetGenerator
from tfcyclegan.models import modeldir
from tfcyclegan.models.metadata import ModelMetadata
from tfcyclegan.util.errors import UserError


@pytest.mark.parametrize("key, value, message", [("n_blocks", 1_000_000, "n_blocks must be <= 32 (got 1000000)"),
                                                 ("ngf", 100_000, "ngf must be <= 256 (got 100000)"),
                                                 ("n_blocks", "6", 'n_blocks must be an integer (got "6")')])  # fmt: skip
def test_a_keras_generator_asking_for_an_absurd_network_is_refused_before_building(tmp_path, key, value, message):
    """A .keras file's architecture is read from its config.json and bounded before Keras builds it."""
    import json

    (tmp_path / "model").mkdir()
    generator = ResnetGenerator(ngf=4, n_blocks=1, name="generator_g")
    generator(np.zeros((1, 16, 16, 3), "float32"))
    generator.save(tmp_path / "g.keras")
    with (
        zipfile.ZipFile(tmp_path / "g.keras") as source,
        zipfile.ZipFile(tmp_path / "model" / "generator_g.keras", "w") as out,
    ):
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                config["config"][key] = value
                data = json.dumps(config).encode()
            out.writestr(item, data)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "in.png")
    result = invoke("translate", "--model", tmp_path / "model", tmp_path / "in.png", "--output", tmp_path / "out")
    assert_one_line_error(
        result, f"{tmp_path / 'model' / 'generator_g.keras'}: {message}; import or export the model again"
    )


@pytest.mark.parametrize("value, shown", [("x", '"x"'), (None, "null"), ([1], "[1]"), (math.inf, "Infinity")])
def test_export_metadata_with_a_bad_ngf_is_one_line_naming_the_file_and_key(tmp_path, value, shown):
    (tmp_path / "metadata.json").write_text(json.dumps({"ngf": value, "files": {"a2b": "a2b.tflite"}}))
    with pytest.raises(UserError) as error:
        inference.load_translator(tmp_path, "a2b")
    assert_says(str(error.value), f'{tmp_path / "metadata.json"}: "ngf" must be an integer (got {shown})', "re-export")


def _model_dir(tmp_path, config=None, weights=None, raw=None):
    """tmp_path/model with a generator_g.keras of a tiny generator, its config.json
    replaced by `config`, its weights file by `weights` (bytes), or the whole file by `raw`."""
    folder = tmp_path / "model"
    folder.mkdir()
    target = folder / "generator_g.keras"
    if raw is not None:
        target.write_bytes(raw)
        return folder
    generator = ResnetGenerator(ngf=4, n_blocks=1, name="generator_g")
    generator(np.zeros((1, 16, 16, 3), "float32"))
    generator.save(tmp_path / "g.keras")
    with zipfile.ZipFile(tmp_path / "g.keras") as source, zipfile.ZipFile(target, "w") as out:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json" and config is not None:
                data = json.dumps(config).encode()
            if item.filename == modeldir.WEIGHTS and weights is not None:
                data = weights
            out.writestr(item, data)
    return folder


def _translate(tmp_path, model):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "in.png")
    return invoke("translate", "--model", model, tmp_path / "in.png", "--output", tmp_path / "out")


@pytest.fixture
def nothing_built(monkeypatch):
    """Fails the test if Keras is asked to build the file."""
    calls = []
    monkeypatch.setattr(keras.saving, "load_model", lambda *args, **kwargs: calls.append(args))
    yield
    assert not calls


SEQUENTIAL = {
    "module": "keras",
    "class_name": "Sequential",
    "config": {"name": "s", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 4000]}},
        {"module": "keras.layers", "class_name": "Dense", "config": {"units": 4000}},
    ]},
    "registered_name": None,
    "build_config": {"input_shape": [None, 4000]},
}  # fmt: skip


def test_a_foreign_keras_model_is_refused_before_it_is_built(tmp_path, nothing_built):
    """A 1 KB Sequential of one 4000 x 4000 Dense layer (20000 x 20000 took 5 GB)."""
    model = _model_dir(tmp_path, config=SEQUENTIAL)
    assert_one_line_error(_translate(tmp_path, model), "generator_g.keras holds a Sequential, not a tfcyclegan "
                          "ResnetGenerator; nothing of it was built")  # fmt: skip


def test_a_generator_config_with_other_keys_is_refused(tmp_path, nothing_built):
    (tmp_path / "plain").mkdir()
    with zipfile.ZipFile(_model_dir(tmp_path / "plain") / "generator_g.keras") as archive:
        config = json.loads(archive.read("config.json"))
    config["config"]["layers"] = SEQUENTIAL["config"]["layers"]
    model = _model_dir(tmp_path, config=config)
    assert_one_line_error(_translate(tmp_path, model), "has a ResnetGenerator config with other keys than its options "
                          "(layers)")  # fmt: skip


def test_a_weights_file_larger_than_the_generator_is_refused(tmp_path, nothing_built):
    """An HDF5 dataset of 4000 x 4000 zeros stored in a few KB: Keras reads it whole before comparing shapes."""
    with h5py.File(tmp_path / "w.h5", "w") as weights:
        weights.create_dataset("layers/conv2d/vars/0", shape=(4000, 4000), dtype="f4", chunks=(1000, 1000),
                               compression="gzip", fillvalue=0)  # fmt: skip
    model = _model_dir(tmp_path, weights=(tmp_path / "w.h5").read_bytes())
    assert_one_line_error(_translate(tmp_path, model), "declares 16000000 weight values (up to 16000000 in one tensor) "
                          "where a ResnetGenerator with ngf 4 and 1 blocks has")  # fmt: skip


@pytest.mark.parametrize(
    "raw,message", [(b"", "is empty (0 bytes)"), (b"not a zip\n", "is not a .keras file (not a zip archive)")]
)
def test_an_empty_or_foreign_file_says_what_it_is(tmp_path, raw, message):
    model = _model_dir(tmp_path, raw=raw)
    assert_one_line_error(_translate(tmp_path, model), f"generator_g.keras {message}; nothing of it was built")


def test_non_finite_weights_are_named_by_translate_and_fit(tmp_path):
    generator = ResnetGenerator(ngf=4, n_blocks=1, name="generator_g")
    generator(np.zeros((1, 16, 16, 3), "float32"))
    kernel = generator.weights[0]
    kernel.assign(np.where(np.arange(kernel.shape[-1]) == 0, np.nan, kernel.numpy()))
    (tmp_path / "model").mkdir()
    modeldir.save(tmp_path / "model", {"a2b": generator}, ModelMetadata())
    message = "generator_g.keras: weight conv_in/kernel holds 147 non-finite values, so the generator computes nothing"
    assert_one_line_error(_translate(tmp_path, tmp_path / "model"), message)
    write_noise_domains(tmp_path, 2, (32, 32))
    result = invoke("fit", "--domain-a", tmp_path / "a", "--domain-b", tmp_path / "b", "--run-dir", tmp_path / "run",
                    "--init-generators", tmp_path / "model", "--epochs", 1, "--steps-per-epoch", 1, "--decay-epoch", 0,
                    "--image-size", 32, "--load-size", 32)  # fmt: skip
    assert_one_line_error(result, message)
    assert "lower --lr" not in result.output


@pytest.mark.parametrize("ngf,blocks,affine", [(4, 1, False), (1, 3, True), (8, 2, False)])
def test_parameter_count_is_the_generators(ngf, blocks, affine):
    generator = ResnetGenerator(ngf=ngf, n_blocks=blocks, affine=affine)
    generator(np.zeros((1, 16, 16, 3), "float32"))
    total, largest = modeldir.parameter_count(ngf, blocks, affine)
    assert total == generator.count_params()
    assert largest == max(int(np.prod(w.shape)) for w in generator.weights)
