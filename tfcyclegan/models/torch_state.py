"""Read a PyTorch state dict (.pth) as numpy arrays, without torch and without running
anything from the file.

Both formats torch.save writes are read:

- zip (PyTorch >= 1.6): `<name>/data.pkl` holds the pickled dict, whose tensors refer
  by key to raw storages `<name>/data/<key>`; `<name>/byteorder` gives their byte order.
- legacy (the 2017-2018 official CycleGAN files): five pickles in a row (magic number,
  protocol 1001, sys_info with the byte order), the pickled dict, the list of storage
  keys, then each storage as an int64 element count and its raw bytes.

The file is never handed to pickle.load: a restricted unpickler resolves only the
globals a state dict needs (collections.OrderedDict, torch._utils._rebuild_tensor_v2
and its older and parameter forms, torch's storage types), each to a function of this
module that records the tensor; any other global is refused with one line naming it,
before anything of it runs. Tensors become numpy arrays copied out of their storage
with its offset and strides, bounds-checked, in native byte order (bfloat16 as float32).
"""

import collections
import io
import math
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from tfcyclegan.util.errors import UserError, first_line

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# Storage class -> element type; "bfloat16" has no numpy type and is widened to float32.
STORAGE_TYPES = {
    "FloatStorage": "f4",
    "DoubleStorage": "f8",
    "HalfStorage": "f2",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "b1",
}
FIX = "save the generator's weights alone with torch.save(net.state_dict(), FILE)"


class _StorageType:
    """What a `torch.<X>Storage` global resolves to: the element type, nothing callable."""

    __slots__ = ("name", "code")

    def __init__(self, name, code):
        self.name, self.code = name, code

    def dtype(self, byteorder):
        return np.dtype(("<" if byteorder == "little" else ">") + ("u2" if self.code == "bfloat16" else self.code))


class _Storage:
    """One flat storage: declared element count now, its elements once read."""

    __slots__ = ("kind", "numel", "array", "base", "offset")

    def __init__(self, kind, numel, base=None, offset=0):
        self.kind, self.numel, self.base, self.offset = kind, numel, base, offset
        self.array = None

    def elements(self):
        if self.base is not None:
            return self.base.elements()[self.offset : self.offset + self.numel]
        return self.array


class _Tensor:
    """A tensor as the pickle describes it: a storage, an offset, a size, strides."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    """torch._utils._rebuild_tensor(_v2): the trailing requires_grad, hooks, metadata are not weights."""
    ints = [storage_offset, *size, *stride]
    if (
        not isinstance(storage, _Storage)
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in ints)
        or len(size) != len(stride)
    ):
        raise pickle.UnpicklingError("a tensor with a malformed storage, size or stride")
    return _Tensor(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, *_):
    """torch._utils._rebuild_parameter: an nn.Parameter is its tensor."""
    if not isinstance(data, _Tensor):
        raise pickle.UnpicklingError("a parameter without a tensor")
    return data


GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, code) for name, code in STORAGE_TYPES.items()},
}


class _Refused(Exception):
    """A global outside GLOBALS: carries its dotted name up through pickle's own handling."""


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, storage):
        super().__init__(file)
        self._storage = storage

    def find_class(self, module, name):
        found = GLOBALS.get((module, name))
        if found is None:
            # Protocol 2 pickles name Python 2's module; say the one a reader knows.
            raise _Refused(f"{'builtins' if module == '__builtin__' else module}.{name}")
        return found

    def persistent_load(self, pid):
        if self._storage is None:
            raise pickle.UnpicklingError("a storage reference where none may be")
        return self._storage(pid)


def _storage_id(pid, length):
    """(storage type, key, element count, rest) of a ('storage', type, key, location, numel, ...) id."""
    if not (isinstance(pid, tuple) and len(pid) == length and pid[0] == "storage"):
        raise pickle.UnpicklingError(f"an unknown persistent id {str(pid)[:60]}")
    kind, key, numel = pid[1], pid[2], pid[4]
    if not isinstance(kind, _StorageType) or not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
        raise pickle.UnpicklingError("a malformed storage reference")
    return kind, key, numel, pid[5:]


def _unpickle(path, data, storage=None):
    try:
        return _Unpickler(io.BytesIO(data) if isinstance(data, bytes) else data, storage).load()
    except _Refused as refused:
        raise UserError(
            f"{path} is not a plain state dict: it refers to {refused}, which a dict of tensors never does "
            f"(a pickled model, or code); nothing from it was run; {FIX}"
        ) from None
    except UserError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise UserError(
            f"{path} is damaged or not a PyTorch file ({type(error).__name__}: {str(error)[:80]}); "
            "download or save it again"
        ) from None
    except (MemoryError, RecursionError):
        raise UserError(
            f"{path} is damaged or not a PyTorch file (its pickle is malformed); download it again"
        ) from None


def _fill(path, storage, raw, byteorder):
    """Set `storage`'s elements from `raw` bytes, in native byte order."""
    dtype = storage.kind.dtype(byteorder)
    if len(raw) < storage.numel * dtype.itemsize:
        raise UserError(
            f"{path} is truncated or damaged (a storage holds {len(raw)} of its {storage.numel * dtype.itemsize} "
            "bytes); download or save it again"
        )
    values = np.frombuffer(raw, dtype, storage.numel)
    if storage.kind.code == "bfloat16":
        values = (values.astype(np.uint32) << 16).view(np.float32)
    storage.array = values.astype(values.dtype.newbyteorder("="))


def _read_zip(path, archive):
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise UserError(f"{path} is a zip file but not a PyTorch one (no <name>/data.pkl); give a .pth state dict")
    prefix = pickles[0][: -len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise UserError(f"{path} is damaged (byte order {byteorder[:20]!r}); download or save it again")
    storages = {}

    def storage(pid):
        kind, key, numel, _ = _storage_id(pid, 5)
        if key not in storages:
            entry = f"{prefix}data/{key}"
            # Only names the archive lists are read: a key cannot reach outside it.
            if entry not in names:
                raise UserError(
                    f"{path} is damaged: a tensor refers to storage {key[:40]!r}, which is not in the archive; "
                    "download or save it again"
                )
            info = archive.getinfo(entry)
            if info.file_size != numel * kind.dtype(byteorder).itemsize:
                raise UserError(
                    f"{path} is damaged: storage {key} holds {info.file_size} bytes, not the "
                    f"{numel * kind.dtype(byteorder).itemsize} its tensors declare; download or save it again"
                )
            storages[key] = _Storage(kind, numel)
            _fill(path, storages[key], archive.read(entry), byteorder)
        return storages[key]

    return _unpickle(path, archive.read(pickles[0]), storage)


def _read_legacy(path, data):
    stream = io.BytesIO(data)
    magic = _unpickle(path, stream)
    if magic != LEGACY_MAGIC:
        raise UserError(f"{path} is a pickle but not a PyTorch file (no PyTorch magic number); give a .pth state dict")
    protocol = _unpickle(path, stream)
    if protocol != LEGACY_PROTOCOL:
        raise UserError(f"{path}: PyTorch file protocol {protocol!r} is not supported (only {LEGACY_PROTOCOL})")
    info = _unpickle(path, stream)
    byteorder = "little" if not isinstance(info, dict) or info.get("little_endian", True) else "big"
    roots = {}

    def storage(pid):
        kind, key, numel, (view,) = _storage_id(pid, 6)
        root = roots.setdefault(key, _Storage(kind, numel))
        if view is None:
            return root
        # Old files' storage views: (view key, offset, size) into the root storage.
        if not (isinstance(view, tuple) and len(view) == 3 and all(isinstance(v, int) for v in view[1:])):
            raise pickle.UnpicklingError("a malformed storage view")
        _, offset, size = view
        if offset < 0 or size < 0 or offset + size > numel:
            raise pickle.UnpicklingError("a storage view outside its storage")
        return _Storage(kind, size, base=root, offset=offset)

    result = _unpickle(path, stream, storage)
    keys = _unpickle(path, stream)
    if not isinstance(keys, list) or set(map(str, keys)) != set(roots):
        raise UserError(f"{path} is damaged (its storage list does not match its tensors); download or save it again")
    for key in keys:
        header = stream.read(8)
        if len(header) < 8:
            raise UserError(f"{path} is truncated (storage {key} is missing); download or save it again")
        (count,) = struct.unpack("<q" if byteorder == "little" else ">q", header)
        root = roots[key]
        if count != root.numel:
            raise UserError(
                f"{path} is damaged: storage {key} has {count} elements, not the {root.numel} its tensors declare"
            )
        _fill(path, root, stream.read(count * root.kind.dtype(byteorder).itemsize), byteorder)
    return result


def _to_array(path, name, tensor):
    elements = tensor.storage.elements()
    if elements is None or len(elements) < tensor.storage.numel:
        raise UserError(f"{path} is damaged: tensor {name} has no storage data; download or save it again")
    size, stride, offset = tensor.size, tensor.stride, tensor.offset
    if any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
        raise UserError(f"{path} is damaged: tensor {name} has a negative size, stride or offset")
    if math.prod(size) == 0:
        return np.zeros(size, elements.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= len(elements):
        raise UserError(f"{path} is damaged: tensor {name} reaches past the end of its storage")
    view = np.lib.stride_tricks.as_strided(
        elements[offset:], size, [s * elements.itemsize for s in stride], writeable=False
    )
    return np.array(view)


def _describe(data):
    signatures = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image"}
    for magic, what in signatures.items():
        if data.startswith(magic):
            return f"it is {what}"
    if data.lstrip().startswith((b"<", b"{")):
        return "it is text (an HTML page or JSON?)"
    return "it has neither PyTorch format's header (zip or legacy pickle)"


def read_state_dict(path):
    """{name: numpy array} of the state dict in .pth file `path`, in the file's order.

    A dict whose only tensors sit in one nested dict (e.g. {"state_dict": ...,
    "epoch": ...}) gives that nested dict. Anything that is not a dict of tensors,
    any global beyond those a state dict needs, and any damage to the file is a
    UserError of one line.
    """
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {path}: {first_line(error)}; give a .pth file") from None
    if not data:
        raise UserError(f"{path} is empty (0 bytes); download or save it again")
    if data.startswith(b"PK"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                result = _read_zip(path, archive)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as error:
            raise UserError(f"{path} is a damaged or truncated zip file ({error}); download or save it again") from None
    elif data.startswith(b"\x80"):
        result = _read_legacy(path, data)
    else:
        raise UserError(f"{path} is not a PyTorch .pth state dict: {_describe(data)}")
    if isinstance(result, dict) and not any(isinstance(v, _Tensor) for v in result.values()):
        nested = [v for v in result.values() if isinstance(v, dict) and any(isinstance(t, _Tensor) for t in v.values())]
        result = nested[0] if len(nested) == 1 else result
    if not isinstance(result, dict) or not result or not all(isinstance(v, _Tensor) for v in result.values()):
        what = type(result).__name__ if not isinstance(result, dict) else "a dict of other things than tensors"
        raise UserError(f"{path} holds {what}, not a state dict of tensors; {FIX}")
    return collections.OrderedDict((str(k), _to_array(path, k, v)) for k, v in result.items())
