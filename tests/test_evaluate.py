"""Ground-truth metric, and `tfcyclegan evaluate` on a tiny trained run over the demo domains."""

import json
import math
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from helpers import assert_one_line_error, assert_says, invoke, tiny_config, write_noise_run
from PIL import Image
from tfcyclegan_cli.evaluate import format_table

from tfcyclegan import inference
from tfcyclegan.data import datasets, demo, imagefiles
from tfcyclegan.quality import classifier, evaluate, metrics
from tfcyclegan.runs import rundir
from tfcyclegan.runs.config import TrainConfig
from tfcyclegan.runs.layout import RunLayout
from tfcyclegan.training import train
from tfcyclegan.util.errors import UserError


def _demo_pair(count=6, size=32):
    from tfcyclegan.data import imagefiles

    seeds = [demo.SEED_OFFSETS["testA"] + i for i in range(count)]
    flat = imagefiles.to_float(np.stack([demo.render(s, size, striped=False) for s in seeds]))
    striped = imagefiles.to_float(np.stack([demo.render(s, size, striped=True) for s in seeds]))
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
    config = tiny_config(data_root=root / "data", run_dir=root / "run", steps_per_epoch=2, load_size=36)
    return train.fit(config, verbose=0)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No network and an empty Keras weights cache: the ImageNet download must fail, fast."""

    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)


@pytest.fixture(scope="module")
def warm_classifier_cache(run_dir, tmp_path_factory):
    """A classifier cache holding the run's domain classifier, trained here by a first evaluation,
    so every test that uses it finds it cached whichever runs first or alone."""
    cache = tmp_path_factory.mktemp("evaluate-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFCYCLEGAN_CACHE", str(cache))
        summary = evaluate.evaluate(run_dir, features=_ColourFeatures(), log=lambda message: None)
    assert not summary["classifier"]["cached"] and summary["classifier"]["weights"]
    return cache


@pytest.fixture
def classifier_cache(warm_classifier_cache, monkeypatch):
    monkeypatch.setenv("TFCYCLEGAN_CACHE", str(warm_classifier_cache))


def test_cli_writes_every_section_and_fid_is_unavailable_offline(run_dir, offline, classifier_cache, tmp_path):
    out = tmp_path / "result.json"
    data_root = str(run_dir.parent / "data")
    result = invoke("evaluate", run_dir, "--data-root", data_root, "--json", out)
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert summary["split"] == "test" and summary["image_size"] == 32 and summary["domain_a"]["images"] == 50
    assert summary["domain_b"]["images_from"] == "test"
    assert summary["directions"] == ["a2b", "b2a"] and summary["missing_directions"] == {}
    for side in ("a", "b"):
        assert set(summary["cycle"][side]) == {"l1", "psnr", "ssim"}
    verdict = summary["classifier"]
    # Flat and striped shapes are easy to tell apart: the classifier qualifies, so fooling rates are reported.
    assert 0.9 <= verdict["accuracy"] <= 1 and verdict["weights"].endswith(".weights.h5") and verdict["meaningful"]
    assert 0 <= verdict["fooling_a2b"] <= 1 and 0 <= verdict["fooling_b2a"] <= 1
    assert "network disabled" in summary["fid_kid"]["unavailable"]
    for direction in ("a2b", "b2a"):
        gt = summary["ground_truth"][direction]
        assert {"l1", "psnr", "baseline_l1", "baseline_psnr", "l1_ratio"} <= set(gt) and gt["baseline_l1"] > 0
    # The table and the file written are results (stdout); progress and notes go to stderr.
    assert "FID / KID: unavailable" in result.stdout and "ground truth" in result.stdout
    assert result.stdout.endswith(f"wrote {out}\n") and "evaluating " not in result.stdout
    assert f"evaluating {run_dir} on 50 + 50 test images at 32px" in result.stderr.splitlines()


class _ColourFeatures:
    """A cheap stand-in for InceptionFeatures: per-channel mean and std of each image."""

    source, input_size = "colour statistics", 0

    def __call__(self, images):
        return np.concatenate([images.mean(axis=(1, 2)), images.std(axis=(1, 2))], axis=1).astype(np.float64)


def test_a_model_with_one_direction_is_evaluated_where_it_can_be(run_dir, classifier_cache, monkeypatch):
    load = inference.load_translator

    def a2b_only(path, direction, **options):
        if direction == "b2a":
            raise UserError(f"{path} translates a2b, not b2a")
        return load(path, direction, **options)

    monkeypatch.setattr(inference, "load_translator", a2b_only)
    summary = evaluate.evaluate(
        run_dir, features=_ColourFeatures(), log=lambda message: None
    )  # the run's own --data-root by default
    assert summary["domain_a"]["root"].startswith(str(run_dir.parent / "data"))
    assert summary["directions"] == ["a2b"] and "not b2a" in summary["missing_directions"]["b2a"]
    assert "needs both directions" in summary["cycle"]["unavailable"]
    assert summary["classifier"]["cached"] and summary["classifier"]["meaningful"]
    assert summary["classifier"]["fooling_b2a"] is None and 0 <= summary["classifier"]["fooling_a2b"] <= 1
    fid_kid = summary["fid_kid"]
    assert fid_kid["b2a"] is None and fid_kid["a2b"]["fid"] >= 0 and fid_kid["identity_a2b"]["fid"] > 0
    assert summary["ground_truth"]["b2a"] is None and summary["ground_truth"]["a2b"]["baseline_l1"] > 0
    assert "b2a: not evaluated" in format_table(summary)
    json.loads(evaluate.to_json(summary))


def test_unknown_domains_and_bad_split_are_user_errors(run_dir, tmp_path):
    with pytest.raises(UserError, match="--split"):
        evaluate.evaluate(run_dir, split="val")
    assert_one_line_error(invoke("evaluate", tmp_path / "missing"), "no such file")


def test_an_unwritable_json_file_is_a_user_error_and_leaves_nothing_behind(tmp_path):
    summary = {"psnr": math.inf}
    evaluate.write_json(summary, tmp_path / "result.json")
    assert json.loads((tmp_path / "result.json").read_text()) == {"psnr": "inf"}
    with pytest.raises(UserError) as error:
        evaluate.write_json(summary, tmp_path)
    assert_says(str(error.value), f"--json {tmp_path} is a folder, not a regular file", "give a new path")
    with pytest.raises(UserError, match="No such file or directory; choose another --json file$"):
        evaluate.write_json(summary, tmp_path / "missing" / "result.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_the_command_line_takes_the_librarys_constants_without_loading_tensorflow():
    code = (
        "import sys, tfcyclegan_cli.evaluate; "
        "assert not {'tensorflow', 'numpy'} & set(sys.modules), sorted({'tensorflow', 'numpy'} & set(sys.modules))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_evaluate_sees_the_trained_weights_of_a_run_dir(run_dir):
    import tensorflow as tf

    config = TrainConfig.load(RunLayout(run_dir).config)
    model = train.build_model(config, 1)
    rundir.make_checkpoint(model).restore(tf.train.latest_checkpoint(RunLayout(run_dir).checkpoints)).expect_partial()
    flat, _ = _demo_pair(count=2)
    trained = model.generator_g(flat, training=False).numpy()
    np.testing.assert_allclose(inference.load_translator(run_dir, "a2b")(flat), trained, atol=1e-5)


def _colour_folders(root, count):
    """root/a (reddish) and root/b (bluish): `count` noisy 32 x 32 PNGs each, no test split."""
    rng = np.random.default_rng(0)
    for name, colour in (("a", (200, 40, 40)), ("b", (40, 40, 200))):
        (root / name).mkdir()
        for i in range(count):
            pixels = np.clip(rng.normal(colour, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return str(root / "a"), str(root / "b")


def _identity():
    return {d: inference.Translator(lambda x: x, d, "keras", "identity", 10**6) for d in inference.DIRECTIONS}


def test_without_a_test_split_the_classifier_is_scored_on_held_out_images(tmp_path, monkeypatch):
    a, b = _colour_folders(tmp_path, 30)
    monkeypatch.setenv("TFCYCLEGAN_CACHE", str(tmp_path / "cache"))
    trained, load_or_train = [], classifier.load_or_train

    def spy(files_a, files_b, *args, **kwargs):
        trained.extend([*files_a, *files_b])
        return load_or_train(files_a, files_b, *args, **kwargs)

    monkeypatch.setattr(classifier, "load_or_train", spy)
    notes = []
    summary = evaluate.evaluate_translators(
        _identity(), features=_ColourFeatures(), domain_a=a, domain_b=b, image_size=32, log=notes.append
    )
    held = evaluate.held_out(imagefiles.list_images(a)) + evaluate.held_out(imagefiles.list_images(b))
    assert len(held) == 12 and not set(held) & set(trained) and len(trained) == 48
    assert summary["split"] == "held-out 20% of train" and summary["split_requested"] == "test"
    assert summary["domain_a"]["images"] == 6 and summary["domain_a"]["images_from"] == "held-out 20% of train"
    assert summary["classifier"]["scored_on"] == {"a": 6, "b": 6}
    assert (
        "note: domain A (a) has no test split; evaluating on a held-out 20% of its training images (6 of 30), "
        "which the domain classifier does not train on"
    ) in notes
    # --split train evaluates on every training image, but still scores the classifier on the held-out ones.
    summary = evaluate.evaluate_translators(
        _identity(), features=_ColourFeatures(), domain_a=a, domain_b=b, split="train", image_size=32, log=print
    )
    assert summary["split"] == "train" and summary["domain_b"]["images"] == 30
    assert summary["classifier"]["scored_on"] == {"a": 6, "b": 6} and summary["classifier"]["cached"]


def test_an_inaccurate_classifier_reports_no_fooling_rate(tmp_path, monkeypatch):
    a, b = _colour_folders(tmp_path, 30)
    monkeypatch.setenv("TFCYCLEGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(classifier, "MIN_ACCURACY", 1.01)  # a bar no classifier clears
    summary = evaluate.evaluate_translators(
        _identity(), features=_ColourFeatures(), domain_a=a, domain_b=b, image_size=32, log=lambda m: None
    )
    verdict = summary["classifier"]
    assert verdict["meaningful"] is False and verdict["fooling_a2b"] is None and verdict["fooling_b2a"] is None
    assert verdict["unavailable"] == (
        f"fooling rate not meaningful: the classifier tells real A from real B with only "
        f"{verdict['accuracy']:.1%} accuracy (< 101%)"
    )


def test_one_image_per_domain_withholds_the_classifier(tmp_path, monkeypatch):
    a, b = _colour_folders(tmp_path, 1)
    monkeypatch.setattr(classifier, "load_or_train", None)  # must not be trained at all
    summary = evaluate.evaluate_translators(
        _identity(), features=_ColourFeatures(), domain_a=a, domain_b=b, image_size=32, log=print
    )
    verdict = summary["classifier"]
    assert verdict["meaningful"] is False and verdict["accuracy"] is None and verdict["fooling_a2b"] is None
    assert verdict["unavailable"] == (
        "classifier not measured: only 0 + 0 real images it does not train on (at least 5 per domain needed); "
        "give more images or a test split"
    )
    assert summary["split"] == "train" and summary["domain_a"]["images_from"] == "train"
    assert summary["fid_kid"] == {"unavailable": "needs at least 2 images per domain, got A 1 and B 1"}
    assert f"domain classifier: {verdict['unavailable']}" in format_table(summary)
    json.loads(evaluate.to_json(summary))


def test_berkeley_train_folder_finds_its_test_sibling(tmp_path):
    for split in ("trainA", "testA", "trainB"):
        (tmp_path / split).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / split / "0.png")
    a = datasets._folder_domain(str(tmp_path / "trainA"))
    assert a.train_files == [str(tmp_path / "trainA" / "0.png")] and a.test_files == [str(tmp_path / "testA" / "0.png")]
    assert datasets._folder_domain(str(tmp_path / "trainB")).test_files == []


def test_an_unwritable_classifier_cache_keeps_the_result(tmp_path, monkeypatch):
    a, b = _colour_folders(tmp_path, 30)
    (tmp_path / "home").write_text("a file where the cache folder would go, like a read-only HOME")
    monkeypatch.setenv("TFCYCLEGAN_CACHE", str(tmp_path / "home" / "cache"))
    notes = []
    summary = evaluate.evaluate_translators(
        _identity(), features=_ColourFeatures(), domain_a=a, domain_b=b, image_size=32, log=notes.append
    )
    verdict = summary["classifier"]
    assert verdict["weights"] is None and not verdict["cached"] and verdict["accuracy"] is not None
    assert (
        f"note: cannot write the classifier cache {tmp_path / 'home' / 'cache' / 'classifiers'} (Not a directory); "
        "training without caching (set TFCYCLEGAN_CACHE to a writable folder to keep it)"
    ) in notes


def test_an_evaluation_too_large_for_memory_is_refused_before_any_image_is_decoded(tmp_path):
    """16 images at 4096 px would hold 9 GiB; 30000 px is past fit's bound, refused by the option itself."""
    run = write_noise_run(tmp_path, 8)
    common = ["evaluate", run, "--domain-a", tmp_path / "A", "--domain-b", tmp_path / "B", "--split", "train"]
    result = invoke(*common, "--image-size", 4096)
    assert_one_line_error(result, "evaluating 16 images at 4096px holds 9.0 GiB of images (real, translated and "
                          "reconstructed, float32), over the 4 GiB evaluate allows; pass --image-size 2728 or less")  # fmt: skip
    result = invoke(*common, "--image-size", 30000)
    assert result.exit_code == 2 and "30000 is not in the range 16<=x<=4096" in result.stderr


@pytest.mark.parametrize("name", ["config.json", "checkpoints/checkpoint", "losses.csv", "samples/x.json"])
def test_json_never_replaces_a_run_s_own_files_and_is_checked_first(tmp_path, name):
    run = write_noise_run(tmp_path, 2)
    target = run / name
    before = target.read_bytes() if target.exists() else None
    result = invoke("evaluate", run, "--json", target)
    assert_one_line_error(result, f"--json {target} is a file of the run directory {run}, which it would replace")
    assert (target.read_bytes() if target.exists() else None) == before
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    assert_one_line_error(invoke("evaluate", run, "--json", pipe), f"--json {pipe} is a named pipe, not a regular file")


def test_sections_computes_only_those_and_the_same_numbers(run_dir, classifier_cache):
    whole = evaluate.evaluate(run_dir, features=_ColourFeatures(), log=lambda message: None)
    alone = evaluate.evaluate(run_dir, sections=("ground_truth",), log=lambda message: None)
    assert not {"cycle", "classifier", "fid_kid"} & set(alone)
    assert alone["ground_truth"] == whole["ground_truth"] and alone["ground_truth"]["a2b"]["l1_ratio"] > 0
