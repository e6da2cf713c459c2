"""Translator (any size, batching, tiling) and translate_files, on a tiny in-memory generator;
what importing tfcyclegan.inference loads."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from helpers import photo_like
from PIL import Image

from tfcyclegan import inference
from tfcyclegan.core.networks import ResnetGenerator
from tfcyclegan.data import imagefiles
from tfcyclegan.util.errors import UserError


@pytest.fixture(scope="module")
def generator():
    tf.keras.utils.set_random_seed(1)
    g = ResnetGenerator(ngf=8, n_blocks=1)
    g(tf.zeros((1, 32, 32, 3)))
    return g


@pytest.fixture(scope="module")
def translator(generator):
    return inference.keras_translator(generator)


@pytest.mark.parametrize("size", [(64, 64), (100, 100), (97, 131), (427, 640)])
def test_translator_keeps_any_size(translator, size):
    x = np.stack([photo_like(*size, seed=s) for s in range(2)])
    y = translator(x)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.all(np.abs(y) <= 1.0)
    assert translator(x[0]).shape == x[0].shape  # a single HxWx3 image


def test_multiple_of_four_is_the_plain_generator(generator, translator):
    x = photo_like(64, 96)[None]
    np.testing.assert_allclose(translator(x), generator(x).numpy(), atol=1e-6)


def test_padding_is_reflection_centred(generator, translator):
    x = photo_like(62, 97)[None]
    padded = np.pad(x, [(0, 0), (1, 1), (1, 2), (0, 0)], mode="reflect")
    np.testing.assert_allclose(translator(x), generator(padded).numpy()[:, 1:63, 1:98], atol=1e-6)


def test_batches_are_split_to_the_pixel_budget(generator):
    calls = []
    whole = inference.keras_translator(generator)

    def run(x):
        calls.append(x.shape)
        return whole.run(x)

    small = inference.Translator(run, "a2b", "keras", "test", max_pixels=2 * 64 * 64)
    x = np.stack([photo_like(64, 64, seed=s) for s in range(5)])
    np.testing.assert_allclose(small(x), whole(x), atol=1e-6)
    assert calls == [(2, 64, 64, 3), (2, 64, 64, 3), (1, 64, 64, 3)]


def test_too_small_image_is_a_user_error(translator):
    with pytest.raises(UserError, match="too small"):
        translator(np.zeros((1, 7, 50, 3), np.float32))
    with pytest.raises(UserError, match="RGB"):
        translator(np.zeros((1, 32, 32, 4), np.float32))


def _jumps(image, axis):
    """Mean absolute change between neighbouring columns (axis=1) or rows (axis=0)."""
    return np.abs(np.diff(image, axis=axis)).mean(axis=(1 - axis, 2))


def _normalise(x):
    # What makes tiles disagree in a real generator: instance norm, i.e. statistics
    # of the whole input, here without the network's texture so a seam is measurable.
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    return np.tanh((x - mean) / (std + 1e-3))


def test_tiles_blend_without_seams():
    """Hard-cut tiles (no overlap) leave jumps at tile borders; cross-faded tiles do not."""
    image = photo_like(256, 352, seed=3)
    whole = inference.Translator(_normalise, "a2b", "keras", "test", max_pixels=10**6)
    tiled = inference.Translator(_normalise, "a2b", "keras", "test", max_pixels=96 * 96)
    assert (tiled.tile, tiled.overlap) == (96, 24)
    reference, blended = whole(image), tiled(image)
    assert blended.shape == image.shape
    hard = np.zeros_like(image)
    for r in range(0, 256, 96):
        for c in range(0, 352, 96):
            hard[r : r + 96, c : c + 96] = whole(image[r : r + 96, c : c + 96])
    for axis, seams in ((1, [95, 191, 287]), (0, [95, 191])):
        seam = _jumps(hard, axis)[seams].min()
        assert seam > 5 * np.median(_jumps(reference, axis))  # the metric sees a seam
        # Cross-fading spreads tile disagreement over the overlap: no boundary stands out.
        assert _jumps(blended, axis).max() < 0.4 * seam
        assert _jumps(blended, axis).max() < 1.5 * _jumps(reference, axis).max()


def test_tiling_an_identity_model_returns_the_input():
    """With an identity model, tiling and blending must return the input exactly."""
    image = photo_like(203, 317, seed=4)
    tiled = inference.Translator(lambda x: x, "a2b", "keras", "test", max_pixels=64 * 64)
    np.testing.assert_allclose(tiled(image), image, atol=1e-6)


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    for name in ("a.png", "b.jpg", "c.png"):
        _write(folder / name, rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    _write(folder / "sub" / "d.png", rng.integers(0, 255, (33, 61, 3), dtype=np.uint8))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    _write(folder / "tiny.png", rng.integers(0, 255, (5, 5, 3), dtype=np.uint8))
    return folder


def test_translate_files_batches_same_size_and_skips_bad_inputs(generator, inputs, tmp_path):
    calls, messages, ticks = [], [], []
    base = inference.keras_translator(generator)

    def run(x):
        calls.append(x.shape[:3])
        return base.run(x)

    t = inference.Translator(run, "a2b", "keras", "test", base.max_pixels)
    out = tmp_path / "out"
    outcome = inference.translate_files(
        t, [inputs], out, batch_size=2, progress=lambda d, n: ticks.append((d, n)), log=messages.append
    )
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a.png", "b.png", "c.png", "sub/d.png"]
    assert np.asarray(Image.open(out / "sub" / "d.png")).shape == (33, 61, 3)
    assert sorted(calls) == [(1, 36, 64), (1, 40, 48), (2, 40, 48)]
    assert [Path(p).name for p, _ in outcome.skipped] == ["broken.jpg", "tiny.png"]
    assert len(messages) == 2 and all(m.startswith("skipped ") and "\n" not in m for m in messages)
    assert ticks[-1] == (6, 6)
    assert not list(out.rglob(".*"))  # no partial files left


def test_translated_pixels_match_the_translator(translator, tmp_path):
    image = imagefiles.to_uint8(photo_like(50, 70))
    _write(tmp_path / "x.png", image)
    inference.translate_files(translator, [tmp_path / "x.png"], tmp_path / "out", log=print)
    expected = imagefiles.to_uint8(translator(imagefiles.to_float(image)))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "x.png")), expected)


def test_max_size_downscales_with_a_note(translator, tmp_path):
    _write(tmp_path / "big.png", np.zeros((120, 300, 3), np.uint8))
    messages = []
    outcome = inference.translate_files(
        translator, [tmp_path / "big.png"], tmp_path / "out", max_size=100, fmt="jpg", log=messages.append
    )
    assert Image.open(tmp_path / "out" / "big.jpg").size == (100, 40)
    assert outcome.downscaled == [(str(tmp_path / "big.png"), (300, 120), (100, 40))]
    assert messages == [f"note: {tmp_path / 'big.png'} is 300x120; translated at 100x40 (--max-size 100)"]


def test_outputs_that_collide_or_overwrite_inputs_are_refused(translator, tmp_path):
    _write(tmp_path / "a" / "x.png", np.zeros((16, 16, 3), np.uint8))
    _write(tmp_path / "a" / "x.jpg", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(UserError, match="would both be written to"):
        inference.translate_files(translator, [tmp_path / "a"], tmp_path / "out")
    with pytest.raises(UserError, match="would overwrite its input"):
        inference.translate_files(translator, [tmp_path / "a" / "x.png"], tmp_path / "a")
    with pytest.raises(UserError, match="no such file or folder"):
        inference.translate_files(translator, [tmp_path / "missing"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


IMPORTS = """
import builtins, json, sys

importers = set()
real_import = builtins.__import__


def spy(name, globals=None, locals=None, fromlist=(), level=0):
    if name.split(".")[0] == "matplotlib":
        importers.add((globals or {}).get("__name__", "?"))
    return real_import(name, globals, locals, fromlist, level)


builtins.__import__ = spy
import tfcyclegan.inference

on_import = sorted(sys.modules)
for name in tfcyclegan.inference.__all__:
    getattr(tfcyclegan.inference, name)  # every module of the package, as translate and export use them
print(json.dumps({"on_import": on_import, "in_use": sorted(sys.modules), "matplotlib_importers": sorted(importers)}))
"""


def test_inference_loads_neither_the_trainer_nor_matplotlib():
    done = subprocess.run([sys.executable, "-c", IMPORTS], capture_output=True, text=True, check=True)
    modules = json.loads(done.stdout.splitlines()[-1])
    # The package alone (what the command line imports for its option lists): no TensorFlow at all.
    assert not {"tensorflow", "numpy", "matplotlib"} & set(modules["on_import"])
    in_use = set(modules["in_use"])
    assert {f"tfcyclegan.inference.{m}" for m in ("options", "tiling", "loaders", "files")} <= in_use
    assert not {"tfcyclegan.training.train", "tfcyclegan.training.callbacks", "tfcyclegan.training.figures"} & in_use
    # Keras imports matplotlib.pyplot itself when it is installed; no tfcyclegan module may.
    assert not [name for name in modules["matplotlib_importers"] if name.split(".")[0] == "tfcyclegan"]


def test_translate_command_takes_the_librarys_constants_without_loading_tensorflow():
    code = "import sys, tfcyclegan_cli.translate; assert not {'tensorflow', 'numpy'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("ngf", [4, 64])
def test_a_tile_fits_the_pass_budget_whatever_the_width(ngf):
    translator = inference.Translator(lambda x: x, "a2b", "keras", "test", inference.pixel_budget(ngf))
    assert translator.tile**2 * inference.pass_bytes_per_pixel(ngf) <= inference.PASS_BYTES
    # Memory grows with ngf plus the images, not with ngf alone: ngf 4 no longer gets
    # 16 times ngf 64's pixels (8192-pixel tiles, 14.9 GB for a 12000 x 12000 image).
    assert translator.tile < 8192
    assert inference.pixel_budget(4) < 8 * inference.pixel_budget(64)


def test_translate_uint8_blends_tiles_like_the_float_path():
    generator = ResnetGenerator(ngf=4, n_blocks=1)
    generator(np.zeros((1, 32, 32, 3), np.float32))
    whole = inference.keras_translator(generator)
    tiled = inference.Translator(whole.run, "a2b", "keras", "test", max_pixels=48 * 48)
    image = np.random.default_rng(0).integers(0, 256, (101, 157, 3), np.uint8)
    expected = imagefiles.to_uint8(tiled(imagefiles.to_float(image)))
    got = tiled.translate_uint8(image)
    assert got.dtype == np.uint8 and got.shape == image.shape
    assert np.abs(got.astype(int) - expected).max() <= 1  # float32 rounding at a .5 boundary
