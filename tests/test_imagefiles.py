"""Image files (tfcyclegan/data/imagefiles.py): listing, decoding every kind of file a folder may
hold, one reason per unreadable file, and inputs that could hang or exhaust memory (named pipes,
huge files, decompression bombs, deep or vanishing folders)."""

import io
import os
import struct
import sys
import types
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from helpers import BAD, HUGE, fifo, save
from PIL import Image

from tfcyclegan.data import imagefiles
from tfcyclegan.data.imagefiles import ImageError, UserError


def png16(array, colour_type):
    """A 16-bit PNG written by hand: Pillow cannot save 16-bit RGB."""
    h, w = array.shape[:2]
    rows = b"".join(b"\0" + array[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("name", sorted(BAD))
def test_load_image_rejects_bad_file_with_reason(bad_folder, name):
    with pytest.raises(ImageError) as info:
        imagefiles.load_image(bad_folder / name)
    assert info.value.reason == BAD[name][1]
    assert info.value.path == str(bad_folder / name)
    assert str(bad_folder / name) in str(info.value) and "\n" not in str(info.value)


def test_load_image_permission_denied(tmp_path, monkeypatch):
    path = save(tmp_path / "locked.png", Image.new("RGB", (8, 8)))
    os_open = os.open

    def refuse(name, *args, **kwargs):
        if Path(name).name == "locked.png":
            raise PermissionError(13, "Permission denied", str(name))
        return os_open(name, *args, **kwargs)

    # Root (as in CI) reads files whatever their mode, so the refusal is simulated.
    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ImageError, match="permission denied"):
        imagefiles.load_image(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_load_image_permission_denied_for_real(tmp_path):
    path = save(tmp_path / "locked.png", Image.new("RGB", (8, 8)))
    path.chmod(0)
    with pytest.raises(ImageError, match="permission denied"):
        imagefiles.load_image(path)


def test_load_image_folder_and_broken_link(tmp_path):
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    with pytest.raises(ImageError, match="is a folder, not a file"):
        imagefiles.load_image(tmp_path / "folder.jpg")
    with pytest.raises(ImageError, match=r"file not found \(broken link\?\)"):
        imagefiles.load_image(tmp_path / "dangling.jpg")


def test_load_image_cmyk_jpeg(tmp_path):
    path = save(tmp_path / "cmyk.jpg", Image.new("CMYK", (16, 16), (0, 255, 255, 0)))
    image = imagefiles.load_image(path)
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    np.testing.assert_allclose(image[8, 8], (255, 0, 0), atol=8)


def test_load_image_16bit_grey_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1000, 128 * 257, 65535]], np.uint16)
    path = save(tmp_path / "grey16.png", Image.fromarray(values))
    assert Image.open(path).mode.startswith("I")
    image = imagefiles.load_image(path)
    assert image.shape == (1, 4, 3)
    np.testing.assert_array_equal(image[0, :, 0], [0, 4, 128, 255])
    assert (image == image[..., :1]).all()


def test_load_image_16bit_rgb_png(tmp_path):
    rgb = np.array([[[65535, 0, 100 * 257], [257 * 7, 257 * 200, 65535]]], np.uint16)
    path = tmp_path / "rgb16.png"
    path.write_bytes(png16(rgb, colour_type=2))
    np.testing.assert_array_equal(imagefiles.load_image(path), [[[255, 0, 100], [7, 200, 255]]])


def test_load_image_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 255, 0)  # fully transparent
    rgba[1, 0] = (0, 0, 0, 128)  # half-transparent black
    image = imagefiles.load_image(save(tmp_path / "rgba.png", Image.fromarray(rgba, "RGBA")))
    np.testing.assert_array_equal(image[0, 0], (255, 0, 0))
    np.testing.assert_array_equal(image[0, 1], (255, 255, 255))
    np.testing.assert_allclose(image[1, 0], (127, 127, 127), atol=1)
    la = imagefiles.load_image(save(tmp_path / "la.png", Image.fromarray(rgba[..., [0, 3]], "LA")))
    np.testing.assert_array_equal(la[0, 1], (255, 255, 255))


def test_load_image_palette_with_transparency(tmp_path):
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.putpixel((1, 1), 1)
    for fmt in ("png", "gif"):
        image = imagefiles.load_image(save(tmp_path / f"palette.{fmt}", palette, transparency=0))
        np.testing.assert_array_equal(image[0, 0], (255, 255, 255))
        np.testing.assert_array_equal(image[1, 1], (0, 255, 0))


def test_load_image_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert Image.open(path).n_frames == 2
    np.testing.assert_array_equal(imagefiles.load_image(path)[4, 4], (255, 0, 0))


def test_load_image_honours_exif_orientation(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: the left edge goes to the top
    path = save(tmp_path / "rotated.jpg", Image.fromarray(stored), exif=exif.tobytes(), quality=95)
    image = imagefiles.load_image(path)
    assert image.shape == (40, 20, 3)
    np.testing.assert_allclose(image[5, 10], (255, 0, 0), atol=10)
    np.testing.assert_allclose(image[35, 10], (0, 0, 255), atol=10)


def test_unreadable_exif_orientation_is_said_once_and_the_pixels_kept(tmp_path, monkeypatch, capsys):
    def broken(image, in_place):
        raise SyntaxError("bad IFD offset")

    monkeypatch.setattr(imagefiles.ImageOps, "exif_transpose", broken)
    path = save(tmp_path / "odd exif.jpg", Image.new("RGB", (8, 6), (0, 128, 0)))
    assert imagefiles.load_image(path).shape == (6, 8, 3)
    imagefiles.load_image(path)
    assert capsys.readouterr().err == (
        f"warning: {path}: EXIF orientation unreadable (bad IFD offset); using the pixels as stored\n"
    )


def test_load_image_grayscale_jpeg(tmp_path):
    image = imagefiles.load_image(save(tmp_path / "grey.jpg", Image.new("L", (8, 6), 90)))
    assert image.shape == (6, 8, 3)
    np.testing.assert_allclose(image, 90, atol=2)


def test_odd_names_are_listed_and_loaded(tmp_path):
    names = ["with space.jpg", "2013-11-08 16:45:24.JPG", "zebra 🦓.png", "ÜBER.WebP"]
    for name in names:
        save(tmp_path / name, Image.new("RGB", (8, 8), (1, 2, 3)))
    paths = imagefiles.list_images(tmp_path)
    assert sorted(Path(p).name for p in paths) == sorted(names)
    good, bad = imagefiles.scan_images(paths)
    assert good == paths and bad == []


def test_scan_images_partitions_in_order_and_shows_progress(bad_folder, capsys):
    for i in range(100):
        save(bad_folder / f"good{i:03d}.png", Image.new("RGB", (4, 4)))
    paths = imagefiles.list_images(bad_folder)
    good, bad = imagefiles.scan_images(paths)
    assert good == [p for p in paths if Path(p).name.startswith("good")]
    assert bad == [(p, BAD[Path(p).name][1]) for p in paths if Path(p).name in BAD]
    # Captured stderr is not a terminal: one finished line, no `\r` redraws glued together.
    assert capsys.readouterr().err == f"checking images: {len(paths)}/{len(paths)}\n"
    imagefiles.scan_images(paths, progress=False)
    assert capsys.readouterr().err == ""


def test_scan_images_progress_redraws_on_a_terminal(tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for i in range(100):
        save(tmp_path / f"{i:03d}.png", Image.new("RGB", (4, 4)))
    monkeypatch.setattr(sys, "stderr", Terminal())
    imagefiles.scan_images(imagefiles.list_images(tmp_path))
    assert sys.stderr.getvalue().startswith("\rchecking images: ")
    assert sys.stderr.getvalue().endswith("\rchecking images: 100/100\n")


def test_list_images_recursive_sorted_skips_hidden_and_link_loops(tmp_path):
    for rel in ["b/2.png", "b/sub/1.jpeg", "a.GIF", ".hidden.png", ".cache/x.png", "c.bmp"]:
        save(tmp_path / rel, Image.new("RGB", (4, 4)))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "b" / "sub" / "loop").symlink_to(tmp_path / "b")
    expected = [str(tmp_path / rel) for rel in ["a.GIF", "b/2.png", "b/sub/1.jpeg", "c.bmp"]]
    assert imagefiles.list_images(tmp_path) == expected


def test_list_images_errors_name_the_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    for folder, words in [("missing", "no such folder"), ("file.txt", "is a file"), ("empty", "holds no image")]:
        with pytest.raises(UserError, match=words) as info:
            imagefiles.list_images(tmp_path / folder)
        assert str(tmp_path / folder) in str(info.value)
    assert imagefiles.list_images(tmp_path / "empty", allow_empty=True) == []


def test_to_uint8_and_to_float_round_trip_exactly():
    levels = np.arange(256, dtype=np.uint8)
    as_float = imagefiles.to_float(levels)
    assert as_float.dtype == np.float32 and as_float[0] == -1 and as_float[-1] == 1
    np.testing.assert_array_equal(imagefiles.to_uint8(as_float), levels)
    np.testing.assert_array_equal(imagefiles.to_uint8(imagefiles.to_float(tf.constant(levels))).numpy(), levels)
    np.testing.assert_array_equal(imagefiles.to_uint8(np.array([-3.0, 0.0, 7.0])), [0, 128, 255])
    np.testing.assert_array_equal(imagefiles.to_uint8(tf.constant([-3.0, 0.0, 7.0])).numpy(), [0, 128, 255])


def test_a_named_pipe_is_refused_without_opening_it(tmp_path):
    with fifo(tmp_path / "pipe.png") as path:
        with pytest.raises(imagefiles.ImageError) as info:
            imagefiles.load_image(path)
    assert info.value.reason == "not a regular file (a named pipe); only image files are read"


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


def test_decoding_never_changes_pillows_limit_for_the_process(huge_png, tmp_path, monkeypatch):
    """Another thread of the host may be decoding with Pillow: its limit stays as it is, even
    for a moment, whether an image is refused as too large or decoded with allow_large."""
    import PIL.Image

    writes = []

    class Watched(types.ModuleType):
        def __getattr__(self, name):
            return getattr(PIL.Image, name)

        def __setattr__(self, name, value):
            writes.append(name)
            setattr(PIL.Image, name, value)

    monkeypatch.setattr(imagefiles, "Image", Watched("PIL.Image"))
    with pytest.raises(imagefiles.ImageTooLarge):
        imagefiles.load_image(huge_png)
    Image.new("RGB", (40, 30)).save(tmp_path / "small.png")
    assert imagefiles.load_image(tmp_path / "small.png", allow_large=True).shape == (30, 40, 3)
    assert writes == []


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
