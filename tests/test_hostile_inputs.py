"""Inputs that could hang a command or exhaust memory (issue #17): named pipes, devices,
huge files, decompression bombs, deep or vanishing folders, degenerate --max-size."""

import os
import threading
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from helpers import invoke, write_untrained_run
from PIL import Image

from tfcyclegan import inference
from tfcyclegan.core.networks import ResnetGenerator
from tfcyclegan.data import imagefiles

HUGE = (13500, 13500)  # 182 megapixels: over twice Pillow's MAX_IMAGE_PIXELS, so Pillow itself raises


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


@contextmanager
def fifo(path, timeout=20):
    """A named pipe at `path`. Should a reader block on it (the bug), a writer opens and
    closes it after `timeout` s, so the reader gets an empty file and the test fails
    instead of hanging."""
    os.mkfifo(path)

    def unblock():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # nobody is reading

    timer = threading.Timer(timeout, unblock)
    timer.start()
    try:
        yield path
    finally:
        timer.cancel()


def translate(model, *args):
    """`tfcyclegan translate --model MODEL --direction a2b ARGS...` in-process."""
    return invoke("translate", "--model", model, "--direction", "a2b", *args)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    for domain in "AB":
        (root / domain).mkdir()
        Image.new("RGB", (32, 32), (90, 120, 40)).save(root / domain / "0.png")
    return write_untrained_run(root)


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory):
    """A valid 13500 x 13500 1-bit PNG: 22 kB on disk."""
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("1", HUGE, 1).save(path)
    return path


def test_a_named_pipe_is_refused_without_opening_it(tmp_path):
    with fifo(tmp_path / "pipe.png") as path:
        with pytest.raises(imagefiles.ImageError) as info:
            imagefiles.load_image(path)
    assert info.value.reason == "not a regular file (a named pipe); only image files are read"


def test_check_data_lists_a_named_pipe_and_goes_on(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "good.png")
    with fifo(tmp_path / "pipe.jpg"):
        result = invoke("check-data", tmp_path)
    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'pipe.jpg'}: not a regular file (a named pipe); only image files are read" in result.stdout
    assert "1 readable, 1 unreadable of 2 image files" in result.stdout


def test_translate_skips_a_named_pipe_and_a_device(run_dir, tmp_path):
    with fifo(tmp_path / "pipe.png"):
        result = translate(run_dir, tmp_path / "pipe.png", "/dev/zero", "-o", tmp_path / "o")
    assert f"skipped {tmp_path / 'pipe.png'}: not a regular file (a named pipe); only image files are read" in (
        result.stderr.splitlines()
    )
    assert "skipped /dev/zero: not a regular file (a character device); only image files are read" in (
        result.stderr.splitlines()
    )
    assert error_lines(result) == [
        "error: none of the 2 inputs was translated (2 could not be read; listed above); nothing was written"
    ]


def test_a_named_pipe_as_model_is_refused(tmp_path):
    with fifo(tmp_path / "model.tflite") as path:
        result = translate(path, path, "-o", tmp_path / "o")
    [line] = error_lines(result)
    assert line.startswith(f"error: model {path} is not a regular file; expected a run directory")


def test_a_file_over_the_size_cap_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.png"
    with open(path, "wb") as f:
        f.truncate(imagefiles.MAX_FILE_BYTES + 2**29)  # sparse: costs no disk and, refused, no memory
    with pytest.raises(imagefiles.ImageError) as info:
        imagefiles.load_image(path)
    assert info.value.reason == "file is 1536 MiB, over the 1024 MiB limit for an image file"


def test_1200_nested_folders_are_listed(tmp_path):
    folder = tmp_path
    for _ in range(1200):
        folder = folder / "d"
        folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "deep.png")
    try:
        assert imagefiles.list_images(tmp_path) == [str(folder / "deep.png")]
    finally:
        # pytest's later clean-up of old temp folders recurses and would hit Python's
        # recursion limit on this tree: take it down from the bottom here.
        (folder / "deep.png").unlink()
        while folder != tmp_path:
            folder.rmdir()
            folder = folder.parent


def test_folders_that_vanish_or_cannot_be_listed_are_skipped_with_a_note(tmp_path, monkeypatch):
    Image.new("RGB", (8, 8)).save(tmp_path / "kept.png")
    gone = [tmp_path / f"gone{i:02d}" for i in range(13)]
    for folder in [*gone, tmp_path / "a-locked"]:
        folder.mkdir()
        Image.new("RGB", (8, 8)).save(folder / "x.png")
    scandir = os.scandir

    def flaky(path):
        if os.path.basename(path).startswith("gone"):
            raise FileNotFoundError(2, "No such file or directory", path)
        if os.path.basename(path) == "a-locked":
            raise PermissionError(13, "Permission denied", path)
        return scandir(path)

    monkeypatch.setattr(imagefiles.os, "scandir", flaky)
    notes = []
    assert imagefiles.list_images(tmp_path, log=notes.append) == [str(tmp_path / "kept.png")]
    assert len(notes) == imagefiles.MAX_SKIP_NOTES + 1
    assert (
        f"note: skipped folder {tmp_path / 'a-locked'}: permission denied; fix its permissions to include its images"
        in (notes)
    )
    assert f"note: skipped folder {gone[0]}: it vanished during the listing" in notes
    assert notes[-1] == f"note: skipped 4 more folders under {tmp_path} that could not be listed"


def test_a_huge_image_is_too_large_not_corrupt_and_warns_nothing(huge_png):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(imagefiles.ImageTooLarge) as info:
            imagefiles.load_image(huge_png)
        Image.new("P", (10000, 10000)).save(huge_png.with_name("100mp.png"))
        with pytest.raises(imagefiles.ImageTooLarge, match="10000x10000 pixels"):
            imagefiles.load_image(huge_png.with_name("100mp.png"))
    assert info.value.reason == (
        "13500x13500 pixels (182 megapixels) is larger than the decoder's safety limit of 89 megapixels"
    )
    assert info.value.size == HUGE
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == 89478485  # Pillow's own limit is left as it was


def test_translate_a_huge_image_only_when_asked(run_dir, huge_png, tmp_path):
    result = translate(run_dir, huge_png, "-o", tmp_path / "o")
    assert (
        f"skipped {huge_png}: 13500x13500 pixels (182 megapixels) is larger than the decoder's safety limit of "
        "89 megapixels; pass --max-size to translate it downscaled or --allow-large"
    ) in result.stderr.splitlines()
    assert error_lines(result) == [
        "error: none of the 1 inputs was translated (1 too large; listed above); nothing was written"
    ]
    assert "DecompressionBomb" not in result.output and "site-packages" not in result.output


def test_max_size_translates_an_image_over_the_limit(run_dir, tmp_path, monkeypatch):
    # Decoding a real 13500 x 13500 image whole takes tens of seconds; a small limit stands in.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40)
    Image.new("RGB", (120, 90), (200, 30, 30)).save(tmp_path / "big.png")
    result = translate(run_dir, tmp_path / "big.png", "-o", tmp_path / "o", "--max-size", 64)
    assert result.exit_code == 0, result.output
    assert f"note: {tmp_path / 'big.png'} is 120x90; translated at 64x48 (--max-size 64)" in result.stderr.splitlines()
    monkeypatch.undo()
    assert Image.open(tmp_path / "o" / "big.png").size == (64, 48)


def test_allow_large_translates_at_full_size(run_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40)  # a small limit stands in for 89 megapixels
    Image.new("RGB", (60, 44), (200, 30, 30)).save(tmp_path / "wide.png")
    result = translate(run_dir, tmp_path / "wide.png", "-o", tmp_path / "o")
    assert error_lines(result) == [
        "error: none of the 1 inputs was translated (1 too large; listed above); nothing was written"
    ]
    result = translate(run_dir, tmp_path / "wide.png", "-o", tmp_path / "o", "--allow-large")
    assert result.exit_code == 0, result.output
    monkeypatch.undo()
    assert Image.open(tmp_path / "o" / "wide.png").size == (60, 44)


def test_max_size_keeps_the_aspect_ratio_or_says_too_small(run_dir, tmp_path):
    Image.new("RGB", (1000, 10)).save(tmp_path / "strip.png")
    Image.new("RGB", (1000, 100)).save(tmp_path / "banner.png")
    result = translate(run_dir, tmp_path / "strip.png", tmp_path / "banner.png", "-o", tmp_path / "o", "--max-size", 80)
    lines = result.stderr.splitlines()
    assert f"note: {tmp_path / 'banner.png'} is 1000x100; translated at 80x8 (--max-size 80)" in lines
    assert Image.open(tmp_path / "o" / "banner.png").size == (80, 8)
    assert (
        f"skipped {tmp_path / 'strip.png'}: too small at --max-size 80: 1000x10 would become 80x1, "
        "and at least 8x8 is needed"
    ) in lines
    assert error_lines(result) == [
        f"error: 1 of 2 inputs were skipped (1 too small; listed above); the other 1 were written to {tmp_path / 'o'}"
    ]


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


@pytest.mark.parametrize("key, value, message", [("n_blocks", 1_000_000, "n_blocks must be <= 32 (got 1000000)"),
                                                 ("ngf", 100_000, "ngf must be <= 256 (got 100000)"),
                                                 ("n_blocks", "6", 'n_blocks must be an integer (got "6")')])  # fmt: skip
def test_a_keras_generator_asking_for_an_absurd_network_is_refused_before_building(tmp_path, key, value, message):
    """A .keras file's architecture is read from its config.json and bounded before Keras builds it."""
    import json
    import zipfile

    from helpers import assert_one_line_error

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
