"""The built-in demo domains (tfcyclegan/data/demo.py): the scenes, the folder layout, and a
demo folder tfcyclegan did not write (or that holds a user file) never replaced."""

from pathlib import Path

import numpy as np
import pytest
from helpers import assert_says, expected_modes, invoke, modes, one_line_error, tree
from PIL import Image

from tfcyclegan.data import demo
from tfcyclegan.data.imagefiles import load_image
from tfcyclegan.data.splits import SPLIT_FOLDERS
from tfcyclegan.util.errors import UserError


@pytest.mark.parametrize("seed", range(20))
def test_striped_differs_from_flat_exactly_inside_the_shapes(seed):
    flat, striped = demo.render(seed, 64, striped=False), demo.render(seed, 64, striped=True)
    assert flat.shape == striped.shape == (64, 64, 3) and flat.dtype == np.uint8
    mask = demo.shape_mask(seed, 64)
    assert 0.04 < mask.mean() < 0.9  # large, clearly visible shapes, some background
    np.testing.assert_array_equal((flat != striped).any(axis=2), mask)
    np.testing.assert_array_equal(flat[~mask], flat[~mask][0:1].repeat((~mask).sum(), 0))  # plain background


def test_same_seed_same_scene_and_seeds_differ():
    np.testing.assert_array_equal(demo.render(7, 64, True), demo.render(7, 64, True))
    assert not np.array_equal(demo.render(7, 64, False), demo.render(8, 64, False))
    assert not np.array_equal(demo.shape_mask(7, 64), demo.shape_mask(8, 64))


def test_stripes_have_a_fixed_period_and_are_light_on_columns_1_and_2():
    seed = next(s for s in range(100) if demo.shape_mask(s, 64).sum() > 800)
    mask, striped = demo.shape_mask(seed, 64), demo.render(seed, 64, True).astype(int).sum(axis=2)
    column = np.arange(64) % demo.STRIPE_PERIOD
    light = np.broadcast_to((column == 1) | (column == 2), mask.shape)
    assert striped[mask & light].min() > striped[mask & ~light].max()


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return Path(demo.ensure_demo_data(root, size=32, n_train=12, n_test=5))


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_ensure_demo_data_layout(demo_root):
    assert demo_root.name == "demo"
    counts = {split: len(names(demo_root / split)) for split in SPLIT_FOLDERS}
    assert counts == {"trainA": 12, "trainB": 12, "testA": 5, "testB": 5}
    assert [p.name for p in demo_root.parent.iterdir()] == ["demo"]  # no staging folder left


def test_train_seeds_are_disjoint_and_test_splits_are_paired(demo_root):
    assert not set(names(demo_root / "trainA")) & set(names(demo_root / "trainB"))
    assert not set(names(demo_root / "trainA")) & set(names(demo_root / "testA"))
    assert names(demo_root / "testA") == names(demo_root / "testB")
    for name in names(demo_root / "testA"):
        seed = int(Path(name).stem)
        np.testing.assert_array_equal(load_image(demo_root / "testA" / name), demo.render(seed, 32, striped=False))
        truth = demo.ground_truth_path(demo_root / "testA" / name)
        assert truth == str(demo_root / "testB" / name)
        np.testing.assert_array_equal(load_image(truth), demo.render(seed, 32, striped=True))
        assert demo.ground_truth_path(truth) == str(demo_root / "testA" / name)


def test_ensure_demo_data_is_written_once_and_remade_for_other_parameters(demo_root):
    stamp = (demo_root / "trainA").stat().st_mtime_ns
    assert demo.ensure_demo_data(demo_root.parent, size=32, n_train=12, n_test=5) == str(demo_root)
    assert (demo_root / "trainA").stat().st_mtime_ns == stamp
    demo.ensure_demo_data(demo_root.parent, size=32, n_train=3, n_test=2)
    assert len(names(demo_root / "trainB")) == 3
    assert names(demo_root.parent) == ["demo"]
    demo.ensure_demo_data(demo_root.parent, size=32, n_train=12, n_test=5)


def test_ground_truth_only_for_demo_test_files(demo_root, tmp_path):
    for path in (demo_root / "trainA" / "1000000.png", tmp_path / "testA" / "x.png"):
        with pytest.raises(UserError, match="not in a demo test split"):
            demo.ground_truth_path(path)


def test_unwritable_root_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write the demo data into"):
        demo.ensure_demo_data(tmp_path / "file" / "below")


# --- 1. the demo folder -----------------------------------------------------------


def test_download_demo_keeps_a_demo_folder_it_did_not_write(tmp_path):
    (tmp_path / "demo" / "trainA").mkdir(parents=True)
    (tmp_path / "demo" / "notes.txt").write_text("my own data")
    Image.new("RGB", (8, 8)).save(tmp_path / "demo" / "trainA" / "horse.png")
    before = tree(tmp_path)
    message = one_line_error(invoke("download", "demo", "--data-root", tmp_path))
    assert_says(message, f"{tmp_path / 'demo'} exists and is not tfcyclegan's demo data", "another --data-root")
    assert tree(tmp_path) == before  # nothing deleted, no staging folder left


def test_fit_on_demo_domains_keeps_a_demo_folder_it_did_not_write(tmp_path):
    (tmp_path / "data" / "demo").mkdir(parents=True)
    (tmp_path / "data" / "demo" / "thesis.tex").write_text("years of work")
    before = tree(tmp_path / "data")
    result = invoke(
        "fit",
        "--domain-a",
        "demo:flat",
        "--domain-b",
        "demo:striped",
        "--run-dir",
        tmp_path / "run",
        *("--ngf", 4, "--ndf", 4, "--blocks", 1, "--image-size", 16, "--load-size", 16),
        *("--epochs", 1, "--decay-epoch", 0, "--steps-per-epoch", 1),
        env={"TFCYCLEGAN_DATA": str(tmp_path / "data")},
    )
    assert "is not tfcyclegan's demo data" in one_line_error(result)
    assert tree(tmp_path / "data") == before


def test_a_demo_folder_of_ours_holding_a_user_file_is_neither_replaced_nor_used(tmp_path):
    root = Path(demo.ensure_demo_data(tmp_path, size=16, n_train=2, n_test=1))
    (root / "trainA" / "mine.png").write_bytes(b"user's image")
    (root / "README").write_text("user's notes")
    before = tree(tmp_path)
    # Other parameters: the folder would be remade (deleting the user's files); the same
    # parameters: the user's image would be trained on.
    for n_train in (3, 2):
        with pytest.raises(UserError) as info:
            demo.ensure_demo_data(tmp_path, size=16, n_train=n_train, n_test=1)
        assert_says(str(info.value), f"{root} holds files that are not tfcyclegan's demo data (README, trainA/mine.png)",
                    "move them away")  # fmt: skip
    assert tree(tmp_path) == before


@pytest.mark.parametrize("marker", ["", "my own COMPLETE file\n", "tfcyclegan demo v3 size=16 n_train=2"])
def test_a_foreign_complete_marker_is_not_ours(tmp_path, marker):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "COMPLETE").write_text(marker)
    with pytest.raises(UserError, match="is not tfcyclegan's demo data"):
        demo.ensure_demo_data(tmp_path, size=16, n_train=2, n_test=1)
    assert tree(tmp_path) == {"demo": None, "demo/COMPLETE": marker.encode()}


def test_a_demo_file_or_link_is_not_replaced(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "demo").write_text("a file")
    with pytest.raises(UserError, match=r"a/demo exists and is not tfcyclegan's demo data \(a file\)"):
        demo.ensure_demo_data(tmp_path / "a", size=16, n_train=2, n_test=1)
    elsewhere = Path(demo.ensure_demo_data(tmp_path / "b", size=16, n_train=2, n_test=1))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "demo").symlink_to(elsewhere)
    # A link to demo data of the wanted parameters is used as it is ...
    assert demo.ensure_demo_data(tmp_path / "c", size=16, n_train=2, n_test=1) == str(tmp_path / "c" / "demo")
    # ... but never replaced: the link is the user's.
    with pytest.raises(UserError, match=r"c/demo exists and is not tfcyclegan's demo data \(a symbolic link\)"):
        demo.ensure_demo_data(tmp_path / "c", size=16, n_train=3, n_test=1)
    assert (tmp_path / "c" / "demo").is_symlink() and len(list((elsewhere / "trainA").iterdir())) == 2


def test_demo_data_of_older_versions_is_still_replaced(tmp_path):
    root = Path(demo.ensure_demo_data(tmp_path, size=16, n_train=2, n_test=1))
    (root / "COMPLETE").write_text("tfcyclegan demo v1 size=16 n_train=2 n_test=1\n")
    demo.ensure_demo_data(tmp_path, size=16, n_train=2, n_test=1)
    assert (root / "COMPLETE").read_text().startswith("tfcyclegan demo v3 ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_demo_data_follows_the_umask(tmp_path, umask, mask):
    umask(mask)
    root = demo.ensure_demo_data(tmp_path, size=16, n_train=2, n_test=1)
    assert modes(root) == expected_modes(root, mask)
