"""The .pth reader: both PyTorch formats read to the same arrays, and hostile or damaged
files are one line each (exit 1 through the CLI) with their payload never run."""

import collections
import contextlib
import os
import pickle
import re
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import PthStorage, PthTensor, pth_pickle, write_pth
from tfcyclegan_cli.main import main

from tfcyclegan.models import torch_state
from tfcyclegan.util.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures" / "torch"


def test_zip_and_legacy_formats_hold_the_same_tensors():
    zipped = torch_state.read_state_dict(FIXTURES / "official_zip.pth")
    legacy = torch_state.read_state_dict(FIXTURES / "official_legacy.pth")
    assert list(zipped) == list(legacy) and list(zipped)[:3] == ["model.1.weight", "model.1.bias", "model.4.weight"]
    assert zipped["model.1.weight"].shape == (4, 3, 7, 7) and zipped["model.1.weight"].dtype == np.float32
    assert zipped["model.12.weight"].shape == (16, 8, 3, 3)  # ConvTranspose2d: (in, out, kh, kw)
    for key in zipped:
        np.testing.assert_array_equal(zipped[key], legacy[key])


def test_old_files_keep_their_running_stats_entries():
    state = torch_state.read_state_dict(FIXTURES / "running_stats.pth")
    assert state["model.2.running_var"].shape == (8,)
    assert state["model.2.num_batches_tracked"].dtype == np.int64


def _tensor(key, offset, size, stride, numel=4):
    return PthTensor(PthStorage(key, numel), offset, size, stride)


def zip_pth(path, obj, storages):
    """A zip-format .pth of `obj` (tensors as _tensor) with raw storages {key: bytes}."""
    return write_pth(path, obj, storages)


def test_strides_offsets_and_big_endian_storages(tmp_path):
    values = np.arange(4, dtype=np.float32)
    state = {"transposed": _tensor("0", 0, (2, 2), (1, 2)), "tail": _tensor("0", 2, (2,), (1,))}
    path = zip_pth(tmp_path / "strided.pth", state, {"0": values.tobytes()})
    read = torch_state.read_state_dict(path)
    np.testing.assert_array_equal(read["transposed"], [[0, 2], [1, 3]])
    np.testing.assert_array_equal(read["tail"], [2, 3])
    big = tmp_path / "big.pth"
    with zipfile.ZipFile(big, "w") as target:
        with zipfile.ZipFile(path) as source:
            target.writestr("archive/data.pkl", source.read("archive/data.pkl"))
        target.writestr("archive/byteorder", "big")
        target.writestr("archive/data/0", values.astype(">f4").tobytes())
    np.testing.assert_array_equal(torch_state.read_state_dict(big)["tail"], [2, 3])


def test_a_tensor_past_its_storage_is_refused(tmp_path):
    path = zip_pth(tmp_path / "over.pth", {"w": _tensor("0", 3, (2,), (1,))}, {"0": np.zeros(4, "f4").tobytes()})
    with pytest.raises(UserError, match="reaches past the end of its storage"):
        torch_state.read_state_dict(path)


def test_a_storage_key_outside_the_archive_is_refused(tmp_path):
    path = zip_pth(tmp_path / "escape.pth", {"w": _tensor("../../../etc/passwd", 0, (4,), (1,))}, {})
    with pytest.raises(UserError, match="not in the archive"):
        torch_state.read_state_dict(path)


class _Payload:
    """Unpickling it would run `call(*args)`."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def _hostile(tmp_path, kind):
    marker = tmp_path / "marker"
    path = tmp_path / f"{kind}.pth"
    if kind == "os_system":
        zip_pth(path, {"w": _Payload(os.system, f"touch {marker}")}, {})
    elif kind == "eval":
        zip_pth(path, {"w": _Payload(eval, f"open({str(marker)!r}, 'w')")}, {})
    elif kind == "legacy_eval":
        parts = [pickle.dumps(torch_state.LEGACY_MAGIC, 2), pickle.dumps(1001, 2), pickle.dumps({}, 2)]
        parts.append(pickle.dumps({"w": _Payload(eval, f"open({str(marker)!r}, 'w')")}, 2))
        path.write_bytes(b"".join(parts))
    elif kind == "escape":
        zip_pth(path, {"w": _tensor("../../../etc/passwd", 0, (4,), (1,))}, {})
    elif kind == "truncated_zip":
        data = (FIXTURES / "official_zip.pth").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated_legacy":
        data = (FIXTURES / "official_legacy.pth").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "png":
        from PIL import Image

        Image.new("RGB", (4, 4)).save(path, format="PNG")
    elif kind in ("corrupt_deflate", "corrupt_lzma", "corrupt_bzip2", "encrypted"):
        # The official fixture with its storages compressed, then the first one damaged.
        method = {"corrupt_lzma": zipfile.ZIP_LZMA, "corrupt_bzip2": zipfile.ZIP_BZIP2}.get(kind, zipfile.ZIP_DEFLATED)
        with zipfile.ZipFile(FIXTURES / "official_zip.pth") as source, zipfile.ZipFile(path, "w") as target:
            for info in source.infolist():
                compression = method if "/data/" in info.filename else zipfile.ZIP_STORED
                target.writestr(info.filename, source.read(info), compression)
        _damage_member(path, "official_zip/data/0", encrypt=kind == "encrypted")
    elif kind == "legacy_int_keys":
        write_pth(path, {"w": _tensor("0", 0, (4,), (1,))}, {"0": np.zeros(4, "<f4").tobytes()}, legacy=True, keys=[0])
    elif kind == "overflowing_shape":
        zip_pth(path, {"w": _tensor("0", 0, (2**70, 0), (1, 1))}, {"0": np.zeros(4, "<f4").tobytes()})
    elif kind == "folder":
        path.mkdir()
    elif kind == "named_pipe":
        os.mkfifo(path)
    return path, marker


def _damage_member(path, name, encrypt):
    """Flip bytes in the middle of member `name`'s data, or mark it encrypted (both of its headers' flag bit 0)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    local = info.header_offset
    if encrypt:
        central = data.index(b"PK\x01\x02", local + 30)
        while data[central + 46 : central + 46 + len(name)] != name.encode():
            central = data.index(b"PK\x01\x02", central + 4)
        for flags in (local + 6, central + 8):
            data[flags] |= 1
    else:
        start = local + 30 + int.from_bytes(data[local + 26 : local + 28], "little")
        start += int.from_bytes(data[local + 28 : local + 30], "little")
        middle = start + info.compress_size // 2
        data[middle : middle + 16] = bytes(b ^ 0x5A for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


HOSTILE = {
    "os_system": "refers to posix.system",
    "eval": "refers to builtins.eval",
    "legacy_eval": "refers to builtins.eval",
    "escape": "not in the archive",
    "truncated_zip": "damaged or truncated zip",
    "truncated_legacy": "truncated",
    "empty": "is empty (0 bytes)",
    "png": "not a PyTorch .pth state dict: it is a PNG image",
    "corrupt_deflate": "is a damaged zip file (official_zip/data/0: ",
    "corrupt_lzma": "member official_zip/data/0 is compressed with LZMA, which torch.save never writes",
    "corrupt_bzip2": "member official_zip/data/0 is compressed with bzip2, which torch.save never writes",
    "encrypted": "is encrypted (member official_zip/data/0), which torch.save never does",
    "legacy_int_keys": "its storage list does not match its tensors",
    "overflowing_shape": "tensor w has an impossible shape (1180591620717411303424x0)",
    "folder": "folder.pth: not a regular file (a folder); give a .pth file",
    "named_pipe": "named_pipe.pth: not a regular file (a named pipe); give a .pth file",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_and_damaged_files_are_one_line_and_run_nothing(tmp_path, kind):
    path, marker = _hostile(tmp_path, kind)
    result = CliRunner().invoke(main, ["import", str(path), "--output", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and HOSTILE[kind] in errors[0], result.stderr
    assert "this is a bug" not in errors[0]
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_pickled_object_is_named_and_not_a_state_dict(tmp_path):
    path = zip_pth(tmp_path / "model.pth", _Payload(collections.Counter), {})
    with pytest.raises(UserError, match=r"refers to collections.Counter.*state_dict"):
        torch_state.read_state_dict(path)


def test_a_dict_without_tensors_is_not_a_state_dict(tmp_path):
    path = zip_pth(tmp_path / "empty_dict.pth", {"epoch": 3}, {})
    with pytest.raises(UserError, match="not a state dict of tensors"):
        torch_state.read_state_dict(path)


def test_a_state_dict_nested_in_a_checkpoint_dict_is_found(tmp_path):
    checkpoint = {"epoch": 3, "state_dict": {"w": _tensor("0", 0, (2, 2), (2, 1))}}
    path = zip_pth(tmp_path / "checkpoint.pth", checkpoint, {"0": np.arange(4, dtype="f4").tobytes()})
    np.testing.assert_array_equal(torch_state.read_state_dict(path)["w"], [[0, 1], [2, 3]])


def test_nothing_a_file_does_outlives_its_read(tmp_path):
    """A BUILD opcode on an allowed global (here FloatStorage's element type set to int32)
    must not change how the next file of the same process is read."""
    expected = torch_state.read_state_dict(FIXTURES / "official_zip.pth")
    # GLOBAL torch.FloatStorage, then BUILD (None, {"code": "i4", "name": "IntStorage"}) on it, then the usual dict.
    build = b"ctorch\nFloatStorage\nN}(X\x04\x00\x00\x00codeX\x02\x00\x00\x00i4X\x04\x00\x00\x00name"
    build += b"X\x0a\x00\x00\x00IntStorageu\x86b0"
    data = pth_pickle({"w": _tensor("0", 0, (4,), (1,))})
    hostile = write_pth(tmp_path / "hostile.pth", None, {"0": bytes(16)}, data_pkl=data[:2] + build + data[2:])
    with contextlib.suppress(UserError):
        torch_state.read_state_dict(hostile)
    again = torch_state.read_state_dict(FIXTURES / "official_zip.pth")
    for key, value in expected.items():
        assert again[key].dtype == value.dtype
        np.testing.assert_array_equal(again[key], value)


def test_a_zero_stride_tensor_is_refused_before_it_is_allocated(tmp_path):
    """535 bytes that would expand to a 40 GB tensor: one value repeated by strides of 0."""
    path = zip_pth(tmp_path / "zero.pth", {"w": _tensor("0", 0, (100000, 100000), (0, 0), numel=1)}, {"0": bytes(4)})
    assert path.stat().st_size < 1000
    with pytest.raises(UserError, match=r"tensor w repeats elements of its storage \(a zero or overlapping stride"):
        torch_state.read_state_dict(path)


def _peak_bytes(call):
    """Peak bytes Python and numpy allocate while `call()` runs (tracemalloc)."""
    tracemalloc.start()
    try:
        with contextlib.suppress(UserError):
            call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_storage_is_read_only_over_the_elements_its_tensors_hold(tmp_path):
    """A zip bomb: a 256 MiB storage of zeros deflated into a 250 KB file, of which the
    one tensor holds 4 values; reading it must not inflate the rest."""
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pth_pickle({"w": _tensor("0", 0, (4,), (1,), numel=64 << 20)}))
        with archive.open("archive/data/0", "w") as member:
            for _ in range(256):
                member.write(bytes(1 << 20))
    assert path.stat().st_size < 1 << 20
    assert _peak_bytes(lambda: torch_state.read_state_dict(path)) < 4 << 20
    np.testing.assert_array_equal(torch_state.read_state_dict(path)["w"], np.zeros(4, np.float32))


BIG_FILES = {
    "zeros": (b"\x00\x01", "neither PyTorch format's header"),
    "zip_header": (b"PK\x03\x04", "is a damaged or truncated zip file"),
    # A legacy file whose pickle declares 512 MiB of bytes (BINBYTES8).
    "legacy": (
        pickle.dumps(torch_state.LEGACY_MAGIC, 2) + b"\x80\x02\x8e" + (512 << 20).to_bytes(8, "little"),
        "a pickle over 16 MiB",
    ),
}


@pytest.mark.parametrize("kind", sorted(BIG_FILES))
def test_a_large_file_of_something_else_is_not_read_whole(tmp_path, kind):
    head, message = BIG_FILES[kind]
    path = tmp_path / "big.pth"
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(512 << 20)  # sparse: no disk is spent
    with pytest.raises(UserError, match=re.escape(message)):
        torch_state.read_state_dict(path)
    assert _peak_bytes(lambda: torch_state.read_state_dict(path)) < 20 << 20
