"""Health checks: each detector on constructed outputs, each equation against an independent
numpy computation, warnings once per kind, and the checks inside real fits on noise domains."""

import csv
import json

import numpy as np
import pytest
import tensorflow as tf
from helpers import photo_like
from PIL import Image

from tfcyclegan.core.networks import ResnetGenerator
from tfcyclegan.runs import rundir
from tfcyclegan.runs.config import TrainConfig
from tfcyclegan.training import health, train

T = health.THRESHOLDS


def domain_a(n=8, size=32):
    return np.stack([photo_like(size, size, seed=i) for i in range(n)])


def domain_b(n=8, size=32):
    # Warm, bright colours: the two domains' histograms differ clearly.
    return np.clip(domain_a(n, size)[:, ::-1] * 0.3 + np.array([0.6, 0.2, -0.3]), -1, 1)


def values_for(translate, fake=0.5, real=0.5):
    """Health figures when both generators are `translate` and both discriminators score
    translations `fake` and real images `real`."""
    images = {"a2b": domain_a(), "b2a": domain_b()}
    out = {d: translate(x) for d, x in images.items()}
    scores = {d: np.full((8, 4, 4, 1), fake) for d in images}
    return health.figures(images, out, out, scores, {d: np.full((8, 4, 4, 1), real) for d in images})


def trips(translate, **kwargs):
    return {name.rsplit("_", 1)[0] for name in health.tripped(values_for(translate, **kwargs))}


def test_an_inverting_generator_trips_inversion_only():
    values = values_for(lambda x: -x)
    assert values["inversion_a2b"] == pytest.approx(-1.0)
    assert trips(lambda x: -x) == {"inversion"}


def test_an_identity_generator_trips_returning_the_input_only():
    assert values_for(lambda x: x)["domain_gap"] >= T.domain_gap
    assert trips(lambda x: x) == {"identity"}
    # Between domains of one colour distribution the same generator is not flagged.
    same = {"a2b": domain_a(), "b2a": domain_a()[::-1]}
    scores = {d: np.full((8, 4, 4, 1), 0.5) for d in same}
    values = health.figures(same, same, same, scores, scores)
    assert values["domain_gap"] == pytest.approx(0.0) and health.tripped(values) == []


def test_a_constant_generator_trips_collapse_only():
    values = values_for(lambda x: np.full_like(x, 0.2))
    assert values["collapse_a2b"] == pytest.approx(0.0)
    assert trips(lambda x: np.full_like(x, 0.2)) == {"collapse"}


def test_a_discriminator_driven_to_zero_loss_trips_when_the_generator_loses():
    def translate(x):
        return np.clip(x * 0.5 + 0.3, -1, 1)  # a plausible, healthy-looking translation

    assert trips(translate) == set()
    assert trips(translate, fake=0.0, real=1.0) == {"discriminator"}
    assert trips(translate, fake=0.0, real=0.5) == set()  # D unsure of the real images: not won
    assert trips(translate, fake=0.9, real=1.0) == set()  # G still fools it


def test_the_figures_match_independent_numpy():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-1, 1, (2, 3, 16, 16, 3))
    lum_x, lum_y = (a @ np.array([0.299, 0.587, 0.114]) for a in (x, y))
    expected = np.mean([np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(lum_x, lum_y)])
    assert health.luminance_correlation(x, y) == pytest.approx(expected)
    # PSNR on [0, 1]: an error of 0.1 everywhere on [-1, 1] is 0.05 on [0, 1]: 10 log10(1 / 0.0025) dB.
    assert health.cycle_psnr(x, x + 0.1) == pytest.approx(10 * np.log10(1 / 0.05**2))
    pairs = [np.abs(x[i] - x[j]).mean() for i, j in ((0, 1), (0, 2), (1, 2))]
    assert health.spread(x) == pytest.approx(np.mean(pairs))
    assert health.collapse_ratio(x, x / 2) == pytest.approx(0.5)
    assert health.input_distance(x, y) == pytest.approx(np.abs(x - y).mean())
    assert health.adversarial_loss([0.5, 0.0]) == pytest.approx((0.25 + 1.0) / 2)
    assert health.discriminator_loss([1.0, 0.5], [0.0, 0.2]) == pytest.approx(0.5 * (0.25 / 2 + 0.04 / 2))
    assert health.domain_gap(x, x) == 0.0
    assert health.domain_gap(np.full_like(x, -0.9), np.full_like(x, 0.9)) == pytest.approx(1.0)


def test_a_warning_is_said_once_and_again_only_after_it_cleared():
    assert health.new_warnings(["inversion_a2b"], []) == ["inversion_a2b"]
    assert health.new_warnings(["inversion_a2b"], ["inversion_a2b"]) == []
    assert health.new_warnings(["inversion_a2b", "collapse_b2a"], ["inversion_a2b"]) == ["collapse_b2a"]
    # Cleared at one check (the previous row is empty), back at the next: said again.
    assert health.new_warnings(["inversion_a2b"], []) == ["inversion_a2b"]


def test_each_warning_is_one_line_naming_the_network_and_a_remedy():
    values = values_for(lambda x: -x, fake=0.0, real=1.0)
    values.update(identity_a2b=0.001, collapse_a2b=0.01)
    for kind, remedy in (("inversion", "--lambda-identity"), ("identity", "--lambda-identity"),
                         ("collapse", "--lr"), ("discriminator", "--disc-layers")):  # fmt: skip
        line = health.warning(f"{kind}_a2b", values, 3, 8)
        assert "\n" not in line and line.startswith("warning: epoch 3: ") and remedy in line
        assert ("D_Y" if kind == "discriminator" else "G (A -> B)") in line


# --- real fits on noise domains -------------------------------------------------------------


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    """Domain A: grey noise; domain B: warm, bright noise; 40 images each (8 are held out)."""
    root = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    for name, low, high in (("A", (0, 0, 0), (255, 255, 255)), ("B", (150, 90, 0), (255, 200, 80))):
        (root / name).mkdir()
        for i in range(40):
            pixels = rng.integers(low, high, (32, 32, 3), endpoint=True).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def noise_config(noise, run_dir, **overrides):
    values = dict(domain_a=str(noise / "A"), domain_b=str(noise / "B"), run_dir=str(run_dir), epochs=1,
                  decay_epoch=1, blocks=1, ngf=4, ndf=8, image_size=32, load_size=32, pool_size=0,
                  steps_per_epoch=4, sample_count=2, lr=1e-12)  # fmt: skip
    values.update(overrides)
    return TrainConfig(**values)


def with_generators(monkeypatch, translate):
    """fit builds generators whose output is `translate(x)` (their weights get zero gradients)."""

    class Constructed(ResnetGenerator):
        def call(self, x):
            return translate(x) + 0.0 * super().call(x)

    def build(config, dtype=None):
        names = ("generator_g", "generator_f")
        return tuple(Constructed(ngf=config.ngf, n_blocks=config.blocks, name=n, dtype=dtype) for n in names)

    monkeypatch.setattr(rundir, "build_generators", build)


def health_rows(run_dir):
    with open(run_dir / health.HEALTH_FILE, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    "kind, translate",
    [
        ("inversion", lambda x: -x),
        ("identity", lambda x: x),
        ("collapse", lambda x: 0.0 * x + 0.3),
    ],
)
def test_each_generator_failure_trips_in_the_first_epoch_of_a_real_fit(
    noise, tmp_path, monkeypatch, capsys, kind, translate
):
    with_generators(monkeypatch, translate)
    run_dir = tmp_path / "run"
    train.fit(noise_config(noise, run_dir), verbose=0)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: epoch 1:")]
    assert {w.split(": ")[2].split(" ")[0] for w in warnings} == {"G", "F"}, warnings
    assert set(health_rows(run_dir)[0]["tripped"].split()) == {f"{kind}_a2b", f"{kind}_b2a"}
    held = json.loads((run_dir / "config.json").read_text())[health.HELD_OUT_KEY]
    assert [len(held[x]["files"]) for x in "AB"] == [health.HELD_OUT_COUNT] * 2
    assert held["A"]["left_training"] and held["B"]["left_training"]  # 40 images each: 8 left out of training
    assert json.loads((run_dir / "config.json").read_text())["images"] == {"A": 32, "B": 32}


def test_a_discriminator_that_wins_trips_in_the_first_epoch_of_a_real_fit(noise, tmp_path, monkeypatch, capsys):
    # G and F output flat near-white; the discriminators soon tell either noise from it.
    with_generators(monkeypatch, lambda x: 0.0 * x + 0.9)
    config = noise_config(noise, tmp_path / "run", lr=1e-3, steps_per_epoch=40)
    train.fit(config, verbose=0)
    row = health_rows(tmp_path / "run")[0]
    assert "discriminator_a2b" in row["tripped"].split(), row  # D_Y, which judges G(a) against real b
    assert float(row["discriminator_loss_a2b"]) < health.THRESHOLDS.discriminator_loss
    assert "warning: epoch 1: D_Y has won" in capsys.readouterr().err


def test_health_off_writes_no_health_figures_and_scalars_go_under_health(noise, tmp_path):
    off, on = tmp_path / "off", tmp_path / "on"
    train.fit(noise_config(noise, off, health="off"), verbose=0)
    assert not (off / health.HEALTH_FILE).exists()
    train.fit(noise_config(noise, on, lr=2e-4), verbose=0)
    tags = set()
    for event_file in (on / "logs").iterdir():
        for record in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags |= {v.tag for v in record.summary.value}
    assert {"health/inversion_a2b", "health/cycle_psnr_b2a", "health/collapse_a2b"} <= tags
    assert health_rows(on)[0]["tripped"] == ""
