"""Ground-truth metric, and `tfcyclegan evaluate` on a tiny trained run over the demo domains."""

import json
import math
import socket

import numpy as np
import pytest
from click.testing import CliRunner
from tfcyclegan_cli.main import main

from tfcyclegan import demo, evaluate, inference, metrics, train
from tfcyclegan.config import TrainConfig
from tfcyclegan.errors import UserError


def _demo_pair(count=6, size=32):
    from tfcyclegan import data

    seeds = [demo.SEED_OFFSETS["testA"] + i for i in range(count)]
    flat = data.to_float(np.stack([demo.render(s, size, striped=False) for s in seeds]))
    striped = data.to_float(np.stack([demo.render(s, size, striped=True) for s in seeds]))
    return flat, striped


def test_identity_translator_scores_the_baseline_exactly():
    flat, striped = _demo_pair()
    m = metrics.ground_truth_metrics(flat, flat.copy(), striped)
    assert m["l1"] == m["baseline_l1"] > 0 and m["psnr"] == m["baseline_psnr"] and m["l1_ratio"] == 1.0


def test_oracle_scores_zero_l1_and_infinite_psnr():
    flat, striped = _demo_pair()
    m = metrics.ground_truth_metrics(flat, striped.copy(), striped)
    assert m["l1"] == 0.0 and m["psnr"] == math.inf and m["l1_ratio"] == math.inf
    assert json.loads(evaluate.to_json({"psnr": m["psnr"]})) == {"psnr": "inf"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    config = TrainConfig(
        domain_a="demo:flat", domain_b="demo:striped", data_root=str(root / "data"), run_dir=str(root / "run"),
        epochs=1, decay_epoch=0, steps_per_epoch=2, image_size=32, load_size=36, ngf=4, ndf=4, blocks=1,
        sample_count=1,
    )  # fmt: skip
    return train.fit(config, verbose=0)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No network and an empty Keras weights cache: the ImageNet download must fail, fast."""

    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(metrics, "INCEPTION_CACHE_DIR", str(tmp_path / "keras"))
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)


@pytest.fixture
def classifier_cache(tmp_path_factory, monkeypatch):
    # One cache for the module: the classifier is trained once, then read back.
    monkeypatch.setenv("TFCYCLEGAN_CACHE", str(tmp_path_factory.getbasetemp() / "evaluate-cache"))


def test_cli_writes_every_section_and_fid_is_unavailable_offline(run_dir, offline, classifier_cache, tmp_path):
    out = tmp_path / "result.json"
    data_root = str(run_dir.parent / "data")
    result = CliRunner().invoke(main, ["evaluate", str(run_dir), "--data-root", data_root, "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["split"] == "test" and report["image_size"] == 32 and report["domain_a"]["images"] == 50
    assert report["domain_b"]["images_from"] == "test"
    assert report["directions"] == ["a2b", "b2a"] and report["missing_directions"] == {}
    for side in ("a", "b"):
        assert set(report["cycle"][side]) == {"l1", "psnr", "ssim"}
    verdict = report["classifier"]
    assert 0 <= verdict["accuracy"] <= 1 and verdict["weights"].endswith(".weights.h5")
    if verdict["meaningful"]:
        assert 0 <= verdict["fooling_a2b"] <= 1 and 0 <= verdict["fooling_b2a"] <= 1
    else:
        assert "not meaningful" in verdict["unavailable"]
    assert "network disabled" in report["fid_kid"]["unavailable"]
    for direction in ("a2b", "b2a"):
        gt = report["ground_truth"][direction]
        assert {"l1", "psnr", "baseline_l1", "baseline_psnr", "l1_ratio"} <= set(gt) and gt["baseline_l1"] > 0
    assert "FID / KID: unavailable" in result.output and "ground truth" in result.output


class _ColourFeatures:
    """A cheap stand-in for InceptionFeatures: per-channel mean and std of each image."""

    source, input_size = "colour statistics", 0

    def __init__(self, weights):
        pass

    def __call__(self, images):
        return np.concatenate([images.mean(axis=(1, 2)), images.std(axis=(1, 2))], axis=1).astype(np.float64)


def test_a_model_with_one_direction_is_evaluated_where_it_can_be(run_dir, classifier_cache, monkeypatch):
    load = inference.load_translator

    def a2b_only(path, direction):
        if direction == "b2a":
            raise UserError(f"{path} translates a2b, not b2a")
        return load(path, direction)

    monkeypatch.setattr(inference, "load_translator", a2b_only)
    monkeypatch.setattr(metrics, "InceptionFeatures", _ColourFeatures)
    report = evaluate.evaluate(run_dir, log=lambda message: None)  # the run's own --data-root by default
    assert report["domain_a"]["root"].startswith(str(run_dir.parent / "data"))
    assert report["directions"] == ["a2b"] and "not b2a" in report["missing_directions"]["b2a"]
    assert "needs both directions" in report["cycle"]["unavailable"]
    assert report["classifier"]["cached"]
    if report["classifier"]["meaningful"]:
        assert report["classifier"]["fooling_b2a"] is None and report["classifier"]["fooling_a2b"] is not None
    fid_kid = report["fid_kid"]
    assert fid_kid["b2a"] is None and fid_kid["a2b"]["fid"] >= 0 and fid_kid["identity_a2b"]["fid"] > 0
    assert report["ground_truth"]["b2a"] is None and report["ground_truth"]["a2b"]["baseline_l1"] > 0
    assert "b2a: not evaluated" in evaluate.format_table(report)
    json.loads(evaluate.to_json(report))


def test_unknown_domains_and_bad_split_are_user_errors(run_dir, tmp_path):
    with pytest.raises(UserError, match="--split"):
        evaluate.evaluate(run_dir, split="val")
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "missing")])
    assert result.exit_code == 1 and result.output.startswith("error:") and "no such file" in result.output


def test_evaluate_sees_the_trained_weights_of_a_run_dir(run_dir):
    import tensorflow as tf

    config = TrainConfig.load(run_dir / train.CONFIG_FILE)
    model = train.build_model(config, 1)
    train.make_checkpoint(model).restore(tf.train.latest_checkpoint(run_dir / train.CHECKPOINT_DIR)).expect_partial()
    flat, _ = _demo_pair(count=2)
    trained = model.generator_g(flat, training=False).numpy()
    np.testing.assert_allclose(inference.load_translator(run_dir, "a2b")(flat), trained, atol=1e-5)
