"""RunLayout names every path of a run directory as docs/robustness.md and the README describe them."""

import tensorflow as tf

from tfcyclegan.runs import checkpoints
from tfcyclegan.runs.layout import CHECKPOINT_PREFIX, MAX_TO_KEEP, RunLayout, checkpoint_number
from tfcyclegan.util.runmarker import is_run_dir


def test_every_path_of_a_run_is_where_the_documents_say(tmp_path):
    layout = RunLayout(tmp_path)
    named = {
        layout.config: "config.json",
        layout.checkpoints: "checkpoints",
        layout.checkpoint_state: "checkpoints/checkpoint",
        layout.checkpoint(12): "checkpoints/ckpt-12",
        layout.lock: "fit.lock",
        layout.logs: "logs",
        layout.losses_csv: "losses.csv",
        layout.losses_png: "losses.png",
        layout.sample(3): "samples/epoch_003.png",
        layout.sample(120): "samples/epoch_120.png",
    }
    for path, relative in named.items():
        assert path == tmp_path / relative


def test_checkpoint_numbers_are_read_back_from_their_prefix_only(tmp_path):
    assert checkpoint_number(RunLayout(tmp_path).checkpoint(40)) == 40
    for other in ("ckpt", "ckpt-", "ckpt-4.index", "model-4", "ckpt-x"):
        assert checkpoint_number(tmp_path / other) is None


def test_the_checkpoint_manager_keeps_max_to_keep_checkpoints_where_the_layout_finds_them(tmp_path):
    layout = RunLayout(tmp_path)
    step = tf.Variable(0)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(step=step), layout.checkpoints, MAX_TO_KEEP, checkpoint_name=CHECKPOINT_PREFIX
    )
    for number in range(1, 6):
        step.assign(number)
        assert manager.save(checkpoint_number=number) == str(layout.checkpoint(number))
    kept = list(range(5, 5 - MAX_TO_KEEP, -1))
    assert checkpoints.candidates(layout.checkpoints) == kept
    assert checkpoints.newest_intact(layout.checkpoints).path == str(layout.checkpoint(5))
    assert checkpoints.listed_newest(layout.checkpoints) == 5


def test_a_run_directory_is_told_by_its_config_beside_its_checkpoints(tmp_path):
    layout = RunLayout(tmp_path)
    assert not is_run_dir(tmp_path)
    layout.checkpoints.mkdir()
    assert not is_run_dir(tmp_path)
    layout.config.write_text("{}")
    assert is_run_dir(tmp_path)
