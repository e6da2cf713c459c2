"""Files tfcyclegan writes and checks (tfcyclegan/util/fsutil.py)."""

import hashlib

from tfcyclegan.util import fsutil


def test_sha256_of_a_file_is_that_of_its_bytes_across_blocks(tmp_path):
    data = bytes(range(256)) * (5 << 12)  # 5 MiB: several 1 MiB blocks and no partial one
    (tmp_path / "big").write_bytes(data + b"tail")
    assert fsutil.sha256(tmp_path / "big") == hashlib.sha256(data + b"tail").hexdigest()
    (tmp_path / "abc").write_bytes(b"abc")
    assert fsutil.sha256(tmp_path / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
