"""The .pth reader: both PyTorch formats read to the same arrays, and hostile or damaged
files are one line each (exit 1 through the CLI) with their payload never run."""

import collections
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
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


class _Storage:
    """Pickles as the global torch.FloatStorage (a stand-in module, installed by the fixture)."""


def _rebuild_tensor_v2(*args):
    raise AssertionError("only pickled, never called")


@pytest.fixture
def fake_torch(monkeypatch):
    """Modules named torch / torch._utils, so a test pickle can name their globals."""
    import types

    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    _Storage.__module__, _Storage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2 = _Storage, _rebuild_tensor_v2
    monkeypatch.setitem(__import__("sys").modules, "torch", torch)
    monkeypatch.setitem(__import__("sys").modules, "torch._utils", utils)


class _Ref:
    """A reference to storage `key`: pickled as torch's persistent id."""

    def __init__(self, key):
        self.key = key


class _Tensor:
    """Pickles as torch does: _rebuild_tensor_v2(storage reference, offset, size, stride, ...)."""

    def __init__(self, key, offset, size, stride):
        self.key, self.offset, self.size, self.stride = key, offset, size, stride

    def __reduce__(self):
        return _rebuild_tensor_v2, (_Ref(self.key), self.offset, self.size, self.stride, False, {})


class _RefPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return ("storage", _Storage, obj.key, "cpu", 4) if isinstance(obj, _Ref) else None


def zip_pth(path, obj, storages):
    """A zip-format .pth of `obj` (tensors as _Tensor) with raw storages {key: bytes}."""
    buffer = io.BytesIO()
    _RefPickler(buffer, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)
    return path


def test_strides_offsets_and_big_endian_storages(fake_torch, tmp_path):
    values = np.arange(4, dtype=np.float32)
    state = {"transposed": _Tensor("0", 0, (2, 2), (1, 2)), "tail": _Tensor("0", 2, (2,), (1,))}
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


def test_a_tensor_past_its_storage_is_refused(fake_torch, tmp_path):
    path = zip_pth(tmp_path / "over.pth", {"w": _Tensor("0", 3, (2,), (1,))}, {"0": np.zeros(4, "f4").tobytes()})
    with pytest.raises(UserError, match="reaches past the end of its storage"):
        torch_state.read_state_dict(path)


def test_a_storage_key_outside_the_archive_is_refused(fake_torch, tmp_path):
    path = zip_pth(tmp_path / "escape.pth", {"w": _Tensor("../../../etc/passwd", 0, (4,), (1,))}, {})
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
        zip_pth(path, {"w": _Tensor("../../../etc/passwd", 0, (4,), (1,))}, {})
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
    return path, marker


HOSTILE = {
    "os_system": "refers to posix.system",
    "eval": "refers to builtins.eval",
    "legacy_eval": "refers to builtins.eval",
    "escape": "not in the archive",
    "truncated_zip": "damaged or truncated zip",
    "truncated_legacy": "truncated",
    "empty": "is empty (0 bytes)",
    "png": "not a PyTorch .pth state dict: it is a PNG image",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_and_damaged_files_are_one_line_and_run_nothing(fake_torch, tmp_path, kind):
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


def test_a_state_dict_nested_in_a_checkpoint_dict_is_found(fake_torch, tmp_path):
    checkpoint = {"epoch": 3, "state_dict": {"w": _Tensor("0", 0, (2, 2), (2, 1))}}
    path = zip_pth(tmp_path / "checkpoint.pth", checkpoint, {"0": np.arange(4, dtype="f4").tobytes()})
    np.testing.assert_array_equal(torch_state.read_state_dict(path)["w"], [[0, 1], [2, 3]])
