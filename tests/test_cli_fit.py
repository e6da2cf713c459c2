"""`tfcyclegan fit` through the command line, on real Berkeley images."""

import json

import tensorflow as tf
from click.testing import CliRunner
from tfcyclegan_cli.main import main

from tfcyclegan.core.model import LOSS_NAMES


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


def test_resume_flag_without_checkpoint_is_an_error(tmp_path):
    result = CliRunner().invoke(main, ["fit", "--resume", "--run-dir", str(tmp_path / "none")])
    assert result.exit_code == 1 and "has no checkpoint to resume from" in result.output
