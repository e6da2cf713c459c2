"""Checkpoints to choose from: `fit --keep-every`, `--checkpoint N` in translate / export /
evaluate, and `evaluate --checkpoints all`, round trips on a tiny run."""

import json

import numpy as np
import pytest
import tensorflow as tf
from helpers import invoke, one_line_error
from PIL import Image

from tfcyclegan.runs import checkpoints, rundir
from tfcyclegan.runs.config import TrainConfig
from tfcyclegan.runs.layout import RunLayout
from tfcyclegan.training import train


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory):
    """6 epochs of 2 steps with --keep-every 2: the newest three (steps 8, 10, 12) and epoch 2 (step 4)."""
    root = tmp_path_factory.mktemp("keep")
    rng = np.random.default_rng(0)
    for name in "AB":
        (root / name).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    config = TrainConfig(domain_a=str(root / "A"), domain_b=str(root / "B"), run_dir=str(root / "run"), epochs=6,
                         decay_epoch=3, blocks=1, ngf=4, ndf=4, image_size=32, load_size=32, pool_size=2,
                         steps_per_epoch=2, sample_count=2, keep_every=2, health="off")  # fmt: skip
    train.fit(config, verbose=0)
    return root / "run"


def test_keep_every_keeps_every_nth_epoch_besides_the_newest_three(kept_run):
    folder = RunLayout(kept_run).checkpoints
    assert checkpoints.intact(folder) == [4, 8, 10, 12]
    state = tf.train.get_checkpoint_state(str(folder))
    assert [p.rsplit("-", 1)[1] for p in state.all_model_checkpoint_paths] == ["8", "10", "12"]
    assert sorted(p.name for p in folder.glob("ckpt-6.*")) == []  # epoch 3: deleted


def test_keep_every_goes_on_after_a_resume(kept_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(kept_run, run)
    config = rundir.load_config(run)
    config.run_dir, config.epochs = str(run), 8
    train.fit(config, explicit={"epochs", "run_dir"}, verbose=0)
    # Epochs 7, 8 added: epoch 8 (step 16) is kept for itself, epochs 4 and 2 stay, 5 goes.
    assert checkpoints.intact(RunLayout(run).checkpoints) == [4, 8, 12, 14, 16]


def test_a_chosen_checkpoint_loads_its_own_weights(kept_run):
    reader = tf.train.load_checkpoint(str(RunLayout(kept_run).checkpoints / "ckpt-4"))
    key = "generator_g/conv_in:kernel/.ATTRIBUTES/VARIABLE_VALUE"
    g, _, _ = rundir.load_generators(kept_run, checkpoint=4)
    np.testing.assert_array_equal(rundir.network_variables(g)["conv_in:kernel"].numpy(), reader.get_tensor(key))
    newest, _, _ = rundir.load_generators(kept_run)
    assert not np.array_equal(newest.get_weights()[0], g.get_weights()[0])


def test_a_missing_checkpoint_is_one_line_naming_those_there(kept_run, tmp_path):
    result = invoke("translate", "--model", kept_run, "--direction", "a2b", "--checkpoint", 6,
                    kept_run.parent / "A", "-o", tmp_path / "out")  # fmt: skip
    message = one_line_error(result)
    assert "checkpoint 6" in message and "does not exist" in message and "4, 8, 10, 12" in message


def test_translate_and_export_use_the_chosen_checkpoint(kept_run, tmp_path):
    result = invoke("translate", "--model", kept_run, "--direction", "a2b", "--checkpoint", 4,
                    kept_run.parent / "A", "-o", tmp_path / "out")  # fmt: skip
    assert result.exit_code == 0, result.output
    g, _, _ = rundir.load_generators(kept_run, checkpoint=4)
    image = np.asarray(Image.open(kept_run.parent / "A" / "0.png"), np.float32) / 127.5 - 1
    expected = np.round((np.asarray(g(image[None]))[0] + 1) * 127.5)
    written = np.asarray(Image.open(tmp_path / "out" / "0.png"), np.float32)
    assert np.abs(written - expected).max() <= 1
    result = invoke("export", kept_run, "--format", "keras", "--checkpoint", 4, "-o", tmp_path / "model")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "model" / "metadata.json").read_text())["checkpoint"] == "ckpt-4"


def test_evaluate_scores_every_kept_checkpoint_in_one_table_and_json(kept_run, tmp_path):
    out = tmp_path / "all.json"
    result = invoke("evaluate", kept_run, "--checkpoints", "all", "--split", "train", "--json", out)
    assert result.exit_code == 0, result.output
    table = [line.split() for line in result.stdout.splitlines()]
    assert [row[0] for row in table if row and row[0].isdigit()] == ["4", "8", "10", "12"]
    rows = json.loads(out.read_text())["checkpoints"]
    assert [(r["checkpoint"], r["epoch"]) for r in rows] == [(4, 2.0), (8, 4.0), (10, 5.0), (12, 6.0)]
    assert all(np.isfinite(r["psnr_a"]) and -1 <= r["inversion_a2b"] <= 1 for r in rows)
    # One checkpoint alone scores as its row says.
    single = invoke("evaluate", kept_run, "--checkpoint", 4, "--split", "train", "--json", tmp_path / "one.json")
    assert single.exit_code == 0, single.output
    alone = json.loads((tmp_path / "one.json").read_text())
    assert alone["cycle"]["a"]["psnr"] == pytest.approx(rows[0]["psnr_a"])
