"""What is at a path (tfcyclegan/models/identify.py): every kind told from names and first
bytes alone, one loader per kind, and each command refusing the kinds it does not take in
one line naming what works."""

import json
import shutil
from pathlib import Path

import pytest

from tfcyclegan.export import pipeline
from tfcyclegan.inference import loaders
from tfcyclegan.models import identify
from tfcyclegan.quality import evaluate
from tfcyclegan.study import server
from tfcyclegan.training import train
from tfcyclegan.util.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def paths(tmp_path):
    """One path of every kind (contents that only look the part: nothing is loaded to tell them)."""
    made = {}
    for kind, name, files in [
        (identify.RUN_DIR, "run", {"config.json": b"{}"}),
        (identify.MODEL_DIR, "model", {"generator_g.keras": b""}),
        (identify.SAVEDMODEL, "savedmodel", {"saved_model.pb": b""}),
        (identify.TFLITE_DIR, "tflite", {"metadata.json": json.dumps({"files": {"a2b": "a2b.tflite"}}).encode()}),
    ]:
        (tmp_path / name).mkdir()
        for file, content in files.items():
            (tmp_path / name / file).write_bytes(content)
        made[kind] = tmp_path / name
    made[identify.TFLITE] = tmp_path / "any name"
    made[identify.TFLITE].write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(24))
    made[identify.PTH] = tmp_path / "g.pth"
    made[identify.PTH].write_bytes(b"PK")
    return made


def test_every_kind_is_told_and_anything_else_is_none(paths, tmp_path):
    for kind, path in paths.items():
        assert identify.identify(path) is kind, path
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "empty").mkdir()
    for other in ("notes.txt", "empty", "nowhere"):
        assert identify.identify(tmp_path / other) is None


def test_each_kind_has_one_loader():
    assert set(loaders.TRANSLATOR_LOADERS) == set(identify.ANY)
    assert set(identify.GENERATOR_LOADERS) == set(identify.KERAS_WEIGHTS)


def test_each_command_states_what_it_takes():
    assert loaders.ACCEPTS.kinds == evaluate.ACCEPTS.kinds == server.ACCEPTS.kinds == identify.ANY
    assert pipeline.ACCEPTS.kinds == (identify.RUN_DIR, identify.MODEL_DIR)
    assert train.INIT_ACCEPTS.kinds == identify.KERAS_WEIGHTS


def test_a_kind_a_command_does_not_take_is_one_line_naming_what_works(paths):
    with pytest.raises(UserError) as error:
        pipeline.ACCEPTS.identify(paths[identify.PTH])
    assert str(error.value) == (
        f"model {paths[identify.PTH]} is a .pth file, which this command does not take; import it first: "
        f"tfcyclegan import {paths[identify.PTH]}, then export that"
    )
    with pytest.raises(UserError, match="--init-generators .* is a SavedModel, which this command does not take"):
        train.init_generators(paths[identify.SAVEDMODEL], None)
    plain = identify.Accepts("TEACHER", identify.KERAS_WEIGHTS)
    with pytest.raises(UserError) as error:
        plain.identify(paths[identify.TFLITE])
    assert str(error.value).endswith("give a run directory, a model directory or a .pth file")


def test_what_is_no_model_names_what_the_command_expects(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(UserError) as error:
        pipeline.ACCEPTS.identify(tmp_path / "notes.txt")
    assert str(error.value) == (
        f"{tmp_path / 'notes.txt'} is not a model: expected a run directory (config.json + checkpoints/) or a model "
        "directory (generator_g.keras)"
    )
    with pytest.raises(UserError) as error:
        pipeline.ACCEPTS.identify(tmp_path / "nowhere")
    assert (
        str(error.value)
        == f"model {tmp_path / 'nowhere'}: no such file or folder; give a run directory or a model directory"
    )


def test_the_generators_of_every_kind_with_keras_weights_load_with_their_description(tmp_path):
    run = shutil.copytree(FIXTURES / "v1" / "run", tmp_path / "run")
    generators, meta, kind = identify.load_generators(run, train.INIT_ACCEPTS)
    assert kind is identify.RUN_DIR and set(generators) == {"a2b", "b2a"}
    assert (meta.domain_a, meta.ngf, meta.blocks, meta.checkpoint) == ("demo:flat", 4, 1, "ckpt-1")
    generators, meta, kind = identify.load_generators(FIXTURES / "v1" / "model", train.INIT_ACCEPTS)
    assert kind is identify.MODEL_DIR and set(generators) == {"a2b", "b2a"} and meta.format == "keras"
    generators, meta, kind = identify.load_generators(FIXTURES / "torch" / "dropout.pth", train.INIT_ACCEPTS)
    assert kind is identify.PTH and set(generators) == {"a2b"}
    assert meta.sources["a2b"]["source"] == "dropout.pth" and meta.ngf == generators["a2b"].ngf
