"""A built-in offline domain pair with exact ground truth: flat shapes <-> striped shapes.

`demo:flat` (A) shows 1-3 large circles, rectangles and triangles in one flat brown (a
horse analogue) on a plain mid-grey background. `demo:striped` (B) is the very same
scene with every shape's area filled with black and white vertical stripes of period
STRIPE_PERIOD px (a zebra analogue), so each direction is a deterministic function of
the other. Stripes are anchored to the image origin (white where x mod 4 is 1 or 2),
which makes the pattern invariant under a horizontal flip of an image whose width is
a multiple of 4.

Why one colour and one background: instance norm, which the paper's generators apply
after their first convolution, removes each image's mean and scale per channel, so
they see a shape's colour only relative to the rest of the image, never its absolute
level. With colours and background levels varying from scene to scene, the
generators of a 15-minute run painted every shape in one tint and hid the true colour
in faint background patterns for the cycle loss (docs/results.md): the ground truth
then measured that loss of information, not the translation.
"""

import os
import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from tfcyclegan.data.splits import SPLIT_FOLDERS
from tfcyclegan.util import fsutil
from tfcyclegan.util.errors import UserError

STRIPE_PERIOD = 4
# Seed ranges per split: trainA and trainB are disjoint (genuinely unpaired training),
# testA and testB share seeds, so testB/<name> is the exact translation of testA/<name>.
SEED_OFFSETS = {"trainA": 1_000_000, "trainB": 2_000_000, "testA": 3_000_000, "testB": 3_000_000}
DEMO_DOMAINS = {"demo:flat": "A", "demo:striped": "B"}

BACKGROUND = np.float32(0.5)
FLAT = np.array((0.60, 0.40, 0.22), np.float32)
DARK, LIGHT = np.float32(0.1), np.float32(0.9)


def _shape_masks(rng, size):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    masks = []
    for _ in range(rng.integers(1, 4)):
        cx, cy = rng.uniform(0.2, 0.8, 2) * size
        kind = rng.integers(3)
        if kind == 0:
            r = rng.uniform(0.12, 0.25) * size
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        elif kind == 1:
            w, h = rng.uniform(0.125, 0.25, 2) * size
            mask = (np.abs(xx - cx) <= w) & (np.abs(yy - cy) <= h)
        else:
            # Three vertices at well-spread angles, so the triangle is never a sliver.
            angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2, 4]) * np.pi / 3 + rng.uniform(-0.4, 0.4, 3)
            radius = rng.uniform(0.2, 0.35) * size
            vx, vy = cx + radius * np.cos(angles), cy + radius * np.sin(angles)
            # Inside when on the same side of all three edges.
            sides = [
                (vx[j] - vx[i]) * (yy - vy[i]) - (vy[j] - vy[i]) * (xx - vx[i]) for i, j in ((0, 1), (1, 2), (2, 0))
            ]
            mask = ((sides[0] >= 0) & (sides[1] >= 0) & (sides[2] >= 0)) | (
                (sides[0] <= 0) & (sides[1] <= 0) & (sides[2] <= 0)
            )
        masks.append(mask)
    return masks


def shape_mask(seed, size):
    """Boolean HxW mask of the pixels covered by a shape in scene `seed`."""
    return np.logical_or.reduce(_shape_masks(np.random.default_rng(seed), size))


def render(seed, size, striped):
    """Scene `seed` as uint8 size x size x 3: flat brown shapes, or striped ones if `striped`."""
    image = np.full((size, size, 3), BACKGROUND, np.float32)
    light = (np.arange(size) % STRIPE_PERIOD >= 1) & (np.arange(size) % STRIPE_PERIOD <= 2)
    fill = np.where(light, LIGHT, DARK)[None, :, None] if striped else FLAT
    mask = shape_mask(seed, size)
    image[mask] = np.broadcast_to(fill, image.shape)[mask]
    return np.round(image * 255).astype(np.uint8)


def _marker(size, n_train, n_test):
    return f"tfcyclegan demo v3 size={size} n_train={n_train} n_test={n_test}\n"


# What every version of ensure_demo_data writes, and nothing else: the marker, the four
# splits, and in them `<seed>.png`.
_ANY_MARKER = re.compile(r"tfcyclegan demo v\d+ size=\d+ n_train=\d+ n_test=\d+\n")
_DEMO_IMAGE = re.compile(r"\d+\.png")
_ELSEWHERE = "or use another --data-root (or TFCYCLEGAN_DATA)"


def _check_ours(target):
    """Raise a UserError unless `target` is demo data written by tfcyclegan and nothing else,
    so replacing it loses no file of the user's."""
    marker = target / "COMPLETE"
    why = None
    if target.is_symlink():
        why = "a symbolic link"
    elif not target.is_dir():
        why = "a file"
    elif not marker.is_file() or marker.is_symlink():
        why = "no demo COMPLETE marker"
    else:
        try:
            ours = _ANY_MARKER.fullmatch(marker.read_text(errors="replace")) is not None
        except OSError:
            ours = False
        if not ours:
            why = "its COMPLETE file is not a tfcyclegan demo marker"
    if why:
        raise UserError(f"{target} exists and is not tfcyclegan's demo data ({why}); move it away, {_ELSEWHERE}")
    _check_only_ours(target)


def _check_only_ours(target):
    """Raise a UserError if the demo folder `target` holds anything ensure_demo_data does
    not write: it would be trained on, or deleted with the folder."""
    foreign = []
    for entry in sorted(target.iterdir()):
        if entry.name == "COMPLETE":
            continue
        if entry.name not in SPLIT_FOLDERS or entry.is_symlink() or not entry.is_dir():
            foreign.append(entry.name)
            continue
        foreign += [
            f"{entry.name}/{f.name}"
            for f in sorted(entry.iterdir())
            if not _DEMO_IMAGE.fullmatch(f.name) or f.is_symlink() or not f.is_file()
        ]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise UserError(
            f"{target} holds files that are not tfcyclegan's demo data ({shown}); move them away, {_ELSEWHERE}"
        )


def ensure_demo_data(root, size=64, n_train=200, n_test=50):
    """Write the demo PNGs once under <root>/demo/{trainA,trainB,testA,testB}; return that folder.

    File names are the scene seeds, `<seed>.png`. The set is built in a temporary
    folder and renamed into place, so it is never seen half-made. An existing
    <root>/demo made with other parameters is replaced only if it is demo data that
    tfcyclegan wrote (its COMPLETE marker) holding nothing else; otherwise UserError.
    Demo data holding files it did not write is a UserError too, never trained on.
    """
    root = Path(root).expanduser()
    target = root / "demo"
    marker = _marker(size, n_train, n_test)
    if (target / "COMPLETE").is_file() and (target / "COMPLETE").read_text(errors="replace") == marker:
        _check_only_ours(target)
        return str(target)
    if os.path.lexists(target):
        _check_ours(target)  # before any work: a folder of the user's stops the command here
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = fsutil.unique_dir(root, ".demo-")
    except OSError as e:
        raise UserError(
            f"cannot write the demo data into {root}: {e.strerror}; set TFCYCLEGAN_DATA or --data-root to a writable folder"
        ) from None
    try:
        counts = {"trainA": n_train, "trainB": n_train, "testA": n_test, "testB": n_test}
        for split in SPLIT_FOLDERS:
            (staging / split).mkdir()
            for i in range(counts[split]):
                seed = SEED_OFFSETS[split] + i
                Image.fromarray(render(seed, size, striped=split.endswith("B"))).save(staging / split / f"{seed}.png")
        (staging / "COMPLETE").write_text(marker)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise UserError(
                f"cannot write the demo data into {root}: {error.strerror or error}; free some disk space, "
                "or set TFCYCLEGAN_DATA or --data-root to another folder"
            ) from None
        raise
    # A set made with other parameters is replaced, if it is ours alone (checked again
    # now: files may have been added while the new set was made); losing a race to a
    # concurrent writer of the same set is fine, theirs is as good as ours.
    old = None
    try:
        if os.path.lexists(target):
            _check_ours(target)
            old = fsutil.unique_dir(root, ".demo-old-")
            os.rename(target, old / "demo")
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not ((target / "COMPLETE").is_file() and (target / "COMPLETE").read_text(errors="replace") == marker):
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return str(target)


def ground_truth_path(path):
    """The exact translation of a demo test image: testA/<name> <-> testB/<name>."""
    path = Path(path)
    other = {"testA": "testB", "testB": "testA"}.get(path.parent.name)
    if other is None or not (path.parent.parent / "COMPLETE").is_file():
        raise UserError(f"{path} is not in a demo test split (testA/testB); ground truth exists only for demo: domains")
    return str(path.parent.parent / other / path.name)
