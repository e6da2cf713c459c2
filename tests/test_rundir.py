"""The run directory's format (tfcyclegan/rundir.py): checkpoints name every variable by
its layer path, runs written before that still load in full, a mismatch is named by
layer path, and building a model in a mixed precision leaves the global policy alone.
The run directory's safety (lock, damaged checkpoints) is tests/test_rundir_safety.py."""

import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcyclegan.models import modeldir
from tfcyclegan.runs import rundir
from tfcyclegan.runs.config import TrainConfig
from tfcyclegan.training import train
from tfcyclegan.util.errors import UserError

V1 = Path(__file__).parent / "fixtures" / "v1"  # written by tests/fixtures/make_v1_fixtures.py


def tiny_config(**changes):
    options = dict(domain_a="demo:flat", domain_b="demo:striped", ngf=4, blocks=1, ndf=4, image_size=32,
                   load_size=32, pool_size=2, epochs=2, decay_epoch=1, steps_per_epoch=1)  # fmt: skip
    return TrainConfig(**{**options, **changes})


@pytest.fixture
def v1_run(tmp_path):
    return Path(shutil.copytree(V1 / "run", tmp_path / "run"))


def test_a_checkpoint_names_every_network_variable_by_its_layer_path(tmp_path):
    model = train.build_model(tiny_config(), steps_per_epoch=1)
    path = rundir.make_checkpoint(model).write(str(tmp_path / "ckpt"))
    keys = {key for key, _ in tf.train.list_variables(path)}
    value = "/.ATTRIBUTES/VARIABLE_VALUE"
    for name in ("conv_in:kernel", "conv_down_2:bias", "block_1:conv_2:kernel", "conv_up_1:kernel", "conv_out:bias"):
        assert f"generator_g/{name}{value}" in keys and f"generator_f/{name}{value}" in keys
    for name in ("conv_1:kernel", "conv_4:kernel", "conv_out:kernel"):
        assert f"discriminator_x/{name}{value}" in keys and f"discriminator_y/{name}{value}" in keys
    networks = {k.split("/")[0] for k in keys if k.startswith(("generator_", "discriminator_"))}
    by_network = {n: [k for k in keys if k.startswith(n + "/")] for n in networks}
    # Every variable of every network is stored under its own name, none only through Adam's list.
    for name in rundir.NETWORKS:
        assert len(by_network[name]) == len(getattr(model, name).weights), name


def test_a_run_written_before_named_checkpoints_still_translates_as_it_did(v1_run):
    generator_g, generator_f, config = rundir.load_generators(v1_run)
    probe = np.load(V1 / "probe.npy")
    assert (config.ngf, config.blocks) == (4, 1)
    np.testing.assert_allclose(generator_g(probe).numpy(), np.load(V1 / "run_a2b.npy"), atol=1e-6)
    np.testing.assert_allclose(generator_f(probe).numpy(), np.load(V1 / "run_b2a.npy"), atol=1e-6)


def test_a_run_written_before_named_checkpoints_resumes_in_full_and_saves_named(v1_run, tmp_path):
    model = train.build_model(rundir.load_config(v1_run), steps_per_epoch=1)
    found = rundir.newest_checkpoint(v1_run)
    rundir.check_model_matches(found.path, model, v1_run)
    rundir.restore_checkpoint(model, found.path)  # asserts that every value was consumed
    reader = tf.train.load_checkpoint(found.path)
    assert int(model.generator_optimizer.iterations.numpy()) == 1 == rundir.checkpoint_step(found.path)
    # Adam's moments of the one step came back (assert_consumed above placed every value).
    assert any(np.any(v.numpy() != 0) for v in model.generator_optimizer.variables[1:])
    saved = [reader.get_tensor(f"discriminator_y/{i}/.ATTRIBUTES/VARIABLE_VALUE") for i in range(10)]
    for variable, value in zip(model.discriminator_y.weights, saved, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    path = rundir.make_checkpoint(model).write(str(tmp_path / "ckpt"))
    assert "generator_g/block_1:conv_1:kernel/.ATTRIBUTES/VARIABLE_VALUE" in dict(tf.train.list_variables(path))


def test_a_model_directory_written_before_named_layers_still_loads(tmp_path):
    folder = Path(shutil.copytree(V1 / "model", tmp_path / "model"))
    probe = np.load(V1 / "probe.npy")
    for direction, expected in (("a2b", "run_a2b.npy"), ("b2a", "run_b2a.npy")):
        generator = modeldir.load_generator(folder, direction)
        np.testing.assert_allclose(generator(probe).numpy(), np.load(V1 / expected), atol=1e-6)


def test_a_config_that_builds_other_layers_is_refused_naming_the_layer_path(v1_run):
    model = train.build_model(tiny_config(blocks=2), steps_per_epoch=1)
    with pytest.raises(
        UserError, match=r"\(generator_g/16 is not there; generator_g has 16 variables there, 20 by config.json\)"
    ):
        rundir.check_model_matches(rundir.newest_checkpoint(v1_run).path, model, v1_run)
    named = train.build_model(tiny_config(ngf=8), steps_per_epoch=1)
    path = rundir.make_checkpoint(named).write(str(v1_run / "named"))
    model = train.build_model(tiny_config(), steps_per_epoch=1)
    with pytest.raises(UserError) as error:
        rundir.check_model_matches(path, model, v1_run)
    assert "(generator_g/conv_in/kernel has shape [7, 7, 3, 8] there, [7, 7, 3, 4] by config.json)" in str(error.value)
    fewer = train.build_model(tiny_config(blocks=0), steps_per_epoch=1)
    with pytest.raises(UserError, match=r"it has generator_g/block_1/conv_1/bias, which config.json does not build"):
        rundir.check_model_matches(path, fewer, v1_run)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_a_mixed_precision_model_leaves_the_global_policy_alone(precision):
    before = keras.mixed_precision.global_policy().name
    model = train.build_model(tiny_config(precision=precision), steps_per_epoch=1)
    assert keras.mixed_precision.global_policy().name == before == "float32"
    compute = precision.removeprefix("mixed_")
    for name in rundir.NETWORKS:
        network = getattr(model, name)
        convolutions = [layer for layer in network.stack if isinstance(layer, keras.layers.Conv2D)]
        assert {layer.compute_dtype for layer in convolutions[:-1]} == {compute}, name
        assert {v.dtype for v in network.weights} == {"float32"}, name
    assert model.generator_g.stack[-1].compute_dtype == "float32"  # tanh: full-range images
    assert model.discriminator_x.stack[-1].compute_dtype == "float32"  # LSGAN scores
    # A float32 model built afterwards computes in float32.
    assert train.build_model(tiny_config(), steps_per_epoch=1).generator_g.stack[1].compute_dtype == "float32"
