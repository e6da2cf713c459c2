"""Image files in, RGB pixels out: listing, robust decoding, pixel conversions.

Pixels are uint8 in files and float32 in [-1, 1] in the model: x = u / 127.5 - 1.
"""

import codecs
import io
import os
import stat
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from tfcyclegan.util import report
from tfcyclegan.util.errors import UserError, first_line
from tfcyclegan.util.runmarker import is_run_dir

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# Files above this size are refused before they are read. No real image file comes near
# it: the largest the decoder accepts, an uncompressed 32-bit BMP at Pillow's hard limit
# of 2 x Image.MAX_IMAGE_PIXELS (179 megapixels), is 716 MB; a 100-megapixel PNG photo
# is about 300 MB.
MAX_FILE_BYTES = 1 << 30
# Folders a listing could not enter that are named one by one; the rest are counted.
MAX_SKIP_NOTES = 10

# File signatures of the formats above: a file that starts like an image but fails to
# decode is damaged, not a stray text file.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


def _has_image_signature(data):
    return data.startswith(_MAGIC) or (data.startswith(b"RIFF") and data[8:12] == b"WEBP")


class ImageError(UserError):
    """An image file that cannot be used; `reason` is short and human ("file is empty")."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"cannot use image {self.path}: {reason}; remove or replace it "
            "(`tfcyclegan check-data FOLDER` lists every unreadable file)"
        )


def list_images(folder, *, allow_empty=False, log=report.note):
    """Image files under `folder`, recursively and sorted.

    Hidden files and folders are skipped, and so is a tfcyclegan run directory (with a
    note): its samples must never train a run. Symlinked folders are followed, each real
    folder at most once, so a link loop ends the walk instead of hanging it. The walk
    keeps its own stack, so no nesting depth exhausts Python's recursion limit. A
    subfolder that cannot be listed (it vanished during the walk, as in /proc, or its
    permissions forbid it) is skipped with a note through `log`, one line per folder up
    to MAX_SKIP_NOTES and then a count; `folder` itself must be listable. A folder
    without images is an error unless `allow_empty`.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise UserError(f"{folder}: no such folder; check the path")
    if not root.is_dir():
        raise UserError(f"{folder} is a file, not a folder; give the folder that holds the images")

    seen, files, skipped = set(), [], 0
    stack = [str(root)]
    while stack:
        top = stack.pop()
        try:
            st = os.stat(top)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(top) as listing:
                entries = list(listing)
        except OSError as error:
            if top == str(root):
                raise UserError(f"cannot list folder {top}: {first_line(error)}; fix its permissions") from None
            skipped += 1
            if skipped <= MAX_SKIP_NOTES:
                if isinstance(error, (FileNotFoundError, NotADirectoryError)):
                    why = "it vanished during the listing"
                elif isinstance(error, PermissionError):
                    why = "permission denied; fix its permissions to include its images"
                else:
                    why = first_line(error)
                log(f"note: skipped folder {top}: {why}")
            continue
        # Subfolders are pushed in reverse name order, so they are walked (and noted) in name order.
        for entry in sorted(entries, key=lambda e: e.name, reverse=True):
            if entry.name.startswith("."):
                continue
            try:
                is_folder = entry.is_dir()  # follows symlinks
            except OSError:
                is_folder = False
            if is_folder and is_run_dir(entry.path):
                # A run kept among the data: its samples and figures are not training images.
                log(f"note: skipped folder {entry.path}: a tfcyclegan run directory, not data")
            elif is_folder:
                stack.append(entry.path)
            elif entry.name.lower().endswith(IMAGE_EXTENSIONS):
                files.append(entry.path)
    if skipped > MAX_SKIP_NOTES:
        log(f"note: skipped {skipped - MAX_SKIP_NOTES} more folders under {folder} that could not be listed")
    if not files and not allow_empty:
        raise UserError(
            f"{folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)}); point it at a folder of images"
        )
    return sorted(files)


def _looks_like_text(head):
    # Incremental decoding accepts a multi-byte character cut at the end of `head`.
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\r\n\f\ufeff" for c in text)


class ImageTooLarge(ImageError):
    """An image with more pixels than the decoder's safety limit; `size` is (width, height)."""

    def __init__(self, path, size, limit):
        self.size = size
        w, h = size
        super().__init__(
            path,
            f"{w}x{h} pixels ({w * h / 1e6:.0f} megapixels) is larger than the decoder's safety limit "
            f"of {limit / 1e6:.0f} megapixels",
        )


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_regular(path, st):
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(path, "is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _SPECIAL_FILES if test(st.st_mode)), "not a file")
        raise ImageError(path, f"not a regular file ({kind}); only image files are read")
    if st.st_size > MAX_FILE_BYTES:
        raise ImageError(
            path, f"file is {st.st_size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES >> 20} MiB limit for an image file"
        )


def _read_file(path):
    """The bytes of `path`, read only when it is a regular file of at most MAX_FILE_BYTES:
    a named pipe would block forever and a device (/dev/zero) never ends."""
    try:
        _check_regular(path, os.stat(path))
        # O_NONBLOCK: a path swapped for a named pipe after the check still opens at once.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            _check_regular(path, os.fstat(f.fileno()))
            data = f.read(MAX_FILE_BYTES + 1)
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except FileNotFoundError:
        raise ImageError(path, "file not found (broken link?)") from None
    except OSError as e:
        raise ImageError(path, f"cannot read file ({first_line(e)})") from None
    if len(data) > MAX_FILE_BYTES:  # it grew after the check
        raise ImageError(path, f"file is over the {MAX_FILE_BYTES >> 20} MiB limit for an image file")
    return data


def _open(data):
    """Image.open of `data` (reads the header only) without Pillow's decompression-bomb check.

    That check reads the module-wide Image.MAX_IMAGE_PIXELS: above it Pillow warns (a raw
    DecompressionBombWarning naming its own source file), above twice it raises. `_decode`
    checks the size against the same limit itself and says what to do, and lets
    --allow-large go past it, all without changing the limit for the host process. The
    plugins are tried in Pillow's order (Image.ID, Image.OPEN), as Image.open does.
    """
    Image.preinit()  # the common formats first, then every plugin, as Image.open registers them
    Image.init()
    prefix = data[:16]
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        verdict = accept(prefix) if accept else True
        if not verdict or isinstance(verdict, str):  # a string is a plugin's "not quite" note
            continue
        try:
            return factory(io.BytesIO(data), "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
    raise Image.UnidentifiedImageError("cannot identify image file")


def _unusable(path, data, error):
    # Pillow raises many exception types on damaged input (OSError, SyntaxError,
    # ValueError, EOFError, struct.error...): all mean "unusable".
    if not _has_image_signature(data):
        kind = "text/HTML?" if _looks_like_text(data[:512]) else "unrecognised format"
        return ImageError(path, f"not an image ({kind})")
    if "truncat" in str(error).lower():
        return ImageError(path, "truncated image data")
    return ImageError(path, f"corrupt image data ({first_line(error)})")


def _decode(path, draft=None, allow_large=False):
    """Open `path` as an RGB PIL image: EXIF orientation applied, alpha composited on white.

    Only a regular file of at most MAX_FILE_BYTES is read. An image with more pixels than
    Pillow's Image.MAX_IMAGE_PIXELS (89 megapixels) raises ImageTooLarge unless
    `allow_large`. With `draft`, a JPEG at least twice that size is decoded at a reduced
    DCT scale (still at least draft x draft) when only a resized copy is wanted: large
    photos cost ~1/16.
    """
    data = _read_file(path)
    if not data:
        raise ImageError(path, "file is empty")
    try:
        im = _open(data)
    except Exception as e:
        raise _unusable(path, data, e) from None
    limit = Image.MAX_IMAGE_PIXELS
    if limit and not allow_large and im.size[0] * im.size[1] > limit:
        raise ImageTooLarge(path, im.size, limit)
    try:
        if draft:
            im.draft(None, (draft, draft))
        im.load()  # full decode of the first frame, so truncation shows up here
    except Exception as e:
        raise _unusable(path, data, e) from None
    try:
        ImageOps.exif_transpose(im, in_place=True)
    except Exception as e:
        # Malformed EXIF must not make otherwise good pixels unusable, but the image may
        # come out rotated: say so, once per file (training decodes it every epoch).
        if str(path) not in _exif_warned:
            _exif_warned.add(str(path))
            report.note(f"warning: {path}: EXIF orientation unreadable ({first_line(e)}); using the pixels as stored")
    return _to_rgb(im, path)


_exif_warned = set()


def _to_rgb(im, path):
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grey: 65535 -> 255 by v / 257, exact for 8-bit values stored as v * 257.
        grey = np.clip(np.asarray(im, dtype=np.float64) / 257.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(np.repeat(grey[..., None], 3, axis=2))
    if (im.mode == "P" and "transparency" in im.info) or im.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError:
        raise ImageError(path, f"unsupported colour mode {im.mode}") from None


def load_image(path, allow_large=False):
    """Decode `path` into a uint8 HxWx3 RGB array (see `_decode` for the conversions and limits)."""
    return np.asarray(_decode(path, allow_large=allow_large))


def _load_resized(path, size):
    im = _decode(path, draft=size)
    if im.size != (size, size):
        im = im.resize((size, size), Image.BICUBIC)
    return np.asarray(im)


class _Progress:
    """A counter on stderr: on a terminal `\\r`-rewritten at most every 0.1 s; in a file or
    pipe, where `\\r` does not erase, only the finished line."""

    def __init__(self, label, total, enabled):
        self.label, self.total, self.enabled, self.last = label, total, enabled, 0.0
        self.tty = enabled and sys.stderr.isatty()

    def update(self, done):
        if not self.enabled:
            return
        if not self.tty:
            if done == self.total:
                sys.stderr.write(f"{self.label}: {done}/{self.total}\n")
            return
        now = time.monotonic()
        if now - self.last >= 0.1 or done == self.total:
            self.last = now
            sys.stderr.write(f"\r{self.label}: {done}/{self.total}")
            if done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def scan_images(paths, progress=True):
    """Fully decode every file; return (good paths, [(bad path, reason)]) in input order."""

    def check(path):
        try:
            _decode(path)
        except ImageError as e:
            return e.reason
        return None

    paths = [str(p) for p in paths]
    good, bad = [], []
    meter = _Progress("checking images", len(paths), progress and len(paths) >= 100)
    # Pillow decodes outside the GIL, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for done, (path, reason) in enumerate(zip(paths, pool.map(check, paths)), 1):
            if reason is None:
                good.append(path)
            else:
                bad.append((path, reason))
            meter.update(done)
    return good, bad


def to_float(x):
    """uint8 [0, 255] -> float32 [-1, 1]: x / 127.5 - 1 (numpy arrays or tensors)."""
    if tf.is_tensor(x):
        return tf.cast(x, tf.float32) / 127.5 - 1.0
    return np.asarray(x, np.float32) / np.float32(127.5) - np.float32(1.0)


def to_uint8(x):
    """float [-1, 1] -> uint8: round((x + 1) * 127.5), clipped to [0, 255] (numpy arrays or tensors)."""
    if tf.is_tensor(x):
        return tf.cast(tf.round(tf.clip_by_value((tf.cast(x, tf.float32) + 1.0) * 127.5, 0.0, 255.0)), tf.uint8)
    return np.clip(np.round((np.asarray(x, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
