"""train.fit end to end on tiny models: artifacts, exact resume, interruption, config checks."""

import csv
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcyclegan import callbacks, export, train
from tfcyclegan.config import TrainConfig
from tfcyclegan.errors import UserError
from tfcyclegan.model import LOSS_NAMES


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("domains")
    rng = np.random.default_rng(0)
    for name, count in (("a", 6), ("b", 4)):
        (root / name).mkdir()
        for i in range(count):
            pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"img {i}:x.png")
    return root


def tiny(folders, run_dir, **overrides):
    values = dict(
        domain_a=str(folders / "a"),
        domain_b=str(folders / "b"),
        run_dir=str(run_dir),
        epochs=2,
        decay_epoch=1,
        blocks=1,
        ngf=4,
        ndf=4,
        image_size=32,
        load_size=36,
        pool_size=3,
        steps_per_epoch=3,
        sample_count=2,
        log_every=1,
    )
    values.update(overrides)
    return TrainConfig(**values)


def full_state(run_dir):
    """Every variable of the newest checkpoint, by name."""
    reader = tf.train.load_checkpoint(str(run_dir / train.CHECKPOINT_DIR))
    names = reader.get_variable_to_dtype_map()
    return {k: reader.get_tensor(k) for k, dtype in names.items() if dtype.is_numeric and "save_counter" not in k}


def test_fit_writes_every_artifact(folders, tmp_path):
    run_dir = tmp_path / "run"
    train.fit(tiny(folders, run_dir), verbose=0)
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["ngf"] == 4 and saved["domain_a"] == str(folders / "a")
    assert tf.train.latest_checkpoint(run_dir / "checkpoints").endswith("ckpt-6")
    with open(run_dir / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"] and set(LOSS_NAMES) <= set(rows[0])
    assert (run_dir / "losses.png").stat().st_size > 0
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    grid = np.asarray(Image.open(run_dir / "samples" / "epoch_001.png"))
    assert grid.shape == (2 * 32 + 4, 4 * 32 + 3 * 4, 3)  # 2 rows; real A | G(A) | real B | F(B)
    tags = set()
    for event_file in (run_dir / "logs").iterdir():
        for record in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags |= {v.tag for v in record.summary.value}
    assert set(LOSS_NAMES) | {"learning_rate"} <= tags
    assert any("real|translated|reconstructed" in t for t in tags)


@pytest.fixture(scope="module")
def straight(folders, tmp_path_factory):
    """An uninterrupted 2-epoch run that resumed runs must reproduce."""
    run_dir = tmp_path_factory.mktemp("straight")
    train.fit(tiny(folders, run_dir), verbose=0)
    return run_dir


def test_resume_after_an_epoch_matches_an_uninterrupted_run(folders, straight, tmp_path, monkeypatch):
    resumed = tmp_path / "resumed"
    save = callbacks.CheckpointSaver.on_epoch_end

    def stop_after_first_epoch(self, epoch, logs=None):
        save(self, epoch, logs)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(callbacks.CheckpointSaver, "on_epoch_end", stop_after_first_epoch)
        train.fit(tiny(folders, resumed), verbose=0)
    assert tf.train.latest_checkpoint(resumed / "checkpoints").endswith("ckpt-3")
    train.fit(tiny(folders, resumed), verbose=0)

    a, b = full_state(straight), full_state(resumed)
    assert a.keys() == b.keys()
    for key in a:  # weights, Adam moments, step counters and both pools
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_interrupt_mid_epoch_saves_and_resume_finishes_the_same_batches(folders, straight, tmp_path, monkeypatch):
    resumed = tmp_path / "resumed"

    class Interrupt(callbacks.Throughput):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.generator_optimizer.iterations.numpy() == 4:
                raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(callbacks, "Throughput", Interrupt)
        train.fit(tiny(folders, resumed), verbose=0)
    assert tf.train.latest_checkpoint(resumed / "checkpoints").endswith("ckpt-4")
    train.fit(tiny(folders, resumed), verbose=0)
    a, b = full_state(straight), full_state(resumed)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_resume_with_different_options_says_what_differs(folders, tmp_path):
    run_dir = tmp_path / "run"
    train.fit(tiny(folders, run_dir, epochs=1, decay_epoch=0), verbose=0)
    with pytest.raises(UserError, match="--ngf: run has 4, given 8"):
        train.fit(tiny(folders, run_dir, epochs=1, decay_epoch=0, ngf=8), explicit={"ngf"}, verbose=0)


def test_finished_run_is_not_trained_again(folders, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train.fit(tiny(folders, run_dir, epochs=1, decay_epoch=0), verbose=0)
    train.fit(tiny(folders, run_dir, epochs=1, decay_epoch=0), verbose=0)
    assert "already finished" in capsys.readouterr().out


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(folders, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    good = {}

    class RuinSecondEpoch(callbacks.Throughput):
        # Epoch 1 (steps 1-3) trains and is saved; then G's weights turn NaN, as after a blow-up.
        def on_train_batch_begin(self, batch, logs=None):
            if self.model.generator_optimizer.iterations.numpy() == 3 and not good:
                good.update(full_state(run_dir))
                weights = self.model.generator_g.trainable_variables[0]
                weights.assign(tf.fill(weights.shape, float("nan")))

    monkeypatch.setattr(callbacks, "Throughput", RuinSecondEpoch)
    with pytest.raises(UserError, match="training diverged: .* at step .*lower --lr"):
        train.fit(tiny(folders, run_dir), verbose=0)
    assert tf.train.latest_checkpoint(run_dir / "checkpoints").endswith("ckpt-3")
    kept = full_state(run_dir)
    assert good and kept.keys() == good.keys()
    for key in good:
        np.testing.assert_array_equal(kept[key], good[key], err_msg=key)
        assert np.all(np.isfinite(kept[key])), key


def test_a_run_that_diverges_from_the_start_saves_nothing(folders, tmp_path):
    # lr so large the weights blow up in the first epoch.
    config = tiny(folders, tmp_path / "diverge", lr=1e30, lambda_cycle=1e30)
    with pytest.raises(UserError, match="training diverged: .* at step .*lower --lr"):
        train.fit(config, verbose=0)
    assert tf.train.latest_checkpoint(tmp_path / "diverge" / "checkpoints") is None


def test_load_generators_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="not a tfcyclegan run directory"):
        train.load_generators(tmp_path)
    TrainConfig().save(tmp_path / "config.json")
    with pytest.raises(UserError, match="no checkpoint yet"):
        train.load_generators(tmp_path)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_with_float32_variables_and_loads_in_float32(folders, tmp_path, precision):
    run_dir = tmp_path / "run"
    train.fit(tiny(folders, run_dir, epochs=1, decay_epoch=0, precision=precision), verbose=0)
    with open(run_dir / "losses.csv") as f:
        row = next(csv.DictReader(f))
    assert all(np.isfinite(float(row[name])) for name in LOSS_NAMES)
    reader = tf.train.load_checkpoint(str(run_dir / train.CHECKPOINT_DIR))
    dtypes = reader.get_variable_to_dtype_map()
    assert {d for d in dtypes.values() if d.is_floating} == {tf.float32}  # no half-precision variable saved
    g, _, _ = train.load_generators(run_dir)  # a float32 model
    assert g.compute_dtype == "float32" and g(np.zeros((1, 32, 32, 3), "float32")).dtype == tf.float32
    if precision == "mixed_bfloat16":
        # The export path writes float32 graphs whatever the run trained in.
        result = export.export(run_dir, "savedmodel", output=tmp_path / "exported", log=lambda message: None)
        saved = tf.train.load_checkpoint(str(result.path / "variables" / "variables")).get_variable_to_dtype_map()
        assert {d for d in saved.values() if d.is_floating} == {tf.float32}
        x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
        loaded = tf.saved_model.load(str(result.path))
        y = loaded.a2b(x)
        # A bfloat16 graph would be off by ~1e-2.
        assert y.dtype == tf.float32 and np.abs(y.numpy() - g(x).numpy()).max() < 1e-5


def test_load_generators_restores_the_trained_weights(folders, straight):
    """The generators a run dir hands to translate/export/evaluate are the trained ones."""
    g, f, _ = train.load_generators(straight)
    config = TrainConfig.load(straight / train.CONFIG_FILE)
    model = train.build_model(config, steps_per_epoch=3)
    train.make_checkpoint(model).restore(tf.train.latest_checkpoint(straight / train.CHECKPOINT_DIR)).assert_consumed()
    for trained, loaded in zip(model.generator_g.weights + model.generator_f.weights, g.weights + f.weights):
        np.testing.assert_array_equal(loaded.numpy(), trained.numpy())
