"""Bad input end to end through the CLI: each problem is one clear line naming the file
and what to do, the run goes on where it can, and no traceback shows without --debug.

Per-file decoding (every reason string) is tested in tests/test_data.py and downloads
(size, SHA-256, archive member paths) in tests/test_datasets.py; this is the user's view.
"""

import errno
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_one_line_error, invoke
from PIL import Image

from tfcyclegan.runs import rundir
from tfcyclegan.runs.layout import RunLayout

TINY = ["--epochs", "1", "--decay-epoch", "0", "--steps-per-epoch", "2", "--ngf", "4", "--ndf", "4",
        "--blocks", "1", "--image-size", "32", "--load-size", "36", "--sample-count", "2"]  # fmt: skip


def noise(width, height, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8))


def encoded(image, fmt):
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


# File name -> reason given for it; every other image in the corpus must train.
UNREADABLE = {
    "zero.jpg": "file is empty",
    "truncated.jpg": "truncated image data",
    "truncated.png": "truncated image data",
    "notes.jpg": "not an image (text/HTML?)",
    "error page.png": "not an image (text/HTML?)",
    "link to itself.jpg": "cannot read file (Too many levels of symbolic links)",
    "locked.png": "permission denied",
}
READABLE = 12


def build_corpus(folder):
    """Every kind of image file a user's folder may hold, good and bad."""
    folder.mkdir()
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(encoded(noise(64, 48), "JPEG")[:400])
    (folder / "truncated.png").write_bytes(encoded(noise(64, 48), "PNG")[:2000])
    (folder / "notes.jpg").write_text("shopping list: film, batteries\n")
    (folder / "error page.png").write_text("<!DOCTYPE html>\n<html><body><h1>403 Forbidden</h1></body></html>\n")
    os.symlink("link to itself.jpg", folder / "link to itself.jpg")
    (folder / "locked.png").write_bytes(encoded(noise(40, 40), "PNG"))
    noise(40, 40).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(np.random.default_rng(1).integers(0, 65536, (40, 40)).astype(np.uint16)).save(folder / "grey16.png")
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (40, 40, 4), np.uint8)).save(folder / "rgba.png")
    noise(40, 40, 3).convert("P").save(folder / "palette.gif")
    frames = [noise(40, 40, seed).convert("P") for seed in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    noise(1, 1).save(folder / "one pixel.png")
    noise(20, 20).save(folder / "smaller than the crop.png")
    Image.linear_gradient("L").resize((6000, 4000)).convert("RGB").save(folder / "6000x4000.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    noise(48, 40).save(folder / "exif rotated.jpg", exif=exif)
    for name in ("with space.png", "co:lon.png", "zebra \U0001f993.png"):
        noise(40, 40, 4).save(folder / name)
    os.symlink(".", folder / "loop")  # a folder link back to its parent: walked once
    (folder / "empty folder").mkdir()
    return folder


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    root = tmp_path_factory.mktemp("robustness")
    build_corpus(root / "corpus")
    (root / "clean").mkdir()
    for i in range(3):
        noise(40, 40, 10 + i).save(root / "clean" / f"{i}.png")
    (root / "empty").mkdir()
    (root / "no images").mkdir()
    (root / "no images" / "readme.txt").write_text("the photos are elsewhere\n")
    return root


@pytest.fixture(scope="module")
def locked(domains):
    """corpus/locked.png refuses to be read. Tests run as root, where chmod 000 does not
    bite, so the read itself is refused."""
    path = domains / "corpus" / "locked.png"
    os_open = os.open

    def refuse(name, *args, **kwargs):
        if Path(name) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(name))
        return os_open(name, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "open", refuse)
        yield path


@pytest.fixture(scope="module")
def corpus_run(domains, locked):
    run_dir = domains / "run"
    result = invoke("fit", "--domain-a", domains / "corpus", "--domain-b", domains / "clean",
                    "--run-dir", run_dir, *TINY)  # fmt: skip
    return result, run_dir


def test_fit_on_the_corpus_lists_each_unreadable_file_once_and_trains_on_the_rest(domains, corpus_run):
    result, run_dir = corpus_run
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipping ")]
    expected = sorted(f"skipping {domains / 'corpus' / name}: {reason}" for name, reason in UNREADABLE.items())
    assert sorted(skipped) == expected
    lines = result.stderr.splitlines()
    assert (
        f"warning: domain A: {len(UNREADABLE)} of {READABLE + len(UNREADABLE)} files skipped (listed above); "
        "remove or replace them"
    ) in lines
    assert (
        f"note: domain A: 2 images are smaller than --image-size 32 and are upscaled, the smallest "
        f"{domains / 'corpus' / 'one pixel.png'} (1x1); remove them if that is not wanted"
    ) in lines
    assert f"A: {READABLE} images from {domains / 'corpus'}" in result.stderr
    assert result.stdout.rstrip().endswith(f"done: {run_dir} (checkpoints, logs, losses.png, samples/)")
    assert tf.train.latest_checkpoint(RunLayout(run_dir).checkpoints).endswith("ckpt-2")


def test_check_data_reports_every_problem_without_training(domains, locked):
    result = invoke("check-data", domains / "corpus")
    assert result.exit_code == 0, result.output
    for name, reason in UNREADABLE.items():
        assert result.stdout.count(f"{domains / 'corpus' / name}: {reason}\n") == 1
    total = READABLE + len(UNREADABLE)
    assert result.stdout.splitlines()[-1] == (
        f"{READABLE} readable, {len(UNREADABLE)} unreadable of {total} image files under {domains / 'corpus'}"
    )
    assert_one_line_error(invoke("check-data", domains / "empty"), f"{domains / 'empty'} holds no image files")


def test_unusable_domain_folders_are_one_line_errors(domains, tmp_path):
    cases = [
        (
            domains / "empty",
            f"{domains / 'empty'} holds no image files (.jpg, .jpeg, .png, .bmp, .gif, .webp); "
            "point it at a folder of images",
        ),
        (domains / "no images", f"{domains / 'no images'} holds no image files"),
        (domains / "missing", f"'{domains / 'missing'}' is neither an existing folder nor a named domain"),
    ]
    for folder, message in cases:
        result = invoke("fit", "--domain-a", folder, "--domain-b", domains / "clean", "--run-dir", tmp_path / "r",
                        *TINY)  # fmt: skip
        assert_one_line_error(result, message)
    assert not (tmp_path / "r").exists()


def test_malformed_options_are_usage_errors(tmp_path):
    for extra, message in (
        (["--epochs", "many"], "'many' is not a valid integer"),
        (["--learning-rate", "1"], "No such option '--learning-rate'"),
    ):
        result = invoke("fit", "--run-dir", tmp_path / "r", *extra)
        assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_resume_with_other_options_says_what_differs(corpus_run):
    _, run_dir = corpus_run
    result = invoke("fit", "--run-dir", run_dir, "--resume", "--ngf", "8", "--image-size", "64", "--load-size", "72")
    assert_one_line_error(
        result,
        f"error: {run_dir} was trained with other options (--image-size: run has 32, given 64; --load-size: run has "
        "36, given 72; --ngf: run has 4, given 8); drop those options to resume, or pass a new --run-dir",
    )


def test_disk_full_then_divergence_keep_the_last_good_checkpoint(domains, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    args = ["fit", "--domain-a", domains / "clean", "--domain-b", domains / "clean", "--run-dir", run_dir,
            *TINY, "--epochs", "2"]  # fmt: skip
    write = tf.train.Checkpoint._write  # what tf.train.CheckpointManager.save calls
    calls = []

    def disk_full_on_second_save(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(self, *a, **k)

    with monkeypatch.context() as patch:
        patch.setattr(tf.train.Checkpoint, "_write", disk_full_on_second_save)
        result = invoke(*args)
    first = run_dir / "checkpoints" / "ckpt-2"
    assert_one_line_error(
        result,
        f"error: cannot save checkpoint 4 in {run_dir / 'checkpoints'}: No space left on device; the last complete "
        f"checkpoint {first} is intact; free some disk space, then resume with: tfcyclegan fit --run-dir {run_dir}",
    )
    assert "warning: domains A and B are the same images" in result.stderr
    assert tf.train.latest_checkpoint(run_dir / "checkpoints") == str(first)
    rundir.load_generators(run_dir)

    # Resumed with a learning rate far too large, the run diverges at once and says so.
    result = invoke("fit", "--run-dir", run_dir, "--lr", "1e30")
    assert "resuming with --lr 1e+30 (the run had 0.0002)" in result.stderr
    assert_one_line_error(result, "error: training diverged: ")
    assert (
        f"at step 4; the last good checkpoint {first} is kept; resume from it with a lower --lr: "
        f"tfcyclegan fit --run-dir {run_dir} --lr 1e+29" in result.stderr
    )
    assert tf.train.latest_checkpoint(run_dir / "checkpoints") == str(first)
    rundir.load_generators(run_dir)


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


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(domains, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("tfcyclegan.data.imagefiles.scan_images", boom)
    assert_one_line_error(
        invoke("check-data", domains / "clean"),
        "error: unexpected RuntimeError: boom; this is a bug: rerun with `tfcyclegan --debug ...` for the traceback "
        "and report it",
    )
    result = invoke("--debug", "check-data", domains / "clean")
    assert isinstance(result.exception, RuntimeError)


def test_ctrl_c_outside_training_exits_130_without_a_traceback(domains, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("tfcyclegan.data.imagefiles.scan_images", interrupt)
    result = invoke("check-data", domains / "clean")
    assert result.exit_code == 130 and result.stderr == "\ninterrupted\n" and "Traceback" not in result.output
