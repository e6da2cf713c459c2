"""SavedModel and TFLite exports of a tiny run: parity with Keras at any size, a fresh
process reload without tfcyclegan, metadata, and all-or-nothing writing."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_says, photo_like, write_untrained_run
from PIL import Image

from tfcyclegan import export, inference
from tfcyclegan.export import tflite
from tfcyclegan.util.errors import UserError

SIZES = [(64, 64), (100, 100), (97, 131), (427, 640)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny run (ngf 8, 1 block) whose domains are two folders of synthetic images."""
    root = tmp_path_factory.mktemp("export")
    for domain, offset in (("A", 0), ("B", 100)):
        (root / domain).mkdir()
        for i in range(8):
            image = ((photo_like(40, 48, offset + i) + 1) * 127.5).astype(np.uint8)
            Image.fromarray(image).save(root / domain / f"{i}.png")
    return write_untrained_run(root)


@pytest.fixture(scope="module")
def exports(run_dir):
    """Every export kind of the run, written once: {"savedmodel" | quantize mode: path}."""
    out = run_dir.parent / "saved_models"
    paths = {"savedmodel": export.export(run_dir, "savedmodel", output=out / "savedmodel", log=print).path}
    for quantize in export.QUANTIZE:
        paths[quantize] = export.export(run_dir, "tflite", output=out / quantize, quantize=quantize, log=print).path
    return paths


@pytest.fixture(scope="module")
def translators(run_dir, exports):
    kinds = {"keras": run_dir, **exports}
    return {(kind, d): inference.load_translator(path, d) for kind, path in kinds.items() for d in inference.DIRECTIONS}


# Agreement with the Keras generator. Measured worst case on these images and this
# model (at 427x640): SavedModel 0 (the same graph); TFLite float32 2.1e-6 (6.9e-5 while
# instance norm summed over H * W at once, which TFLite's MEAN does in one float32
# pass); float16 77.4 dB, dynamic 42.8 dB, int8 37.8 dB.
MAX_ABS = {"savedmodel": 1e-5, "none": 2e-5}
MIN_PSNR = {"float16": 70.0, "dynamic": 38.0, "int8": 34.0}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("direction", inference.DIRECTIONS)
def test_every_kind_keeps_the_size_and_agrees_with_keras(translators, size, direction):
    x = np.stack([photo_like(*size, seed) for seed in (1, 2)])
    expected = translators["keras", direction](x)
    assert expected.shape == x.shape
    for kind in ("savedmodel", *export.QUANTIZE):
        got = translators[kind, direction](x)
        assert got.shape == x.shape, kind
        if kind in MAX_ABS:
            assert np.abs(got - expected).max() <= MAX_ABS[kind], kind
        else:
            assert export.psnr(expected, got) >= MIN_PSNR[kind], kind


def real_photos(folder, size):
    """The first two photos of `folder`, resized to `size` (h, w), in [-1, 1]."""
    files = sorted(folder.iterdir())[:2]
    return np.stack(
        [
            np.asarray(Image.open(f).convert("RGB").resize(size[::-1], Image.LANCZOS), np.float32) / 127.5 - 1
            for f in files
        ]
    )


@pytest.mark.parametrize("size", [(64, 64), (427, 640)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_tflite_float32_agrees_with_keras_on_photos_at_any_size(shared_datasets, translators, size):
    for direction, split in (("a2b", "testA"), ("b2a", "testB")):
        x = real_photos(shared_datasets / "horse2zebra" / split, size)
        expected = translators["keras", direction](x)
        assert np.abs(translators["none", direction](x) - expected).max() <= MAX_ABS["none"], direction


def test_savedmodel_endpoints_take_any_size_themselves(exports, translators):
    """The endpoints pad and crop in-graph: no caller-side padding needed."""
    loaded = tf.saved_model.load(str(exports["savedmodel"]))
    x = photo_like(97, 131, 3)[None]
    np.testing.assert_allclose(loaded.a2b(x).numpy(), translators["keras", "a2b"](x), atol=1e-5)
    u = ((x + 1) * 127.5).round().astype(np.uint8)
    got = loaded.b2a_uint8(u).numpy()
    expected = np.round((translators["keras", "b2a"](u / 127.5 - 1) + 1) * 127.5)
    assert got.dtype == np.uint8 and np.abs(got - expected).max() <= 1


FRESH = """
import sys
import numpy as np
import tensorflow as tf

model = tf.saved_model.load(sys.argv[1])
x = np.random.default_rng(0).uniform(-1, 1, (2, 37, 53, 3)).astype(np.float32)
for d in ("a2b", "b2a"):
    y = getattr(model, d)(x)
    assert y.shape == x.shape and y.dtype == tf.float32, y
    y = model.signatures[d](images=tf.constant(x))["output_0"]
    assert y.shape == x.shape, y
    u = getattr(model, d + "_uint8")(tf.zeros((1, 40, 45, 3), tf.uint8))
    assert u.shape == (1, 40, 45, 3) and u.dtype == tf.uint8, u
np.save(sys.argv[2], model.a2b(x).numpy())
assert not any(m.split(".")[0] == "tfcyclegan" for m in sys.modules), "tfcyclegan was imported"
print("ok")
"""


def test_savedmodel_reloads_in_a_fresh_process_without_tfcyclegan(exports, translators, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", FRESH, str(exports["savedmodel"]), str(tmp_path / "y.npy")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
    x = np.random.default_rng(0).uniform(-1, 1, (2, 37, 53, 3)).astype(np.float32)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), translators["keras", "a2b"](x), atol=1e-5)


def test_metadata_describes_the_export(exports, run_dir):
    meta = json.loads((exports["savedmodel"] / "metadata.json").read_text())
    assert meta["format"] == "savedmodel" and set(meta["endpoints"]) == {"a2b", "b2a", "a2b_uint8", "b2a_uint8"}
    assert (meta["image_size"], meta["blocks"], meta["ngf"]) == (32, 1, 8)
    assert meta["domain_a"].endswith("A") and meta["tfcyclegan_version"]
    assert meta["parity"]["a2b"]["max_abs_error"] <= export.PARITY["savedmodel"].max_abs
    # Checked at the training size, on an odd crop, and at a photo's size.
    by_size = json.loads((exports["none"] / "metadata.json").read_text())["parity"]["b2a"]["max_abs_error_by_size"]
    assert sorted(by_size) == ["29x31", "32x32", "427x640"] and max(by_size.values()) <= MAX_ABS["none"]
    meta = json.loads((exports["int8"] / "metadata.json").read_text())
    assert meta["format"] == "tflite" and meta["quantize"] == "int8"
    assert meta["files"] == {"a2b": "a2b.tflite", "b2a": "b2a.tflite"}
    assert sorted(p.name for p in exports["int8"].iterdir()) == ["a2b.tflite", "b2a.tflite", "metadata.json"]
    assert meta["parity"]["b2a"]["psnr_db"] >= export.PARITY["int8"].min_psnr


def test_tflite_direction_comes_from_the_file(exports, tmp_path):
    with pytest.raises(UserError, match="translates a2b, not b2a; pass --direction a2b"):
        inference.load_translator(exports["none"] / "a2b.tflite", "b2a")
    renamed = tmp_path / "model.tflite"
    renamed.write_bytes((exports["none"] / "b2a.tflite").read_bytes())
    assert inference.load_translator(renamed, "b2a").direction == "b2a"


def test_savedmodel_without_our_endpoints_is_refused(tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda x: x * 2, input_signature=[tf.TensorSpec((None, 3), tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "other"), signatures={"serving_default": module.f})
    with pytest.raises(UserError, match="has no a2b endpoint"):
        inference.load_translator(tmp_path / "other", "a2b")


def test_a_conversion_failure_says_why_in_one_line(tmp_path):
    module = tf.Module()
    # SVD has no TFLite kernel: the converter refuses the graph.
    module.f = tf.function(
        lambda x: {"y": x * tf.reduce_sum(tf.linalg.svd(x[0, :, :, 0], compute_uv=False))},
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)],
    )
    tf.saved_model.save(module, str(tmp_path / "svd"), signatures={"a2b": module.f})
    with pytest.raises(UserError) as failure:
        export.convert_tflite(tmp_path / "svd", "a2b")
    assert_says(str(failure.value), "TFLite conversion of a2b (--quantize none) failed: 'tf.Svd' op",
                "export --format savedmodel instead")  # fmt: skip


def test_failed_conversion_leaves_no_target(run_dir, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(tflite, "convert_tflite", crash)
    target = tmp_path / "out" / "tflite"
    with pytest.raises(RuntimeError, match="converter crashed"):
        export.export(run_dir, "tflite", output=target, log=print)
    assert list((tmp_path / "out").iterdir()) == []


def test_failed_parity_keeps_the_previous_export(run_dir, tmp_path, monkeypatch):
    target = tmp_path / "savedmodel"
    target.mkdir()
    (target / "metadata.json").write_text('{"format": "savedmodel", "tfcyclegan_version": "0"}')
    monkeypatch.setitem(export.PARITY, "savedmodel", export.Limit(max_abs=-1.0))
    with pytest.raises(UserError, match="failed its parity check"):
        export.export(run_dir, "savedmodel", output=target, log=print)
    assert [p.name for p in tmp_path.iterdir()] == ["savedmodel"]
    assert [p.name for p in target.iterdir()] == ["metadata.json"]


def test_export_refuses_to_replace_a_foreign_folder(run_dir, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="is not a tfcyclegan export"):
        export.export(run_dir, "savedmodel", output=tmp_path / "mine")
