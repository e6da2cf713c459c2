"""`tfcyclegan translate` (cli/translate.py) end to end: results, one clear line (exit 1, no
traceback) for each kind of bad input or model file, hostile inputs (pipes, devices, huge
images, --max-size), and outputs that never overwrite or lose a file."""

import errno
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from helpers import (
    assert_one_line_error,
    assert_says,
    error_lines,
    expected_modes,
    fifo,
    invoke,
    modes,
    one_line_error,
    tree,
    write_noise_run,
    write_untrained_run,
)
from PIL import Image

from tfcyclegan import inference
from tfcyclegan.util.errors import UserError


def translate(model, *args):
    """`tfcyclegan translate --model MODEL --direction a2b ARGS...` in-process."""
    return invoke("translate", "--model", model, "--direction", "a2b", *args)


@pytest.fixture(scope="module")
def flat_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    for domain in "AB":
        (root / domain).mkdir()
        Image.new("RGB", (32, 32), (90, 120, 40)).save(root / domain / "0.png")
    return write_untrained_run(root)


def test_translate_skips_a_named_pipe_and_a_device(flat_run, tmp_path):
    with fifo(tmp_path / "pipe.png"):
        result = translate(flat_run, tmp_path / "pipe.png", "/dev/zero", "-o", tmp_path / "o")
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
    assert line.startswith(f"error: model {path} is not a regular file (a named pipe); expected a run directory")


def test_a_folder_named_like_a_model_file_says_it_is_a_folder(tmp_path):
    (tmp_path / "x.pth").mkdir()
    result = translate(tmp_path / "x.pth", tmp_path / "x.pth", "-o", tmp_path / "o")
    [line] = error_lines(result)
    assert line.startswith(f"error: {tmp_path / 'x.pth'} is a folder, not a model: expected a run directory")


def test_translate_a_huge_image_only_when_asked(flat_run, huge_png, tmp_path):
    result = translate(flat_run, huge_png, "-o", tmp_path / "o")
    assert (
        f"skipped {huge_png}: 13500x13500 pixels (182 megapixels) is larger than the decoder's safety limit of "
        "89 megapixels; pass --max-size to translate it downscaled or --allow-large"
    ) in result.stderr.splitlines()
    assert error_lines(result) == [
        "error: none of the 1 inputs was translated (1 too large; listed above); nothing was written"
    ]
    assert "DecompressionBomb" not in result.output and "site-packages" not in result.output


def test_max_size_translates_an_image_over_the_limit(flat_run, tmp_path, monkeypatch):
    # Decoding a real 13500 x 13500 image whole takes tens of seconds; a small limit stands in.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40)
    Image.new("RGB", (120, 90), (200, 30, 30)).save(tmp_path / "big.png")
    result = translate(flat_run, tmp_path / "big.png", "-o", tmp_path / "o", "--max-size", 64)
    assert result.exit_code == 0, result.output
    assert f"note: {tmp_path / 'big.png'} is 120x90; translated at 64x48 (--max-size 64)" in result.stderr.splitlines()
    monkeypatch.undo()
    assert Image.open(tmp_path / "o" / "big.png").size == (64, 48)


def test_allow_large_translates_at_full_size(flat_run, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40)  # a small limit stands in for 89 megapixels
    Image.new("RGB", (60, 44), (200, 30, 30)).save(tmp_path / "wide.png")
    result = translate(flat_run, tmp_path / "wide.png", "-o", tmp_path / "o")
    assert error_lines(result) == [
        "error: none of the 1 inputs was translated (1 too large; listed above); nothing was written"
    ]
    result = translate(flat_run, tmp_path / "wide.png", "-o", tmp_path / "o", "--allow-large")
    assert result.exit_code == 0, result.output
    monkeypatch.undo()
    assert Image.open(tmp_path / "o" / "wide.png").size == (60, 44)


def test_max_size_keeps_the_aspect_ratio_or_says_too_small(flat_run, tmp_path):
    Image.new("RGB", (1000, 10)).save(tmp_path / "strip.png")
    Image.new("RGB", (1000, 100)).save(tmp_path / "banner.png")
    result = translate(
        flat_run, tmp_path / "strip.png", tmp_path / "banner.png", "-o", tmp_path / "o", "--max-size", 80
    )
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


# --- translate ----------------------------------------------------------------------


@pytest.fixture
def photos(tmp_path, small_run):
    """tmp_path/photos: three images of the run's domain A."""
    shutil.copytree(small_run.parent / "A", tmp_path / "photos")
    return tmp_path / "photos"


@pytest.mark.parametrize("how", ["symlink", "dotdot"])
def test_an_output_that_resolves_to_the_input_folder_is_refused(small_run, photos, tmp_path, how):
    if how == "symlink":
        output = tmp_path / "link"
        output.symlink_to(photos)
    else:
        (photos / "sub").mkdir()
        output = photos / "sub" / ".."
    before = tree(photos)
    message = one_line_error(translate(small_run, photos, "--output", output))
    assert_says(message, f"{output / '0.png'} would overwrite its input {photos / '0.png'}", "choose another --output")
    assert tree(photos) == before


def test_an_output_link_into_the_inputs_is_refused_for_single_files(small_run, photos, tmp_path):
    (tmp_path / "out").symlink_to(photos)
    before = tree(photos)
    message = one_line_error(translate(small_run, photos / "1.png", "--output", tmp_path / "out"))
    assert "would overwrite its input" in message
    assert tree(photos) == before


def test_existing_outputs_are_kept_unless_overwrite(small_run, photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "1.png").write_bytes(b"an image the user made")
    result = translate(small_run, photos, "--output", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"translated 2 images into {out}\n"
    assert result.stderr.splitlines()[-1] == (
        f"skipped 1 of 3 inputs: their output already exists in {out}; pass --overwrite to replace them"
    )
    assert (out / "1.png").read_bytes() == b"an image the user made"
    first = tree(out)
    result = translate(small_run, photos, "--output", out)  # a second run: nothing to do, nothing touched
    assert result.exit_code == 0 and result.stdout == f"translated 0 images into {out}\n"
    assert "skipped 3 of 3 inputs: their output already exists" in result.stderr
    assert tree(out) == first
    result = translate(small_run, photos, "--output", out, "--overwrite")
    assert result.exit_code == 0 and result.stdout == f"translated 3 images into {out}\n"
    assert "already exists" not in result.stderr
    assert Image.open(out / "1.png").size == (28, 24)


def test_one_image_is_said_in_the_singular(small_run, photos, tmp_path):
    result = translate(small_run, photos / "1.png", "--output", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"translated 1 image into {tmp_path / 'out'}\n"  # was "translated 1 images"


def test_a_second_run_into_a_nested_output_does_not_translate_its_own_outputs(small_run, photos):
    result = translate(small_run, photos, "-o", photos / "out")
    assert result.exit_code == 0 and result.stdout == f"translated 3 images into {photos / 'out'}\n"
    result = translate(small_run, photos, "-o", photos / "out", "--overwrite")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"translated 3 images into {photos / 'out'}\n"
    assert sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*")) == [
        "0.png", "1.png", "2.png", "out", "out/0.png", "out/1.png", "out/2.png",
    ]  # fmt: skip
    # An output folder reached through a link is recognised too.
    (photos / "link").symlink_to(photos / "out")
    result = translate(small_run, photos, "-o", photos / "link", "--overwrite")
    assert result.exit_code == 0 and result.stdout == f"translated 3 images into {photos / 'link'}\n"


def test_inputs_inside_the_output_folder_are_refused(small_run, photos, tmp_path):
    message = one_line_error(translate(small_run, photos, "--output", tmp_path, "--format", "jpg"))
    assert_says(message, f"input {photos} is inside the --output folder {tmp_path}", "outside the inputs")
    assert not list(tmp_path.rglob("*.jpg"))


def test_translate_into_an_existing_file_fails_before_any_work(small_run, photos, tmp_path, monkeypatch):
    (tmp_path / "out.png").write_bytes(b"not a folder")

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the --output check")

    monkeypatch.setattr(inference, "load_translator", no_model)
    for output in (tmp_path / "out.png", tmp_path / "out.png" / "below"):
        message = one_line_error(translate(small_run, photos, "--output", output))
        assert_says(message, f"--output {output}: {tmp_path / 'out.png'} is a file, not a folder", "give a folder")
    assert (tmp_path / "out.png").read_bytes() == b"not a folder"


@pytest.fixture(scope="module")
def translator(small_run):
    return inference.load_translator(small_run, "a2b")


def test_temporary_names_are_unique_and_never_another_runs(translator, photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # What the other run writing into the same folder has in progress, under the name the old code used.
    (out / ".0.png.part").write_bytes(b"another run's half-written image")
    outcome = inference.translate_files(translator, [photos], out, log=print)
    assert len(outcome.written) == 3
    assert (out / ".0.png.part").read_bytes() == b"another run's half-written image"
    assert sorted(p.name for p in out.iterdir()) == [".0.png.part", "0.png", "1.png", "2.png"]


@pytest.mark.slow
def test_two_runs_into_one_folder_at_once(small_run, photos, tmp_path):
    out = tmp_path / "out"
    for i in range(17):
        shutil.copy(photos / "0.png", photos / f"copy{i}.png")
    command = [str(Path(sys.executable).parent / "tfcyclegan"), "translate", "--model", str(small_run),
               "--direction", "a2b", str(photos), "-o", str(out), "--batch-size", "1"]  # fmt: skip
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in runs]
    for code, _, err in results:
        assert code == 0, err[-2000:]
    # Between them every image once: none lost to a shared temporary name, none written twice.
    assert sum(int(stdout.split()[1]) for _, stdout, _ in results) == 20
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in photos.iterdir())
    assert all(Image.open(p).size == (28, 24) for p in out.iterdir())


def test_a_failed_write_removes_its_temporary_file(translator, photos, tmp_path, monkeypatch):
    def full(self, fp, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(UserError) as info:
        inference.translate_files(translator, [photos / "0.png"], tmp_path / "out", log=print)
    assert (
        str(info.value)
        == f"cannot write {tmp_path / 'out' / '0.png'}: No space left on device; check the --output folder"
    )
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_translated_images_follow_the_umask(translator, photos, tmp_path, umask, mask):
    umask(mask)
    inference.translate_files(translator, [photos], tmp_path / "out", log=print)
    assert modes(tmp_path / "out") == expected_modes(tmp_path / "out", mask)


def test_translate_a_folder_from_a_run_dir(noise_run, images, tmp_path):
    result = invoke(
        "translate",
        "--model",
        noise_run,
        "--direction",
        "b2a",
        images,
        "--output",
        tmp_path / "out",
        "--format",
        "jpg",
        "--batch-size",
        "3",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"translated 4 images into {tmp_path / 'out'}\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    assert Image.open(tmp_path / "out" / "0.jpg").size == (36, 36)


def test_wrong_model_path(images, tmp_path):
    result = invoke("translate", "--model", tmp_path / "nowhere", "--direction", "a2b", images, "--output", tmp_path)
    assert_one_line_error(result, f"model {tmp_path / 'nowhere'}: no such file or folder", "give a run directory")


def test_a_file_that_is_not_a_model(images, tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    result = invoke("translate", "--model", tmp_path / "notes.txt", "--direction", "a2b", images, "--output", tmp_path)
    assert_one_line_error(result, f"{tmp_path / 'notes.txt'} is not a model", "expected a run directory")


def test_a_tflite_of_another_model(images, tmp_path):
    module = tf.Module()
    module.kernel = tf.Variable(tf.ones((3, 3, 3, 1)))
    module.f = tf.function(
        lambda x: tf.nn.conv2d(x, module.kernel, 1, "SAME"),
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)],
    )
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.f})
    (tmp_path / "other.tflite").write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm")).convert())
    result = invoke(
        "translate", "--model", tmp_path / "other.tflite", "--direction", "a2b", images, "--output", tmp_path
    )
    assert_one_line_error(result, f"{tmp_path / 'other.tflite'} is not a tfcyclegan translator",
                          "to float32 [-1, -1, -1, 1]", "tfcyclegan export RUN_DIR --format tflite")  # fmt: skip


def test_an_unreadable_image(noise_run, tmp_path):
    (tmp_path / "page.jpg").write_text("<html>404 not found</html>")
    result = invoke(
        "translate", "--model", noise_run, "--direction", "a2b", tmp_path / "page.jpg", "--output", tmp_path / "out"
    )
    assert_one_line_error(result, "none of the 1 inputs was translated (1 could not be read", "nothing was written")
    assert f"skipped {tmp_path / 'page.jpg'}: not an image (text/HTML?)" in result.stderr.splitlines()


def test_one_unreadable_image_among_good_ones(noise_run, images, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.png").write_bytes(b"")
    Image.open(images / "0.png").save(tmp_path / "in" / "good.png")
    result = invoke(
        "translate", "--model", noise_run, "--direction", "a2b", tmp_path / "in", "--output", tmp_path / "out"
    )
    assert_one_line_error(result, "1 of 2 inputs were skipped (1 could not be read",
                          f"the other 1 were written to {tmp_path / 'out'}")  # fmt: skip
    assert f"skipped {tmp_path / 'in' / 'empty.png'}: file is empty" in result.stderr.splitlines()
    assert (tmp_path / "out" / "good.png").is_file()


class RunsShellCommand:
    """Unpickling this runs `touch <marker>`: proof that nothing unpickles a model file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_foreign_model_files_are_refused_without_running_them(domains, tmp_path):
    marker = tmp_path / "executed"
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / "garbage run").mkdir()
    (hostile / "garbage run" / "config.json").write_text('{"ngf": 4, oops')
    (hostile / "list run").mkdir()
    (hostile / "list run" / "config.json").write_text("[1, 2, 3]")
    (hostile / "typed run").mkdir()
    (hostile / "typed run" / "config.json").write_text('{"ngf": "four"}')
    (hostile / "not a model").mkdir()
    (hostile / "not a model" / "notes.txt").write_text("hello")
    (hostile / "savedmodel").mkdir()
    (hostile / "savedmodel" / "saved_model.pb").write_bytes(pickle.dumps(RunsShellCommand(marker)))
    for name in ("model.keras", "model.h5"):
        (hostile / name).write_bytes(pickle.dumps(RunsShellCommand(marker)))
    (hostile / "model.tflite").write_text("this is not a flatbuffer\n")

    expected = (
        "expected a run directory (config.json + checkpoints/), a model directory (generator_g.keras), "
        "a SavedModel from `tfcyclegan export`, a .tflite or a PyTorch .pth file"
    )
    cases = {
        "garbage run": f"cannot read {hostile / 'garbage run' / 'config.json'}: Expecting property name enclosed in "
        "double quotes: line 1 column 12 (char 11); is this a tfcyclegan run directory?",
        "list run": f"{hostile / 'list run' / 'config.json'} is not a valid tfcyclegan config (not a JSON object); "
        "give a run directory written by `tfcyclegan fit` (its config.json lists every option)",
        "typed run": f'{hostile / "typed run" / "config.json"} is not a valid tfcyclegan config ("ngf" must be an '
        'integer (got "four"); "domain_a", "domain_b", "data_root" and 24 more keys are missing); give a run '
        "directory written by `tfcyclegan fit` (its config.json lists every option)",
        "not a model": f"{hostile / 'not a model'} is not a model: {expected}",
        "savedmodel": f"cannot load SavedModel {hostile / 'savedmodel'}: ",
        "model.keras": f"{hostile / 'model.keras'} is not a model: {expected}",
        "model.h5": f"{hostile / 'model.h5'} is not a model: {expected}",
        "model.tflite": f"{hostile / 'model.tflite'} is not a model: {expected}",
    }
    for name, message in cases.items():
        result = invoke("translate", "--model", hostile / name, "--direction", "a2b", domains / "clean",
                        "--output", tmp_path / "out")  # fmt: skip
        assert_one_line_error(result, f"error: {message}")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_translate_into_1200_nested_folders(tmp_path):
    run = write_noise_run(tmp_path, 1)
    deep = tmp_path.joinpath(*["x"] * 1200)
    result = invoke("translate", tmp_path / "A" / "0.png", "--model", run, "--direction", "a2b", "--output", deep)
    try:
        assert result.exit_code == 0, result.output[-300:]
        assert [p.name for p in deep.iterdir()] == ["0.png"]
    finally:
        # Removed bottom up here: pytest removes old temporary folders recursively, and 1200
        # levels would stop that with a RecursionError in later runs.
        (deep / "0.png").unlink(missing_ok=True)
        for folder in [deep, *deep.parents]:
            if folder == tmp_path:
                break
            if folder.is_dir():
                folder.rmdir()
