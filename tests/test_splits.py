"""A domain's splits (tfcyclegan/data/splits.py): which images are scored or shown, and
which of them can be read, decided in one place for evaluate, study and export."""

import numpy as np
import pytest
from PIL import Image

from tfcyclegan.data import splits
from tfcyclegan.data.datasets import Domain
from tfcyclegan.util.errors import UserError


def test_the_test_images_are_shown_and_the_training_images_when_there_are_none():
    with_test = Domain("d", ["t1.png", "t2.png"], ["s1.png"], "/d")
    assert splits.shown(with_test) == (["s1.png"], "test")
    without = Domain("d", ["t1.png", "t2.png"], [], "/d")
    assert splits.shown(without) == (["t1.png", "t2.png"], "train")


def test_only_images_that_decode_are_read_each_other_file_named(tmp_path):
    for name in ("a.png", "c.png"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name)
    (tmp_path / "b.png").write_text("<html>not an image</html>")
    files = [str(tmp_path / n) for n in ("a.png", "b.png", "c.png")]
    notes = []
    domain = Domain("mine", files, [], str(tmp_path))
    assert splits.readable(files, "training", "A", domain, notes.append) == [files[0], files[2]]
    assert notes == [f"skipping {files[1]}: not an image (text/HTML?)"]
    with pytest.raises(UserError, match=f"domain B \\(mine\\) has no readable test image; check {tmp_path}"):
        splits.readable(files[1:2], "test", "B", domain, notes.append)
