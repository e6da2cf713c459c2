"""Builders shared by several test modules (pytest puts tests/ on sys.path)."""

import io
import os
import pickle
import signal
import stat
import sys
import threading
import types
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tensorflow as tf
from click.testing import CliRunner
from PIL import Image
from tfcyclegan_cli.main import main

from tfcyclegan.data import imagefiles
from tfcyclegan.runs import rundir
from tfcyclegan.runs.config import TrainConfig
from tfcyclegan.runs.layout import RunLayout
from tfcyclegan.training import train
from tfcyclegan.util import seeding


def default_sigint():
    """A Popen preexec_fn: SIGINT back to its default in the child. A shell running the
    tests in the background starts them with SIGINT ignored, and Python keeps an
    inherited ignore, so a Ctrl-C sent to the child would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def photo_like(h, w, seed=0):
    """A photo-like test image in [-1, 1]: smooth colour gradients, a flat disc (an edge) and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.stack([np.sin(xx / 37 + c + seed) * np.cos(yy / 53 - c) for c in range(3)], axis=-1) * 0.7
    image[(xx - w / 3) ** 2 + (yy - h / 2) ** 2 < (min(h, w) / 4) ** 2] = [0.6, -0.4, 0.1]
    return np.clip(image + rng.normal(0, 0.03, image.shape), -1, 1).astype(np.float32)


def invoke(*args, env=None):
    """Run the `tfcyclegan` command in-process; arguments may be paths or numbers."""
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def one_line_error(result, code=1):
    """The message of a failed command's single `error: ...` line (exit `code`, no traceback)."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0][len("error: ") :]


def assert_one_line_error(result, *fragments, code=1):
    """A failed command printed one `error: ...` line, and it contains every fragment."""
    assert_says("error: " + one_line_error(result, code), *fragments)


def assert_says(message, *fragments):
    """`message` is one line holding every fragment (what it names, what is wrong, what to do);
    fragments rather than the whole sentence, so rewording the rest breaks no test."""
    assert "\n" not in message, message
    missing = [fragment for fragment in fragments if fragment not in message]
    assert not missing, f"{message!r} lacks {missing}"


def tiny_config(**changes):
    """The TrainConfig of a tiny run, the one factory of the tests: one residual block,
    4 filters, 32 px crops, one epoch of one step on the demo domains; `changes` override
    any option (paths may be Path objects)."""
    options = dict(domain_a="demo:flat", domain_b="demo:striped", ngf=4, ndf=4, blocks=1, image_size=32,
                   load_size=32, epochs=1, decay_epoch=0, steps_per_epoch=1, sample_count=1)  # fmt: skip
    options.update({name: str(value) if isinstance(value, Path) else value for name, value in changes.items()})
    return TrainConfig(**options)


def write_untrained_run(root, image_size=32):
    """A run dir for the domain folders root/A and root/B: tiny networks (ngf 8, 1 block),
    untrained, trained at `image_size`, its config written by the writer `fit` uses;
    returns root/run."""
    run = root / "run"
    config = tiny_config(domain_a=root / "A", domain_b=root / "B", run_dir=run, ngf=8, ndf=8,
                         image_size=image_size, load_size=image_size)  # fmt: skip
    with seeding.seeded(0):
        model = train.build_model(config, steps_per_epoch=1)
    tf.train.CheckpointManager(rundir.make_checkpoint(model), RunLayout(run).checkpoints, 1).save()
    counts = {domain: len(imagefiles.list_images(root / domain)) for domain in "AB"}
    rundir.save_config(config, run, counts, {domain: str((root / domain).resolve()) for domain in "AB"})
    return run


def write_noise_domains(root, count, shape=(32, 32), names=("a", "b"), file_name="{}.png"):
    """Folders root/<name> for each of `names`, each holding `count` (or count[i]) seeded
    random PNGs of `shape` (h, w), named file_name.format(index)."""
    rng = np.random.default_rng(0)
    counts = count if isinstance(count, tuple) else (count,) * len(names)
    for name, n in zip(names, counts, strict=True):
        (root / name).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (*shape, 3), np.uint8)).save(root / name / file_name.format(i))


def write_noise_run(root, count, shape=(36, 36)):
    """root/A and root/B with `count` seeded random images of `shape` (h, w) each, and an
    untrained tiny run for them (write_untrained_run); returns root/run."""
    write_noise_domains(root, count, shape, names=("A", "B"))
    return write_untrained_run(root)


def save(path, image, fmt=None, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **kwargs)
    return path


def encoded(fmt, size=(64, 48)):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


def flipped_idat_byte():
    png = bytearray(encoded("PNG"))
    png[png.index(b"IDAT") + 20] ^= 0xFF
    return bytes(png)


BAD = {
    "empty.jpg": (b"", "file is empty"),
    "truncated.jpg": (encoded("JPEG")[:400], "truncated image data"),
    "truncated.png": (encoded("PNG")[:2000], "truncated image data"),
    "corrupt.png": (flipped_idat_byte(), "corrupt image data (broken data stream when reading image file)"),
    "truncated.webp": (encoded("WEBP")[:300], "corrupt image data (could not create decoder object)"),
    "notes.jpg": (b"these are my holiday notes\nnot a picture\n", "not an image (text/HTML?)"),
    "page.png": (
        b"<!DOCTYPE html>\n<html><body>403 Forbidden \xe2\x80\x94 sign in</body></html>\n",
        "not an image (text/HTML?)",
    ),
    "noise.jpg": (bytes(range(256)) * 4, "not an image (unrecognised format)"),
}


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


@contextmanager
def fifo(path, timeout=20):
    """A named pipe at `path`. Should a reader block on it (the bug), a writer opens and
    closes it after `timeout` s, so the reader gets an empty file and the test fails
    instead of hanging."""
    os.mkfifo(path)

    def unblock():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # nobody is reading

    timer = threading.Timer(timeout, unblock)
    timer.start()
    try:
        yield path
    finally:
        timer.cancel()


def tree(folder):
    """{relative path: bytes, or None for a folder} of everything under `folder`, hidden entries too."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def modes(folder):
    """{relative path: permission bits} of `folder` itself ('.') and everything under it."""
    folder = Path(folder)
    return {
        ".": stat.S_IMODE(folder.stat().st_mode),
        **{p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*")},
    }


def expected_modes(folder, umask):
    return {name: (0o777 if (Path(folder) / name).is_dir() else 0o666) & ~umask for name in modes(folder)}


def noise(width, height, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8))


# File name -> reason given for it; every other image in the corpus must train.
UNREADABLE = {
    "zero.jpg": "file is empty",
    "truncated.jpg": "truncated image data",
    "truncated.png": "truncated image data",
    "notes.jpg": "not an image (text/HTML?)",
    "error page.png": "not an image (text/HTML?)",
    "link to itself.jpg": "cannot read file (Too many levels of symbolic links)",
    "locked.png": "permission denied",
}
READABLE = 12


def build_corpus(folder):
    """Every kind of image file a user's folder may hold, good and bad."""
    folder.mkdir()
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(encoded("JPEG")[:400])
    (folder / "truncated.png").write_bytes(encoded("PNG")[:2000])
    (folder / "notes.jpg").write_text("shopping list: film, batteries\n")
    (folder / "error page.png").write_text("<!DOCTYPE html>\n<html><body><h1>403 Forbidden</h1></body></html>\n")
    os.symlink("link to itself.jpg", folder / "link to itself.jpg")
    (folder / "locked.png").write_bytes(encoded("PNG", (40, 40)))
    noise(40, 40).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(np.random.default_rng(1).integers(0, 65536, (40, 40)).astype(np.uint16)).save(folder / "grey16.png")
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (40, 40, 4), np.uint8)).save(folder / "rgba.png")
    noise(40, 40, 3).convert("P").save(folder / "palette.gif")
    frames = [noise(40, 40, seed).convert("P") for seed in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    noise(1, 1).save(folder / "one pixel.png")
    noise(20, 20).save(folder / "smaller than the crop.png")
    Image.linear_gradient("L").resize((6000, 4000)).convert("RGB").save(folder / "6000x4000.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    noise(48, 40).save(folder / "exif rotated.jpg", exif=exif)
    for name in ("with space.png", "co:lon.png", "zebra \U0001f993.png"):
        noise(40, 40, 4).save(folder / name)
    os.symlink(".", folder / "loop")  # a folder link back to its parent: walked once
    (folder / "empty folder").mkdir()
    return folder


HUGE = (13500, 13500)  # 182 megapixels: over twice Pillow's MAX_IMAGE_PIXELS, so Pillow itself raises


class PthStorage:
    """A reference to raw storage `key` of `numel` elements of torch.<kind>: pickled as torch's persistent id."""

    def __init__(self, key, numel, kind="FloatStorage"):
        self.key, self.numel, self.kind = key, numel, kind


def _rebuild_tensor_v2(*args):
    raise AssertionError("only pickled, never called")


class PthTensor:
    """Pickles as torch.save pickles a tensor: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return _rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False, {})


_STORAGE_CLASSES = {name: type(name, (), {}) for name in ("FloatStorage", "DoubleStorage", "LongStorage")}


@contextmanager
def _torch_modules():
    """Modules named torch and torch._utils for the block, so that a pickle can name their globals."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for name, cls in _STORAGE_CLASSES.items():
        cls.__module__, cls.__qualname__ = "torch", name
        setattr(torch, name, cls)
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name)
            else:
                sys.modules[name] = module


def pth_pickle(obj, legacy=False):
    """The pickle torch.save writes for `obj` (PthTensor for tensors): protocol 2, storages as persistent ids."""

    class Pickler(pickle.Pickler):
        def persistent_id(self, value):
            if not isinstance(value, PthStorage):
                return None
            return ("storage", _STORAGE_CLASSES[value.kind], value.key, "cpu", value.numel) + ((None,) * legacy)

    buffer = io.BytesIO()
    with _torch_modules():
        Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def write_pth(path, obj, storages, legacy=False, keys=None, data_pkl=None, compression=zipfile.ZIP_STORED):
    """A .pth file of `obj` with raw storages {key: bytes}, in torch.save's zip format (members
    compressed as `compression`) or its legacy one (storage key list `keys`, default: the
    storages' keys; 4-byte elements). `data_pkl` replaces the pickle's bytes."""
    data = data_pkl if data_pkl is not None else pth_pickle(obj, legacy)
    if legacy:
        from tfcyclegan.models import torch_state

        parts = [pickle.dumps(torch_state.LEGACY_MAGIC, 2), pickle.dumps(1001, 2)]
        parts += [pickle.dumps({"little_endian": True}, 2), data, pickle.dumps(list(keys or storages), 2)]
        for raw in storages.values():
            parts += [np.int64(len(raw) // 4).tobytes(), raw]
        Path(path).write_bytes(b"".join(parts))
        return path
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("archive/data.pkl", data)
        archive.writestr("archive/byteorder", "little")
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)
    return path


def write_state_pth(path, arrays, legacy=False):
    """A .pth state dict of {name: float32 array}, each in a storage of its own, as torch.save writes it."""
    state, storages = {}, {}
    for i, (name, array) in enumerate(arrays.items()):
        array = np.ascontiguousarray(array, "<f4")
        strides = tuple(s // 4 for s in array.strides) if array.ndim else ()
        state[name] = PthTensor(PthStorage(str(i), array.size), 0, array.shape, strides)
        storages[str(i)] = array.tobytes()
    return write_pth(path, state, storages, legacy)
