"""metadata.json's one schema (tfcyclegan/models/metadata.py): what writers write reads back
as written, files of earlier versions read, and a bad key is one line naming it."""

import json
from pathlib import Path

import pytest

from tfcyclegan.models import metadata
from tfcyclegan.models.metadata import ModelMetadata
from tfcyclegan.runs.config import TrainConfig
from tfcyclegan.util.errors import UserError

V1 = Path(__file__).parent / "fixtures" / "v1"


def test_a_file_reads_back_as_written_known_keys_and_others(tmp_path):
    written = {
        "format": "tflite",
        "tfcyclegan_version": "0.9",
        "domain_a": "photos",
        "domain_b": "ukiyoe",
        "image_size": 256,
        "blocks": 9,
        "ngf": 64,
        "files": {"a2b": "a2b.tflite"},
        "run_dir": "/runs/p2u",
        "checkpoint": "ckpt-40",
        "quantize": "int8",
        "parity": {"limit": "x", "a2b": {"psnr_db": 40.0}},
    }
    (tmp_path / "metadata.json").write_text(json.dumps(written))
    meta = metadata.read(tmp_path)
    assert (meta.format, meta.domain_b, meta.ngf, meta.checkpoint) == ("tflite", "ukiyoe", 64, "ckpt-40")
    assert meta.extra == {"quantize": "int8", "parity": written["parity"]}
    assert meta.listed() == {"a2b": "a2b.tflite"}
    metadata.write(tmp_path, meta)
    assert json.loads((tmp_path / "metadata.json").read_text()) == written


def test_a_model_directory_of_the_first_version_reads():
    meta = metadata.read(V1 / "model")
    assert meta.format == "keras" and meta.generators == {"a2b": "generator_g.keras", "b2a": "generator_f.keras"}
    assert meta.extra["source"] == "v1 fixture" and meta.ngf is None


def test_no_file_is_an_empty_description(tmp_path):
    assert metadata.read(tmp_path) == ModelMetadata() and ModelMetadata().to_dict() == {}


def test_a_run_is_described_by_its_config_not_its_training_options():
    config = TrainConfig(domain_a="a", domain_b="b", data_root="/data", image_size=64, blocks=3, ngf=16, lr=0.1)
    meta = ModelMetadata.of_run(config, run_dir="/r", checkpoint="ckpt-3")
    assert meta.to_dict() == {"domain_a": "a", "domain_b": "b", "data_root": "/data", "image_size": 64,
                              "generator": "resnet", "blocks": 3, "ngf": 16, "run_dir": "/r",
                              "checkpoint": "ckpt-3"}  # fmt: skip


@pytest.mark.parametrize(
    "values, problem",
    [
        ({"ngf": "x"}, '"ngf" must be an integer (got "x")'),
        ({"blocks": 1000}, '"blocks" must be <= 32 (got 1000)'),
        ({"image_size": 30}, '"image_size" must be a multiple of 4 and >= 16 (got 30)'),
        ({"format": "onnx"}, '"format" must be one of savedmodel, tflite, keras (got onnx)'),
        ({"domain_a": 3}, '"domain_a" must be a string (got 3)'),
        ({"files": ["a2b.tflite"]}, '"files" must map a2b and b2a to file names (got ["a2b.tflite"])'),
        ({"generators": {"a2b": 1}}, '"generators" must map a2b and b2a to file names (got {"a2b": 1})'),
        ({"sources": "x.pth"}, '"sources" must map a2b and b2a to their sources (got "x.pth")'),
    ],
)
def test_a_bad_key_is_one_line_naming_the_file_the_key_and_the_remedy(tmp_path, values, problem):
    (tmp_path / "metadata.json").write_text(json.dumps(values))
    with pytest.raises(UserError) as error:
        metadata.read(tmp_path, remedy="do this")
    assert str(error.value) == f"{tmp_path / 'metadata.json'}: {problem}; do this"


@pytest.mark.parametrize("text, problem", [("[1]", "is not a JSON object"), ("{oops", "cannot read")])
def test_a_file_that_is_no_json_object_is_one_line(tmp_path, text, problem):
    (tmp_path / "metadata.json").write_text(text)
    with pytest.raises(UserError, match=problem):
        metadata.read(tmp_path)
