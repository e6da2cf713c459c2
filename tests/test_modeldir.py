"""Model directories and export metadata (tfcyclegan/models/modeldir.py): what a model file
may ask for is bounded before anything is built (only tfcyclegan's ResnetGenerator with its
own options and a weights file no larger than it; an empty or non-zip file says what it
is), weights must be finite, and bad metadata is one line naming the key."""

import json
import math
import zipfile

import numpy as np
import pytest
from helpers import assert_one_line_error, assert_says, invoke
from PIL import Image

from tfcyclegan import inference
from tfcyclegan.core.networks import ResnetGenerator
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
