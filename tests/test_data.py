import io
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from PIL import Image
from tfcyclegan_cli.check_data import check_data

from tfcyclegan.data import imagefiles, pipeline
from tfcyclegan.data.imagefiles import ImageError, UserError


def save(path, image, fmt=None, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **kwargs)
    return path


def encoded(fmt, size=(64, 48)):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


def flipped_idat_byte():
    png = bytearray(encoded("PNG"))
    png[png.index(b"IDAT") + 20] ^= 0xFF
    return bytes(png)


def png16(array, colour_type):
    """A 16-bit PNG written by hand: Pillow cannot save 16-bit RGB."""
    h, w = array.shape[:2]
    rows = b"".join(b"\0" + array[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


BAD = {
    "empty.jpg": (b"", "file is empty"),
    "truncated.jpg": (encoded("JPEG")[:400], "truncated image data"),
    "truncated.png": (encoded("PNG")[:2000], "truncated image data"),
    "corrupt.png": (flipped_idat_byte(), "corrupt image data (broken data stream when reading image file)"),
    "truncated.webp": (encoded("WEBP")[:300], "corrupt image data (could not create decoder object)"),
    "notes.jpg": (b"these are my holiday notes\nnot a picture\n", "not an image (text/HTML?)"),
    "page.png": (
        b"<!DOCTYPE html>\n<html><body>403 Forbidden \xe2\x80\x94 sign in</body></html>\n",
        "not an image (text/HTML?)",
    ),
    "noise.jpg": (bytes(range(256)) * 4, "not an image (unrecognised format)"),
}


@pytest.fixture
def bad_folder(tmp_path):
    for name, (content, _) in BAD.items():
        (tmp_path / name).write_bytes(content)
    return tmp_path


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


def test_default_steps_per_epoch():
    assert pipeline.default_steps_per_epoch(562, 370, 1) == 562
    assert pipeline.default_steps_per_epoch(3, 10, 4) == 2
    assert pipeline.default_steps_per_epoch(1, 2, 8) == 1


# --- the pipeline on real images --------------------------------------------------


@pytest.fixture(scope="module")
def ukiyoe(shared_datasets):
    root = shared_datasets / "ukiyoe2photo"
    return imagefiles.list_images(root / "trainA"), imagefiles.list_images(root / "trainB")


def batches(files_a, files_b, **kwargs):
    options = dict(image_size=32, load_size=32, batch_size=2, steps_per_epoch=3, epochs=2, seed=1, flip=False)
    options.update(kwargs)
    return [(x.numpy(), y.numpy()) for x, y in pipeline.make_train_dataset(files_a, files_b, **options)]


def test_real_quirky_files_load(shared_datasets):
    grey = [
        shared_datasets / "ukiyoe2photo/trainA/00504.jpg",
        shared_datasets / "ukiyoe2photo/trainA/00644.jpg",
        shared_datasets / "horse2zebra/trainB/n02391049_2341.jpg",
    ]
    for path in grey:
        assert Image.open(path).mode == "L"
        image = imagefiles.load_image(path)
        assert image.ndim == 3 and image.shape[2] == 3 and (image == image[..., :1]).all()
    colons = [p for p in imagefiles.list_images(shared_datasets / "ukiyoe2photo/trainB") if ":" in p and " " in p]
    assert colons
    x, y = batches(colons[:2], [str(p) for p in grey], epochs=1)[0]
    assert x.shape == y.shape == (2, 32, 32, 3)


def test_pipeline_shapes_range_and_exact_count(ukiyoe):
    files_a, files_b = ukiyoe
    dataset = pipeline.make_train_dataset(
        files_a[:7],
        files_b[:5],
        image_size=64,
        load_size=72,
        batch_size=3,
        steps_per_epoch=4,
        epochs=3,
        initial_epoch=1,
    )
    assert dataset.cardinality().numpy() == 8
    out = list(dataset)
    assert len(out) == 8
    for x, y in out:
        assert x.shape == y.shape == (3, 64, 64, 3)
        assert x.dtype == y.dtype == tf.float32
        assert -1 <= x.numpy().min() and x.numpy().max() <= 1 and -1 <= y.numpy().min() and y.numpy().max() <= 1
    assert min(x.numpy().min() for x, _ in out) < -0.9 and max(x.numpy().max() for x, _ in out) > 0.9


def which(images, references):
    """Index of the reference each image equals exactly."""
    return [next(i for i, ref in enumerate(references) if np.array_equal(image, ref)) for image in images]


def test_unequal_domains_cycle_the_smaller_one_and_are_unpaired(ukiyoe):
    files_a, files_b = ukiyoe[0][:5], ukiyoe[1][:3]
    refs_a, refs_b = pipeline.make_eval_batch(files_a, 32, 5), pipeline.make_eval_batch(files_b, 32, 3)
    out = batches(files_a, files_b, batch_size=2, steps_per_epoch=4, epochs=2)
    for epoch in (out[:4], out[4:]):
        ids_a = which(np.concatenate([x for x, _ in epoch]), refs_a)
        ids_b = which(np.concatenate([y for _, y in epoch]), refs_b)
        # 8 draws per epoch: one full pass over A (then 3 more), two and a bit over B.
        assert sorted(ids_a[:5]) == [0, 1, 2, 3, 4] and sorted(set(ids_a[5:])) == sorted(ids_a[5:])
        assert sorted(ids_b[:3]) == [0, 1, 2] and sorted(ids_b[3:6]) == [0, 1, 2]
        assert sorted(np.bincount(ids_b, minlength=3)) == [2, 3, 3]
    orders = [which(np.concatenate([x for x, _ in epoch]), refs_a) for epoch in (out[:4], out[4:])]
    assert orders[0] != orders[1]  # reshuffled every epoch
    same = batches(files_a, files_a, batch_size=1, steps_per_epoch=5, epochs=1)
    assert which([x[0] for x, _ in same], refs_a) != which([y[0] for _, y in same], refs_a)


def test_random_crop_is_a_window_of_the_resized_image(ukiyoe):
    source = pipeline.make_eval_batch(ukiyoe[0][:1], 40, 1)[0]
    offsets = {"x": [], "y": []}
    for x, y in batches(ukiyoe[0][:1], ukiyoe[0][:1], load_size=40, batch_size=4, steps_per_epoch=2, epochs=1):
        for domain, images in (("x", x), ("y", y)):
            for image in images:
                found = [
                    (i, j) for i in range(9) for j in range(9) if np.array_equal(source[i : i + 32, j : j + 32], image)
                ]
                assert len(found) == 1
                offsets[domain] += found
    assert len(set(offsets["x"])) > 1
    assert offsets["x"] != offsets["y"]  # A and B are cropped independently


def test_flip_mirrors_some_crops_and_keeps_the_rest(ukiyoe):
    kwargs = dict(load_size=40, batch_size=4, steps_per_epoch=3, epochs=1)
    plain = batches(ukiyoe[0][:3], ukiyoe[1][:3], flip=False, **kwargs)
    flipped = batches(ukiyoe[0][:3], ukiyoe[1][:3], flip=True, **kwargs)
    mirrored = kept = 0
    for (x0, y0), (x1, y1) in zip(plain, flipped):
        for a, b in zip(np.concatenate([x0, y0]), np.concatenate([x1, y1])):
            if np.array_equal(a, b):
                kept += 1
            else:
                np.testing.assert_array_equal(a[:, ::-1], b)
                mirrored += 1
    assert mirrored >= 3 and kept >= 3


def test_pipeline_is_a_pure_function_of_seed_and_epoch(ukiyoe):
    files_a, files_b = ukiyoe[0][:6], ukiyoe[1][:4]
    kwargs = dict(load_size=40, flip=True, batch_size=2, steps_per_epoch=3)
    full = batches(files_a, files_b, epochs=3, **kwargs)
    again = batches(files_a, files_b, epochs=3, **kwargs)
    resumed = batches(files_a, files_b, epochs=3, initial_epoch=2, **kwargs)
    other_seed = batches(files_a, files_b, epochs=3, **{**kwargs, "seed": 2})
    assert len(full) == 9 and len(resumed) == 3
    for (x0, y0), (x1, y1) in zip(full, again):
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(y0, y1)
    for (x0, y0), (x1, y1) in zip(full[6:], resumed):
        np.testing.assert_array_equal(x0, x1)
        np.testing.assert_array_equal(y0, y1)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(full, other_seed))


def test_pipeline_rejects_load_size_below_image_size(ukiyoe):
    with pytest.raises(UserError, match="load size 16 is smaller than image size 32"):
        pipeline.make_train_dataset(
            ukiyoe[0], ukiyoe[1], image_size=32, load_size=16, batch_size=1, steps_per_epoch=1, epochs=1
        )


def test_make_eval_batch(ukiyoe):
    batch = pipeline.make_eval_batch(ukiyoe[1], 48, 4)
    assert batch.shape == (4, 48, 48, 3) and batch.dtype == np.float32
    assert -1 <= batch.min() and batch.max() <= 1
    # Bicubic resize of the full image, up to JPEG's reduced-scale decoding of a 256 px file.
    reference = np.asarray(Image.fromarray(imagefiles.load_image(ukiyoe[1][2])).resize((48, 48), Image.BICUBIC))
    assert np.abs(imagefiles.to_uint8(batch[2]).astype(int) - reference).mean() < 2
    assert pipeline.make_eval_batch(ukiyoe[1][:2], 48, 4).shape == (2, 48, 48, 3)


# --- tfcyclegan check-data --------------------------------------------------------


def test_check_data_lists_bad_files(bad_folder):
    save(bad_folder / "ok.png", Image.new("RGB", (4, 4)))
    result = CliRunner().invoke(check_data, [str(bad_folder)])
    assert result.exit_code == 0
    for name, (_, reason) in BAD.items():
        assert f"{bad_folder / name}: {reason}\n" in result.output
    assert f"1 readable, {len(BAD)} unreadable of {len(BAD) + 1} image files" in result.output


def test_check_data_fails_when_nothing_is_readable(bad_folder, tmp_path):
    result = CliRunner().invoke(check_data, [str(bad_folder)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("error: no readable image under")
    result = CliRunner().invoke(check_data, [str(tmp_path / "missing")])
    assert result.exit_code == 1 and "error: " in result.output and "no such folder" in result.output
