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
and its older and parameter forms, torch's storage types), each to an immutable object
of this module made for that one read, so nothing a file does (a BUILD opcode setting
attributes, say) reaches the next file; any other global is refused with one line
naming it, before anything of it runs.

Memory is bounded before it is spent: the file is read as a stream (a 2 GB file of
something else costs its first bytes), the pickle may hold MAX_PICKLE_BYTES, and the
tensors' sizes, offsets and strides (from the pickle, a few hundred bytes) are checked
against their storages and handed to the caller's `check` (the generator's architecture
and fit's bounds, tfcyclegan.models.pretrained) before a storage byte is read. A tensor
may not repeat storage elements (a zero stride turns 4 bytes into gigabytes) and a
storage is read only over the elements its tensors hold, so what is allocated is what the
checked tensors need. Tensors become numpy arrays in native byte order (bfloat16 as
float32).
"""

import collections
import io
import math
import os
import pickle
import struct
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tfcyclegan.util import fsutil
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
AGAIN = "download or save it again"
# A state dict's pickle holds about 100 bytes per tensor (a generator has at most a few
# hundred); its byte order member holds "little" or "big".
MAX_PICKLE_BYTES = 16 << 20
MAX_BYTEORDER_BYTES = 16
# No tensor has more dimensions, nor a dimension of more elements (an "overflowing shape").
MAX_DIMS = 8
MAX_DIM = 2**31 - 1
# zip compressions zipfile reads; torch.save stores its members uncompressed.
COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
COMPRESSION_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA"}


class _StorageType(NamedTuple):
    """What a `torch.<X>Storage` global resolves to: the element type, nothing callable."""

    name: str
    code: str

    def dtype(self, byteorder):
        return np.dtype(("<" if byteorder == "little" else ">") + ("u2" if self.code == "bfloat16" else self.code))


class _StorageRef(NamedTuple):
    """A storage as a tensor refers to it: `numel` elements from element `start` of root storage `key`."""

    key: str
    start: int
    numel: int


class _Tensor(NamedTuple):
    """A tensor as the pickle describes it: a storage, an offset, a size, strides."""

    storage: _StorageRef
    offset: int
    size: tuple
    stride: tuple


def _ints(values):
    return all(isinstance(i, int) and not isinstance(i, bool) for i in values)


class _Rebuild(NamedTuple):
    """torch._utils._rebuild_tensor(_v2) and _rebuild_parameter, as one immutable callable."""

    parameter: bool

    def __call__(self, *args):
        if self.parameter:
            # An nn.Parameter is its tensor; requires_grad and hooks are not weights.
            if not args or not isinstance(args[0], _Tensor):
                raise pickle.UnpicklingError("a parameter without a tensor")
            return args[0]
        if len(args) < 4:
            raise pickle.UnpicklingError("a tensor without a storage, offset, size and stride")
        storage, offset, size, stride = args[:4]
        if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)):
            raise pickle.UnpicklingError("a tensor with a malformed size or stride")
        # Copies: a list the pickle mutates later cannot change what was checked.
        size, stride = tuple(size), tuple(stride)
        if not isinstance(storage, _StorageRef) or not _ints((offset, *size, *stride)) or len(size) != len(stride):
            raise pickle.UnpicklingError("a tensor with a malformed storage, size or stride")
        return _Tensor(storage, offset, size, stride)


def _globals():
    """The globals a state dict may name, each resolved to a fresh immutable object (or
    OrderedDict, a class no pickle can change)."""
    return {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _Rebuild(False),
        ("torch._utils", "_rebuild_tensor_v2"): _Rebuild(False),
        ("torch._utils", "_rebuild_parameter"): _Rebuild(True),
        **{("torch", name): _StorageType(name, code) for name, code in STORAGE_TYPES.items()},
    }


class _Refused(Exception):
    """A global outside _globals(): carries its dotted name up through pickle's own handling."""


class _Unpickler(pickle._Unpickler):
    """Python's own unpickler (not the C one, which allocates a length a pickle declares
    before reading it: 2 GB for a few bytes), resolving globals and storages our way."""

    def __init__(self, file, storage):
        super().__init__(file)
        self._storage = storage
        self._globals = _globals()

    def find_class(self, module, name):
        found = self._globals.get((module, name))
        if found is None:
            # Protocol 2 pickles name Python 2's module; say the one a reader knows.
            raise _Refused(f"{'builtins' if module == '__builtin__' else module}.{name}")
        return found

    def persistent_load(self, pid):
        if self._storage is None:
            raise pickle.UnpicklingError("a storage reference where none may be")
        return self._storage(pid)


class _Limited(io.RawIOBase):
    """A reader of at most `limit` bytes of `file`: what one pickle may take of a stream."""

    def __init__(self, file, limit):
        self._file, self._left = file, limit

    def readable(self):
        return True

    def readinto(self, buffer):
        if len(buffer) > self._left:
            raise pickle.UnpicklingError(f"a pickle over {MAX_PICKLE_BYTES >> 20} MiB, larger than any state dict's")
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)

    def readline(self, size=-1):
        line = self._file.readline(min(self._left + 1, size) if size >= 0 else self._left + 1)
        if len(line) > self._left:
            raise pickle.UnpicklingError(f"a pickle over {MAX_PICKLE_BYTES >> 20} MiB, larger than any state dict's")
        self._left -= len(line)
        return line


def _unpickle(path, data, storage=None):
    """The object pickled in `data` (bytes, or a stream read up to the pickle's end)."""
    try:
        return _Unpickler(io.BytesIO(data) if isinstance(data, bytes) else data, storage).load()
    except _Refused as refused:
        raise UserError(
            f"{path} is not a plain state dict: it refers to {refused}, which a dict of tensors never does "
            f"(a pickled model, or code); nothing from it was run; {FIX}"
        ) from None
    except UserError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        struct.error,
    ) as error:
        raise UserError(
            f"{path} is damaged or not a PyTorch file ({type(error).__name__}: {str(error)[:80]}); {AGAIN}"
        ) from None
    except (MemoryError, RecursionError, OverflowError):
        raise UserError(f"{path} is damaged or not a PyTorch file (its pickle is malformed); {AGAIN}") from None


def _storage_id(pid, length):
    """(storage type, key, element count, rest) of a ('storage', type, key, location, numel, ...) id."""
    if not (isinstance(pid, tuple) and len(pid) == length and pid[0] == "storage"):
        raise pickle.UnpicklingError(f"an unknown persistent id {str(pid)[:60]}")
    kind, key, numel = pid[1], pid[2], pid[4]
    if not isinstance(kind, _StorageType) or not isinstance(key, str) or not _ints([numel]) or numel < 0:
        raise pickle.UnpicklingError("a malformed storage reference")
    return kind, key, numel, pid[5:]


class _Roots(dict):
    """{key: (storage type, element count)} of the root storages a pickle refers to; a
    key refers to one storage of one type and size, however often it is named."""

    def add(self, kind, key, numel):
        if self.setdefault(key, (kind, numel)) != (kind, numel):
            raise pickle.UnpicklingError(f"storage {key[:40]!r} declared with two types or sizes")


def _state_tensors(path, result):
    """{name: _Tensor} of an unpickled state dict (or of the one dict of tensors nested in it)."""
    if isinstance(result, dict) and not any(isinstance(v, _Tensor) for v in result.values()):
        nested = [v for v in result.values() if isinstance(v, dict) and any(isinstance(t, _Tensor) for t in v.values())]
        result = nested[0] if len(nested) == 1 else result
    if not isinstance(result, dict) or not result or not all(isinstance(v, _Tensor) for v in result.values()):
        what = type(result).__name__ if not isinstance(result, dict) else "a dict of other things than tensors"
        raise UserError(f"{path} holds {what}, not a state dict of tensors; {FIX}")
    if not all(isinstance(k, str) for k in result):
        raise UserError(f"{path} is damaged: its tensors are not all named by text; {AGAIN}")
    return collections.OrderedDict(result)


def _extent(path, name, tensor):
    """(first, end) elements of its root storage that tensor `name` reads (None when empty),
    or a UserError when it is malformed, reaches past its storage or repeats elements."""
    size, stride, offset = tensor.size, tensor.stride, tensor.offset
    if len(size) > MAX_DIMS or any(n > MAX_DIM for n in size):
        shown = "x".join(map(str, size)) if len(size) <= MAX_DIMS else f"{len(size)} dimensions"
        raise UserError(f"{path} is damaged: tensor {name} has an impossible shape ({shown[:80]}); {AGAIN}")
    if any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
        raise UserError(f"{path} is damaged: tensor {name} has a negative size, stride or offset; {AGAIN}")
    count = math.prod(size)
    if count == 0:
        return None
    span = 1 + sum((n - 1) * s for n, s in zip(size, stride))
    if offset + span > tensor.storage.numel:
        raise UserError(f"{path} is damaged: tensor {name} reaches past the end of its storage; {AGAIN}")
    if count > span:
        raise UserError(
            f"{path}: tensor {name} repeats elements of its storage (a zero or overlapping stride: {count} values "
            f"from {span}), which no saved weight does; {FIX}"
        )
    first = tensor.storage.start + offset
    return first, first + span


def _plan(path, tensors):
    """{root key: (first, end)}: the elements of each storage that its tensors read. A
    storage is read over no more elements than its tensors hold together."""
    spans, held = {}, collections.Counter()
    for name, tensor in tensors.items():
        extent = _extent(path, name, tensor)
        if extent is None:
            continue
        key = tensor.storage.key
        first, end = spans.get(key, extent)
        spans[key] = min(first, extent[0]), max(end, extent[1])
        held[key] += math.prod(tensor.size)
    for key, (first, end) in spans.items():
        if end - first > held[key]:
            raise UserError(
                f"{path}: the tensors of storage {key[:40]} leave gaps in it (strided views: {held[key]} values over "
                f"{end - first} elements); {FIX}"
            )
    return spans


def _elements(path, key, kind, raw, count, byteorder):
    """`count` elements of storage `key` from `raw` bytes, in native byte order."""
    dtype = kind.dtype(byteorder)
    if len(raw) < count * dtype.itemsize:
        raise UserError(
            f"{path} is truncated or damaged (storage {key[:40]} holds {len(raw)} of the {count * dtype.itemsize} "
            f"bytes its tensors read); {AGAIN}"
        )
    values = np.frombuffer(raw, dtype, count)
    if kind.code == "bfloat16":
        values = (values.astype(np.uint32) << 16).view(np.float32)
    return values.astype(values.dtype.newbyteorder("="))


def _arrays(path, tensors, roots, spans, byteorder, read):
    """{name: numpy array}: each tensor copied out of the span of its storage that
    `read(key, first, count)` returns (raw bytes)."""
    loaded = {}
    for key, (first, end) in spans.items():
        kind = roots[key][0]
        loaded[key] = (first, _elements(path, key, kind, read(key, first, end - first), end - first, byteorder))
    arrays = collections.OrderedDict()
    for name, tensor in tensors.items():
        kind = roots[tensor.storage.key][0]
        if math.prod(tensor.size) == 0:
            dtype = np.float32 if kind.code == "bfloat16" else kind.dtype("little").newbyteorder("=")
            arrays[name] = np.zeros(tensor.size, dtype)
            continue
        first, elements = loaded[tensor.storage.key]
        start = tensor.storage.start + tensor.offset - first
        view = np.lib.stride_tricks.as_strided(
            elements[start:], tensor.size, [s * elements.itemsize for s in tensor.stride], writeable=False
        )
        arrays[name] = np.array(view)
    return arrays


def _shapes(tensors):
    return collections.OrderedDict((name, tensor.size) for name, tensor in tensors.items())


def _member(path, archive, name, limit=None):
    """The ZipInfo of member `name`, refused when it is encrypted, compressed in a way
    torch.save never writes, or (from its header, before it is read) over `limit` bytes."""
    info = archive.getinfo(name)
    if info.flag_bits & 0x1:
        raise UserError(f"{path} is encrypted (member {name[:60]}), which torch.save never does; {FIX}")
    if info.compress_type not in COMPRESSIONS:
        method = COMPRESSION_NAMES.get(info.compress_type, f"method {info.compress_type}")
        raise UserError(f"{path}: member {name[:60]} is compressed with {method}, which torch.save never writes; {FIX}")
    if limit is not None and info.file_size > limit:
        raise UserError(
            f"{path} is damaged or not a PyTorch file: {name[:60]} declares {info.file_size} bytes, over the "
            f"{limit} it may hold; {AGAIN}"
        )
    return info


def _zip_read(path, archive, info, offset, count):
    """`count` bytes of member `info` from byte `offset` (fewer if it is short)."""
    try:
        with archive.open(info) as member:
            member.seek(offset)
            return member.read(count)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
        raise UserError(f"{path} is a damaged zip file ({info.filename[:60]}: {first_line(error)}); {AGAIN}") from None


def _read_zip(path, file, check):
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, ValueError) as error:
        raise UserError(f"{path} is a damaged or truncated zip file ({first_line(error)}); {AGAIN}") from None
    with archive:
        names = set(archive.namelist())
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise UserError(f"{path} is a zip file but not a PyTorch one (no <name>/data.pkl); give a .pth state dict")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            info = _member(path, archive, prefix + "byteorder", MAX_BYTEORDER_BYTES)
            byteorder = _zip_read(path, archive, info, 0, MAX_BYTEORDER_BYTES).decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise UserError(f"{path} is damaged (byte order {byteorder[:20]!r}); {AGAIN}")
        info = _member(path, archive, pickles[0], MAX_PICKLE_BYTES)
        roots = _Roots()

        def storage(pid):
            kind, key, numel, _ = _storage_id(pid, 5)
            roots.add(kind, key, numel)
            return _StorageRef(key, 0, numel)

        tensors = _state_tensors(path, _unpickle(path, _zip_read(path, archive, info, 0, MAX_PICKLE_BYTES), storage))
        members = {}
        for key, (kind, numel) in roots.items():
            entry = f"{prefix}data/{key}"
            # Only names the archive lists are read: a key cannot reach outside it.
            if entry not in names:
                raise UserError(
                    f"{path} is damaged: a tensor refers to storage {key[:40]!r}, which is not in the archive; {AGAIN}"
                )
            members[key] = _member(path, archive, entry)
            if members[key].file_size != numel * kind.dtype(byteorder).itemsize:
                raise UserError(
                    f"{path} is damaged: storage {key[:40]} holds {members[key].file_size} bytes, not the "
                    f"{numel * kind.dtype(byteorder).itemsize} its tensors declare; {AGAIN}"
                )
        spans = _plan(path, tensors)
        if check:
            check(_shapes(tensors))

        def read(key, first, count):
            size = roots[key][0].dtype(byteorder).itemsize
            return _zip_read(path, archive, members[key], first * size, count * size)

        return _arrays(path, tensors, roots, spans, byteorder, read)


class _Limited:
    """The reads one pickle may make of a stream: MAX_PICKLE_BYTES, refused before a
    declared length is allocated."""

    def __init__(self, file):
        self._file, self._left = file, MAX_PICKLE_BYTES

    def _take(self, n):
        if n > self._left:
            raise pickle.UnpicklingError(f"a pickle over {MAX_PICKLE_BYTES >> 20} MiB, larger than any state dict's")
        self._left -= n

    def read(self, n):
        self._take(n)
        data = self._file.read(n)
        self._left += n - len(data)
        return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self):
        line = self._file.readline(self._left + 1)
        self._take(len(line))
        return line


def _read_legacy(path, file, check):
    stream = _Limited(file)
    if _unpickle(path, stream) != LEGACY_MAGIC:
        raise UserError(f"{path} is a pickle but not a PyTorch file (no PyTorch magic number); give a .pth state dict")
    protocol = _unpickle(path, stream)
    if protocol != LEGACY_PROTOCOL:
        raise UserError(f"{path}: PyTorch file protocol {str(protocol)[:20]} is not supported (only {LEGACY_PROTOCOL})")
    info = _unpickle(path, stream)
    byteorder = "little" if not isinstance(info, dict) or info.get("little_endian", True) else "big"
    roots = _Roots()

    def storage(pid):
        kind, key, numel, (view,) = _storage_id(pid, 6)
        roots.add(kind, key, numel)
        if view is None:
            return _StorageRef(key, 0, numel)
        # Old files' storage views: (view key, offset, size) into the root storage.
        if not (isinstance(view, tuple) and len(view) == 3 and _ints(view[1:])):
            raise pickle.UnpicklingError("a malformed storage view")
        _, offset, size = view
        if offset < 0 or size < 0 or offset + size > numel:
            raise pickle.UnpicklingError("a storage view outside its storage")
        return _StorageRef(key, offset, size)

    tensors = _state_tensors(path, _unpickle(path, stream, storage))
    keys = _unpickle(path, stream)
    if (
        not isinstance(keys, list)
        or not all(isinstance(key, str) for key in keys)
        or len(set(keys)) != len(keys)
        or set(keys) != set(roots)
    ):
        raise UserError(f"{path} is damaged (its storage list does not match its tensors); {AGAIN}")
    # Each storage: an int64 element count, then its bytes; only their places are noted here.
    places, end = {}, os.fstat(file.fileno()).st_size
    for key in keys:
        header = file.read(8)
        if len(header) < 8:
            raise UserError(f"{path} is truncated (storage {key[:40]} is missing); {AGAIN}")
        (count,) = struct.unpack("<q" if byteorder == "little" else ">q", header)
        kind, numel = roots[key]
        if count != numel:
            raise UserError(
                f"{path} is damaged: storage {key[:40]} has {count} elements, not the {numel} its tensors declare"
            )
        places[key] = file.tell()
        if places[key] + count * kind.dtype(byteorder).itemsize > end:
            raise UserError(f"{path} is truncated (storage {key[:40]} is cut short); {AGAIN}")
        file.seek(count * kind.dtype(byteorder).itemsize, io.SEEK_CUR)
    spans = _plan(path, tensors)
    if check:
        check(_shapes(tensors))

    def read(key, first, count):
        size = roots[key][0].dtype(byteorder).itemsize
        file.seek(places[key] + first * size)
        return file.read(count * size)

    return _arrays(path, tensors, roots, spans, byteorder, read)


def _describe(data):
    signatures = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image"}
    for magic, what in signatures.items():
        if data.startswith(magic):
            return f"it is {what}"
    if data.lstrip().startswith((b"<", b"{")):
        return "it is text (an HTML page or JSON?)"
    return "it has neither PyTorch format's header (zip or legacy pickle)"


def read_state_dict(path, check=None):
    """{name: numpy array} of the state dict in .pth file `path`, in the file's order.

    A dict whose only tensors sit in one nested dict (e.g. {"state_dict": ...,
    "epoch": ...}) gives that nested dict. `check({name: shape})`, when given, is
    called once the tensors are known and before any of their data is read: it raises
    for what its caller cannot use. Anything that is not a dict of tensors, any global
    beyond those a state dict needs, and any damage to the file is a UserError of one line.
    """
    path = Path(path).expanduser()
    try:
        file = fsutil.open_regular(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; give a .pth file") from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {first_line(error)}; give a .pth file") from None
    with file:
        try:
            head = file.read(64)
            file.seek(0)
            if not head:
                raise UserError(f"{path} is empty (0 bytes); {AGAIN}")
            if head.startswith(b"PK"):
                return _read_zip(path, file, check)
            if head.startswith(b"\x80"):
                return _read_legacy(path, file, check)
        except OSError as error:
            raise UserError(f"cannot read {path}: {first_line(error)}; {AGAIN}") from None
    raise UserError(f"{path} is not a PyTorch .pth state dict: {_describe(head)}")
