"""`tfcyclegan fit` through the command line: real Berkeley images, a corpus of every kind of
bad file (each one clear line, the run going on where it can), usage errors for bad options."""

import errno
import json
import os

import pytest
import tensorflow as tf
from click.testing import CliRunner
from helpers import READABLE, UNREADABLE, assert_one_line_error, invoke
from tfcyclegan_cli.main import main

from tfcyclegan.core.model import LOSS_NAMES
from tfcyclegan.runs import rundir
from tfcyclegan.runs.layout import RunLayout


def test_fit_on_ukiyoe2photo_writes_every_artifact(shared_datasets, tmp_path):
    run_dir = tmp_path / "run"
    args = [
        "fit", "--domain-a", "photos", "--domain-b", "ukiyoe", "--data-root", str(shared_datasets),
        "--run-dir", str(run_dir), "--image-size", "64", "--load-size", "72", "--epochs", "2",
        "--decay-epoch", "1", "--steps-per-epoch", "3", "--ngf", "8", "--ndf", "8", "--blocks", "1",
        "--log-every", "1",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "* image_size" in result.output and "  lr " in result.output  # options printed, non-defaults marked
    config = json.loads((run_dir / "config.json").read_text())
    assert config["domain_a"] == "photos" and config["image_size"] == 64
    assert tf.train.latest_checkpoint(run_dir / "checkpoints") is not None
    for name in ("losses.csv", "losses.png", "samples/epoch_001.png", "samples/epoch_002.png"):
        assert (run_dir / name).stat().st_size > 0, name
    tags = set()
    for event_file in (run_dir / "logs").iterdir():
        for record in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags |= {v.tag for v in record.summary.value}
    assert set(LOSS_NAMES) <= tags


def test_fit_bad_options_are_one_line_errors(tmp_path):
    runner = CliRunner()
    cases = [  # options out of range are usage errors (2); missing data is a runtime failure (1)
        (["--epochs", "-1"], "--epochs must be >= 1", 2),
        (["--epochs", "5", "--decay-epoch", "9"], "--decay-epoch must be between 0 and --epochs=5", 2),
        (["--image-size", "30", "--load-size", "30"], "--image-size must be a multiple of 4", 2),
        (["--batch-size", "0"], "--batch-size must be >= 1", 2),
        (["--domain-a", str(tmp_path / "nope")], "is neither an existing folder nor a named", 1),
        (["--domain-a", "horses", "--domain-b", "ukiyoe"], "horses", 1),
    ]
    for extra, message, code in cases:
        result = runner.invoke(main, ["fit", "--run-dir", str(tmp_path / "run"), *extra])
        assert result.exit_code == code, (extra, result.output)
        lines = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and message in lines[0], (extra, result.output)
        assert "Traceback" not in result.output


def test_resume_flag_without_a_run_is_an_error(tmp_path):
    result = CliRunner().invoke(main, ["fit", "--resume", "--run-dir", str(tmp_path / "none")])
    assert result.exit_code == 1 and "has no config.json, so no run to resume" in result.output


TINY = ["--epochs", "1", "--decay-epoch", "0", "--steps-per-epoch", "2", "--ngf", "4", "--ndf", "4",
        "--blocks", "1", "--image-size", "32", "--load-size", "36", "--sample-count", "2"]  # fmt: skip


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


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--lr", "nan", "--lr must be a finite number (got nan)"),
        ("--lambda-cycle", "inf", "--lambda-cycle must be a finite number (got inf)"),
        ("--beta1", "1", "--beta1 must be < 1 (got 1.0)"),
        ("--blocks", "1000000", "--blocks must be <= 32 (got 1000000)"),
    ],
)
def test_non_finite_and_absurd_options_are_usage_errors(tmp_path, option, value, message):
    result = invoke("fit", "--run-dir", tmp_path / "r", option, value)
    assert_one_line_error(result, f"error: {message}", code=2)


def test_a_finished_demo_run_ends_with_its_ground_truth_line(tmp_path):
    # `make demo` ended with "done: runs/demo (...)": the ratios the README promises were
    # printed only by a separate `tfcyclegan evaluate`.
    from tfcyclegan.quality import evaluate

    run_dir = tmp_path / "run"
    args = [
        "fit", "--domain-a", "demo:flat", "--domain-b", "demo:striped", "--data-root", tmp_path / "data",
        "--run-dir", run_dir, "--image-size", "32", "--load-size", "32", "--ngf", "4", "--ndf", "4",
        "--blocks", "1", "--disc-layers", "2", "--epochs", "1", "--decay-epoch", "0", "--steps-per-epoch", "2",
    ]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    gt = evaluate.evaluate(run_dir, sections=("ground_truth",), log=lambda message: None)["ground_truth"]
    a2b, b2a = gt["a2b"], gt["b2a"]
    expected = (
        f"ground truth on 50 + 50 test images: G(a) {a2b['l1_ratio']:.2f}x closer to the true demo:striped image "
        f"than its input (mean L1 {a2b['l1']:.4f} vs {a2b['baseline_l1']:.4f}); F(b) {b2a['l1_ratio']:.2f}x closer "
        f"to the true demo:flat image than its input (mean L1 {b2a['l1']:.4f} vs {b2a['baseline_l1']:.4f})"
    )
    assert result.stdout.splitlines()[-2:] == [f"done: {run_dir} (checkpoints, logs, losses.png, samples/)", expected]
    # Run again, finished: it says so, and the same line again.
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-2:] == [f"{run_dir} already finished all 1 epochs", expected]
