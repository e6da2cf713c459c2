"""File batches: translate image files and folders into an output folder.

Which input goes to which output is planned and checked before any work (plan_outputs);
inputs are read one by one (tfcyclegan.data), translated in batches of one size, and
each output is written whole under a temporary name and then published (tfcyclegan.util.fsutil),
never replacing a file that exists unless asked. Unreadable or unusable inputs are
skipped with a note; what happened is returned as a TranslateOutcome.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from tfcyclegan.data import imagefiles
from tfcyclegan.inference.options import IMAGE_FORMATS, MIN_SIDE
from tfcyclegan.util import fsutil
from tfcyclegan.util.errors import UserError, first_line
from tfcyclegan.util.report import note


@dataclass
class TranslateOutcome:
    """What translate_files did: files written, inputs skipped (path, reason), inputs downscaled.

    `too_small` and `too_large` are the skipped inputs that were read but could not be
    translated at their size (too_large: over the decoder's pixel limit, see --allow-large).
    """

    written: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    downscaled: list = field(default_factory=list)
    # Outputs that already existed and were left as they are (no `overwrite`); their
    # inputs are not translated and not in `skipped`.
    existing: list = field(default_factory=list)
    too_small: list = field(default_factory=list)
    too_large: list = field(default_factory=list)


def check_output_dir(output_dir):
    """UserError unless `output_dir` is a folder or can be made one: a file there (or in
    place of one of its parents) stops the command before any work."""
    path = Path(output_dir).expanduser()
    for parent in (path, *path.parents):
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise UserError(
                    f"--output {output_dir}: {parent} is a file, not a folder; give a folder for the translated images"
                )
            return


def _key(path):
    return os.path.normcase(path)


def _inside(path, folder):
    """Whether the resolved `path` is `folder` or lies under it (both resolved, as _key gives them)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def plan_outputs(inputs, output_dir, fmt="png"):
    """[(input file, output file)] for files and folders (recursive, subfolders kept).

    Each output keeps its input's file name with the extension of `fmt`. Paths are
    compared resolved (links, `..`), so an --output that is a link to an input folder is
    seen for what it is. Two inputs that would land on the same output, an output that
    would overwrite its input, or an input inside the output folder are an error before
    any work is done. An output folder inside an input folder is left out of that
    input: what is in it are earlier outputs, never inputs.
    """
    if fmt not in IMAGE_FORMATS:
        raise UserError(f"format must be one of {', '.join(IMAGE_FORMATS)}, not {fmt!r}")
    suffix = IMAGE_FORMATS[fmt][1]
    output_dir = Path(output_dir).expanduser()
    check_output_dir(output_dir)
    out_real = _key(os.path.realpath(output_dir))
    jobs = []
    for item in inputs:
        item = Path(item).expanduser()
        if item.is_dir():
            item_real = _key(os.path.realpath(item))
            nested = out_real != item_real and _inside(out_real, item_real)
            for p in imagefiles.list_images(item):
                if nested and _inside(_key(os.path.realpath(p)), out_real):
                    continue
                jobs.append((item, Path(p), Path(p).relative_to(item)))
        elif item.exists():
            jobs.append((item, item, Path(item.name)))
        else:
            raise UserError(f"input {item}: no such file or folder")
    if not jobs:
        raise UserError("no input images given")
    seen = {}
    plan = []
    for item, source, relative in jobs:
        target = output_dir / relative.with_suffix(suffix)
        # The folder resolved (a link inside --output may lead anywhere), not the file:
        # replacing a link named like the target replaces the link, not what it points to.
        key = _key(os.path.join(os.path.realpath(target.parent), target.name))
        if key in seen:
            raise UserError(
                f"{seen[key]} and {source} would both be written to {target}; "
                "translate them into separate --output folders"
            )
        source_real = _key(os.path.realpath(source))
        if key == source_real:
            raise UserError(f"{target} would overwrite its input {source}; choose another --output folder")
        if _inside(source_real, out_real):
            raise UserError(
                f"input {item} is inside the --output folder {output_dir}, so earlier outputs would be taken as "
                "inputs; choose an --output folder outside the inputs"
            )
        seen[key] = source
        plan.append((source, target))
    return plan


def _save(array, target, fmt, overwrite=True):
    """Write `target`; False if it exists (appeared since planning) and not `overwrite`."""
    kind, _, options = IMAGE_FORMATS[fmt]
    partial = None
    try:
        fsutil.make_folders(target.parent)
        # Written under a unique hidden name beside the target and then given its name, so
        # an interrupted run leaves no half image and two runs never share a temporary file.
        file, partial = fsutil.unique_file(target.parent, f".{target.name}.", ".part")
        with file:
            Image.fromarray(array).save(file, format=kind, **options)
        return fsutil.publish(partial, target, overwrite)
    except BaseException as error:
        if partial is not None:
            partial.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise UserError(f"cannot write {target}: {first_line(error)}; check the --output folder") from None
        raise


def translate_files(
    translator,
    inputs,
    output_dir,
    batch_size=1,
    max_size=None,
    fmt="png",
    progress=None,
    log=note,
    allow_large=False,
    overwrite=False,
):
    """Translate image files and folders into `output_dir`; returns a TranslateOutcome.

    Images of the same size are batched (up to `batch_size`). An image whose longer side
    exceeds `max_size` is downscaled (aspect kept) before translation, with a note; one
    whose shorter side would then fall below MIN_SIDE is skipped as too small. An image
    over the decoder's pixel limit (imagefiles.ImageTooLarge) is skipped unless `allow_large`
    or `max_size` is given. An unreadable input is reported through `log` in one line and
    skipped. `progress(done, total)` is called as inputs finish. An output that already
    exists is left as it is and its input not translated (outcome.existing), unless
    `overwrite`.
    """
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1 (got {batch_size})")
    if max_size is not None and max_size < MIN_SIDE:
        raise UserError(f"--max-size must be >= {MIN_SIDE} (got {max_size})")
    plan = plan_outputs(inputs, output_dir, fmt)
    outcome = TranslateOutcome()
    if not overwrite:
        outcome.existing = [str(target) for _, target in plan if os.path.lexists(target)]
        plan = [(source, target) for source, target in plan if not os.path.lexists(target)]
    total, done = len(plan), 0
    pending = {}  # (h, w) -> [(image, target)]

    def finish(count):
        nonlocal done
        done += count
        if progress:
            progress(done, total)

    def flush(size):
        batch = pending.pop(size)
        # A single (possibly very large) image is passed as a view, not copied by np.stack.
        images = batch[0][0][None] if len(batch) == 1 else np.stack([image for image, _ in batch])
        out = translator.translate_uint8(images)
        for array, (_, target) in zip(out, batch):
            if _save(array, target, fmt, overwrite):
                outcome.written.append(str(target))
            else:
                outcome.existing.append(str(target))
        finish(len(batch))

    def skip(source, reason, kind=None):
        outcome.skipped.append((str(source), reason))
        if kind is not None:
            kind.append((str(source), reason))
        log(f"skipped {source}: {reason}")
        finish(1)

    for source, target in plan:
        try:
            image = imagefiles.load_image(source, allow_large=allow_large or max_size is not None)
        except imagefiles.ImageTooLarge as error:
            skip(
                source,
                f"{error.reason}; pass --max-size to translate it downscaled or --allow-large",
                outcome.too_large,
            )
            continue
        except imagefiles.ImageError as error:
            skip(source, error.reason)
            continue
        h, w = image.shape[:2]
        if max_size is not None and max(h, w) > max_size:
            scale = max_size / max(h, w)
            size = (round(w * scale), round(h * scale))
            if min(size) < MIN_SIDE:
                skip(
                    source,
                    f"too small at --max-size {max_size}: {w}x{h} would become {size[0]}x{size[1]}, "
                    f"and at least {MIN_SIDE}x{MIN_SIDE} is needed",
                    outcome.too_small,
                )
                continue
            image = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
            outcome.downscaled.append((str(source), (w, h), size))
            log(f"note: {source} is {w}x{h}; translated at {size[0]}x{size[1]} (--max-size {max_size})")
            h, w = image.shape[:2]
        if min(h, w) < MIN_SIDE:
            skip(source, f"too small ({w}x{h}; at least {MIN_SIDE}x{MIN_SIDE} needed)", outcome.too_small)
            continue
        pending.setdefault((h, w), []).append((image, target))
        if len(pending[(h, w)]) == batch_size:
            flush((h, w))
        elif sum(len(v) for v in pending.values()) > 4 * batch_size:
            # Many different sizes: bound memory by translating the fullest group early.
            flush(max(pending, key=lambda k: len(pending[k])))
    for size in list(pending):
        flush(size)
    return outcome
