from pathlib import Path

import numpy as np
import pytest

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
