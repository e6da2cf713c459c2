"""Files tfcyclegan writes and checks (tfcyclegan/util/fsutil.py)."""

import hashlib

import pytest

from tfcyclegan.util import fsutil


def test_sha256_of_a_file_is_that_of_its_bytes_across_blocks(tmp_path):
    data = bytes(range(256)) * (5 << 12)  # 5 MiB: several 1 MiB blocks and no partial one
    (tmp_path / "big").write_bytes(data + b"tail")
    assert fsutil.sha256(tmp_path / "big") == hashlib.sha256(data + b"tail").hexdigest()
    (tmp_path / "abc").write_bytes(b"abc")
    assert fsutil.sha256(tmp_path / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_make_folders_makes_every_missing_folder_without_recursion(tmp_path):
    import sys

    deep = tmp_path.joinpath(*["d"] * (sys.getrecursionlimit() + 200))
    try:
        fsutil.make_folders(deep)
        fsutil.make_folders(deep)  # already there: nothing to do
        assert deep.is_dir()
    finally:
        for folder in [deep, *deep.parents]:  # bottom up: pytest's own cleanup recurses
            if folder == tmp_path:
                break
            if folder.is_dir():
                folder.rmdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        fsutil.make_folders(tmp_path / "file" / "below")


def test_owning_folder_names_only_the_owner_s_own_files(tmp_path):
    owner = tmp_path / "run"
    (owner / "own").mkdir(parents=True)

    def is_owner(folder):
        return folder == owner

    assert fsutil.owning_folder(owner / "config.json", is_owner, ["config.json", "own"]) == owner
    assert fsutil.owning_folder(owner / "own" / "deep" / "x.json", is_owner, ["config.json", "own"]) == owner
    assert fsutil.owning_folder(owner / "results.json", is_owner, ["config.json", "own"]) is None
    assert fsutil.owning_folder(tmp_path / "config.json", is_owner, ["config.json", "own"]) is None
    (tmp_path / "link").symlink_to(owner)  # a folder reached through a link is the folder
    assert fsutil.owning_folder(tmp_path / "link" / "config.json", is_owner, ["config.json", "own"]) == owner
