"""Pretrained PyTorch generators: architecture read from the tensors, outputs equal to
PyTorch's (fixtures made by tests/fixtures/make_torch_fixtures.py), model directories
through import, translate, export and fit, and official downloads (from a local file)."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import assert_one_line_error, invoke, write_state_pth
from PIL import Image

from tfcyclegan.models import modeldir, pretrained, torch_state
from tfcyclegan.runs import rundir
from tfcyclegan.util.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures" / "torch"
SIZES = ("32x32", "24x40")
# file -> (outputs it was saved with, ngf, blocks, affine, dropout)
VARIANTS = {
    "official_zip": ("official", 4, 2, False, False),
    "official_legacy": ("official", 4, 2, False, False),
    "dropout": ("dropout", 4, 2, False, True),
    "affine_renamed": ("affine_renamed", 4, 2, True, False),
    "running_stats": ("running_stats", 8, 3, False, False),
    "module_prefix": ("module_prefix", 4, 2, False, False),
}
PARITY = 1e-4  # float32 max abs against PyTorch (measured: < 5e-6)


def max_error(generator, reference):
    return max(
        float(np.max(np.abs(generator(np.load(FIXTURES / f"input_{size}.npy")).numpy() - reference(size))))
        for size in SIZES
    )


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_imported_generator_reproduces_pytorch(name):
    outputs, ngf, blocks, affine, dropout = VARIANTS[name]
    generator, architecture = pretrained.to_keras(torch_state.read_state_dict(FIXTURES / f"{name}.pth"))
    assert architecture == pretrained.Architecture(ngf, blocks, affine, dropout)
    assert max_error(generator, lambda size: np.load(FIXTURES / f"{outputs}_{size}.npy")) < PARITY


def _official_shapes(ngf=4, blocks=2):
    """A state dict in the official layout with zero weights."""
    c = 4 * ngf
    shapes = [(ngf, 3, 7, 7), (2 * ngf, ngf, 3, 3), (c, 2 * ngf, 3, 3)]
    shapes += [(c, c, 3, 3)] * (2 * blocks) + [(c, 2 * ngf, 3, 3), (2 * ngf, ngf, 3, 3), (3, ngf, 7, 7)]
    state = {}
    for i, shape in enumerate(shapes):
        state[f"layer{i}.weight"] = np.zeros(shape, np.float32)
        state[f"layer{i}.bias"] = np.zeros(shape[0] if i not in (len(shapes) - 3, len(shapes) - 2) else shape[1])
    return state


def _discriminator():
    shapes = [(8, 3, 4, 4), (16, 8, 4, 4), (32, 16, 4, 4), (64, 32, 4, 4), (1, 64, 4, 4)]
    return {f"model.{i}.weight": np.zeros(s, np.float32) for i, s in enumerate(shapes)}


def _unet():
    shapes = [(8, 3, 4, 4), (16, 8, 4, 4), (16, 32, 4, 4), (16, 3, 4, 4)]
    return {f"model.model.{i}.weight": np.zeros(s, np.float32) for i, s in enumerate(shapes)}


def _batch_norm():
    state = {}
    for key, value in _official_shapes().items():
        if key.endswith(".weight"):
            state[key] = value
            if key != "layer9.weight":
                channels = value.shape[1] if key in ("layer7.weight", "layer8.weight") else value.shape[0]
                norm = key.replace(".weight", "n")
                for param in ("weight", "bias", "running_mean", "running_var"):
                    state[f"{norm}.{param}"] = np.zeros(channels, np.float32)
    return state


def _wrong_shape():
    state = _official_shapes()
    state["layer5.weight"] = np.zeros((16, 16, 5, 5), np.float32)
    return state


@pytest.mark.parametrize(
    "state,message",
    [
        (_discriminator, "holds a PatchGAN discriminator"),
        (_unet, "holds a U-Net generator"),
        (_batch_norm, "a generator with batch norm"),
        (_wrong_shape, "layer5.weight is (16, 16, 5, 5) where a ResNet generator with ngf 4 and 2 blocks has"),
        (lambda: {"fc.weight": np.zeros((4, 4), np.float32)}, "has no convolution weights"),
    ],
)
def test_what_is_not_a_resnet_generator_is_named(state, message):
    with pytest.raises(UserError, match="supported: a CycleGAN ResNet generator") as error:
        pretrained.infer(state(), "x.pth")
    assert message in str(error.value)


def test_zero_weights_in_renamed_layout_import():
    architecture, _ = pretrained.infer(_official_shapes(ngf=4, blocks=2))
    assert architecture == pretrained.Architecture(4, 2, False, False)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """`tfcyclegan import` of the zip-format fixture (a2b) and the legacy one with running stats (b2a)."""
    folder = tmp_path_factory.mktemp("import") / "model"
    result = invoke("import", FIXTURES / "official_zip.pth", FIXTURES / "running_stats.pth", "--output", folder)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"imported a2b and b2a into {folder}\n"
    assert "a2b: official_zip.pth: ngf 4, 2 blocks" in result.stderr
    return folder


def test_model_directory_loads_in_keras_safe_mode_and_describes_itself(imported):
    assert sorted(p.name for p in imported.iterdir()) == ["generator_f.keras", "generator_g.keras", "metadata.json"]
    meta = json.loads((imported / "metadata.json").read_text())
    digest = pretrained.sha256(FIXTURES / "official_zip.pth")
    assert meta["sources"]["a2b"]["sha256"] == digest and meta["sources"]["a2b"]["source"] == "official_zip.pth"
    assert meta["sources"]["b2a"]["architecture"] == {"ngf": 8, "n_blocks": 3, "affine": False, "dropout": False}
    assert meta["generators"] == {"a2b": "generator_g.keras", "b2a": "generator_f.keras"}
    assert "[-1, 1]" in meta["preprocessing"] and "(y + 1) / 2" in meta["postprocessing"]
    for file, outputs in (("generator_g.keras", "official"), ("generator_f.keras", "running_stats")):
        generator = keras.saving.load_model(imported / file, safe_mode=True)
        assert max_error(generator, lambda size, o=outputs: np.load(FIXTURES / f"{o}_{size}.npy")) < PARITY


def _images(folder, sizes):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(folder / f"{i}.png")
    return folder


def test_translate_with_a_pth_file_and_one_way_directories(tmp_path):
    images = _images(tmp_path / "in", [(30, 22)])
    result = invoke(
        "translate", "--model", FIXTURES / "dropout.pth", "--direction", "a2b", images, "-o", tmp_path / "o"
    )
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "o" / "0.png").size == (30, 22)
    one_way = tmp_path / "one_way"
    assert invoke("import", FIXTURES / "official_legacy.pth", "-o", one_way).exit_code == 0
    result = invoke("translate", "--model", one_way, "--direction", "b2a", images, "-o", tmp_path / "o2")
    assert_one_line_error(result, "has no b2a generator (generator_f.keras), only a2b")


def test_translate_needs_direction_only_for_a_two_way_model(tmp_path):
    images = _images(tmp_path / "in", [(24, 16)])
    assert invoke("translate", "--model", FIXTURES / "official_zip.pth", images, "-o", tmp_path / "o").exit_code == 0
    one_way, two_way = tmp_path / "one_way", tmp_path / "two_way"
    assert invoke("import", FIXTURES / "official_zip.pth", "-o", one_way).exit_code == 0
    assert invoke("translate", "--model", one_way, images, "-o", tmp_path / "o1").exit_code == 0
    assert (tmp_path / "o1" / "0.png").is_file()
    pair = (FIXTURES / "official_zip.pth", FIXTURES / "official_legacy.pth")
    assert invoke("import", *pair, "-o", two_way).exit_code == 0
    result = invoke("translate", "--model", two_way, images, "-o", tmp_path / "o2")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("translates both ways: pass --direction a2b (G, A to B) or --direction b2a (F, B to A)")
    )
    assert not (tmp_path / "o2").exists()


def test_import_refuses_a_wrong_sha256(tmp_path):
    result = invoke("import", FIXTURES / "official_zip.pth", "--sha256", "0" * 64, "-o", tmp_path / "m")
    assert_one_line_error(result, "not the --sha256")
    assert not (tmp_path / "m").exists()


def test_import_translate_export_int8_translate(tmp_path):
    """The whole path of a pretrained file to the phone: sizes kept, int8 near the Keras output."""
    images = _images(tmp_path / "photos", [(36, 28), (20, 44)])
    model = tmp_path / "saved_models" / "tiny" / "keras"
    assert invoke("import", FIXTURES / "official_zip.pth", "-o", model).exit_code == 0
    result = invoke("translate", "--model", model, "--direction", "a2b", images, "-o", tmp_path / "keras_out")
    assert result.exit_code == 0, result.output
    tflite = tmp_path / "saved_models" / "tiny" / "tflite-int8"
    result = invoke("export", model, "--format", "tflite", "--quantize", "int8", "--calibration-dir", images,
                    "-o", tflite)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tflite.iterdir()) == ["a2b.tflite", "metadata.json"]
    assert json.loads((tflite / "metadata.json").read_text())["model_dir"] == str(model.resolve())
    result = invoke("translate", "--model", tflite / "a2b.tflite", "--direction", "a2b", images, "-o", tmp_path / "t")
    assert result.exit_code == 0, result.output
    for name, size in (("0.png", (36, 28)), ("1.png", (20, 44))):
        keras_image, int8_image = (np.asarray(Image.open(tmp_path / d / name), np.float32) for d in ("keras_out", "t"))
        assert keras_image.shape[:2][::-1] == size == int8_image.shape[:2][::-1]
        assert np.mean(np.abs(keras_image - int8_image)) < 25  # grey levels: int8 noise, not another image
    result = invoke("translate", "--model", tflite, "--direction", "b2a", images, "-o", tmp_path / "t2")
    assert_one_line_error(result, "has no b2a model, only a2b")


def test_export_keras_from_a_run_round_trips(tmp_path):
    from helpers import write_untrained_run

    _images(tmp_path / "B", [(32, 32)])
    run = write_untrained_run(_images(tmp_path / "A", [(32, 32)]).parent)
    result = invoke("export", run, "--format", "keras", "-o", tmp_path / "model")
    assert result.exit_code == 0, result.output
    assert "exported Keras model directory to" in result.stdout
    generator_g, generator_f, _ = rundir.load_generators(run)
    x = np.load(FIXTURES / "input_24x40.npy")
    for direction, generator in (("a2b", generator_g), ("b2a", generator_f)):
        loaded = modeldir.load_generator(tmp_path / "model", direction)
        np.testing.assert_array_equal(loaded(x).numpy(), generator(x).numpy())


@pytest.mark.parametrize("source", ["model directory", ".pth file"])
def test_fit_starts_from_the_imported_generators(tmp_path, source):
    """One step at a learning rate of 1e-9 leaves G as imported: the run started from its
    weights, given as the model directory `tfcyclegan import` wrote or as the .pth itself."""
    _images(tmp_path / "A", [(32, 32)] * 2)
    _images(tmp_path / "B", [(32, 32)] * 2)
    model = tmp_path / "model"
    assert invoke("import", FIXTURES / "official_zip.pth", "-o", model).exit_code == 0
    init = model if source == "model directory" else FIXTURES / "official_zip.pth"
    common = ["fit", "--domain-a", tmp_path / "A", "--domain-b", tmp_path / "B", "--run-dir", tmp_path / "run"]
    result = invoke(*common, "--ngf", 8, "--init-generators", init)
    assert result.exit_code == 2 and "--ngf 8 disagrees with --init-generators" in result.stderr
    assert "generator has ngf 4" in result.stderr
    result = invoke(*common, "--init-generators", init, "--epochs", 1, "--decay-epoch", 0, "--steps-per-epoch", 1,
                    "--image-size", 32, "--load-size", 32, "--ndf", 8, "--sample-count", 1, "--lr", 1e-9)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "holds no second generator (F: B -> A); F starts from scratch" in result.output

    generator_g, _, config = rundir.load_generators(tmp_path / "run")
    assert (config.ngf, config.blocks) == (4, 2)
    imported = modeldir.load_generator(model, "a2b")
    x = np.load(FIXTURES / "input_24x40.npy")
    assert float(np.max(np.abs(generator_g(x).numpy() - imported(x).numpy()))) < PARITY


@pytest.fixture
def official_server(tmp_path, monkeypatch):
    """The official URL pointed at a local folder holding style_ukiyoe.pth (a fixture)."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "style_ukiyoe.pth").write_bytes((FIXTURES / "official_legacy.pth").read_bytes())
    monkeypatch.setattr(pretrained, "OFFICIAL_URL", served.as_uri() + "/{name}.pth")
    (tmp_path / "cache").mkdir()
    return tmp_path / "cache"


def test_official_name_downloads_once_and_records_its_checksum(official_server, tmp_path):
    notes = []
    folder, meta = pretrained.import_generators(
        "official:style_ukiyoe", output=tmp_path / "ukiyoe", cache_dir=official_server, log=notes.append
    )
    digest = pretrained.sha256(FIXTURES / "official_legacy.pth")
    assert any(f"SHA-256 {digest}" in note and "--sha256" in note for note in notes)
    assert meta.sources["a2b"]["source"] == "official:style_ukiyoe" and meta.sources["a2b"]["sha256"] == digest
    assert (official_server / pretrained.CACHE_SUBDIR / "style_ukiyoe.pth").is_file()
    assert modeldir.directions(folder) == ["a2b"]
    pinned = []
    pretrained.import_generators("official:style_ukiyoe", output=tmp_path / "again", sha256s=[digest],
                                 cache_dir=official_server, log=pinned.append)  # fmt: skip
    assert not any("no published checksum" in note for note in pinned)


def test_official_download_failures_are_one_line(official_server, tmp_path):
    with pytest.raises(UserError, match="does not have SHA-256 " + "1" * 64):
        pretrained.fetch_official("style_ukiyoe", "1" * 64, cache_dir=official_server, log=print)
    with pytest.raises(UserError, match=r"offline\? download that URL elsewhere and run: tfcyclegan import"):
        pretrained.fetch_official("style_monet", cache_dir=official_server, log=print)
    with pytest.raises(UserError, match="official:style_picasso is no official model; the names are: apple2orange"):
        pretrained.official_name("official:style_picasso")
    assert set(pretrained.OFFICIAL) >= {"style_ukiyoe", "style_vangogh", "horse2zebra", "iphone2dslr_flower"}
    assert set(pretrained.REVERSE) <= set(pretrained.OFFICIAL) and pretrained.REVERSE["zebra2horse"] == "horse2zebra"


def test_fit_refuses_generators_of_two_shapes(imported, tmp_path):
    result = invoke("fit", "--run-dir", tmp_path / "run", "--init-generators", imported)
    assert_one_line_error(result, "G has 2 blocks and ngf 4, F 3 blocks and ngf 8; a run trains two generators")
    assert not (tmp_path / "run").exists()


def _garbage(kind):
    """A ResNet generator state dict (ngf 4, 2 blocks) with one defect."""
    state = _official_shapes()
    if kind == "nan":
        state["layer3.weight"][0, 0, 0, 0] = np.nan
    elif kind == "inf":
        state["layer8.bias"][1] = -np.inf
    elif kind == "no_bias":
        del state["layer2.bias"]
    return state


GARBAGE = {
    "nan": "tensor layer3.weight holds 1 non-finite values (first nan)",
    "inf": "tensor layer8.bias holds 1 non-finite values (first -inf)",
    "no_bias": "layer2.bias is missing; every layer of a CycleGAN ResNet generator",
}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_garbage_weights_are_refused_by_name_at_import_and_translate(tmp_path, kind, legacy):
    path = write_state_pth(tmp_path / f"{kind}.pth", _garbage(kind), legacy=legacy)
    assert_one_line_error(invoke("import", path, "-o", tmp_path / "m"), GARBAGE[kind])
    assert not (tmp_path / "m").exists()
    images = _images(tmp_path / "in", [(16, 16)])
    assert_one_line_error(invoke("translate", "--model", path, images, "-o", tmp_path / "out"), GARBAGE[kind])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_generator_beyond_fits_bounds_is_refused_before_its_weights_are_read(tmp_path, monkeypatch):
    """997 blocks: import used to build and write what every consumer then refused."""
    path = write_state_pth(tmp_path / "deep.pth", _official_shapes(ngf=1, blocks=997))
    read = []
    real_arrays = torch_state._arrays
    monkeypatch.setattr(torch_state, "_arrays", lambda *args: read.append(1) or real_arrays(*args))
    result = invoke("import", path, "-o", tmp_path / "m")
    assert_one_line_error(result, "deep.pth is a ResNet generator with ngf 1 and 997 blocks: blocks must be <= 32")
    assert not read and not (tmp_path / "m").exists()
