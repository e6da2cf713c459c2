"""`tfcyclegan translate`: translate image files and folders with a trained model."""

import contextlib
import sys

import click
from tfcyclegan_cli.common import checkpoint_option, trust_model_option, user_errors

# Its option lists are stdlib-only constants (tfcyclegan.inference.options): `tfcyclegan --help`
# takes them without loading TensorFlow.
from tfcyclegan import inference


def _fresh_line(bar):
    # A drawn bar owns the current terminal line: a message starts on the next one.
    return "\n" if bar is not None and sys.stderr.isatty() else ""


@click.command("translate")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "--model",
    required=True,
    help="Run directory, model directory (tfcyclegan import), exported SavedModel, .tflite file, or PyTorch "
    "generator .pth file.",
)
@click.option(
    "--direction",
    type=click.Choice(inference.DIRECTIONS),
    default=None,
    help="a2b translates domain A to B with G; b2a translates B to A with F. Needed only for a model that "
    "translates both ways (a run, a SavedModel, a two-way model directory).",
)
@click.option("--output", "-o", required=True, help="Folder for the translated images (created if needed).")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Images of the same size translated together.",
)
@click.option(
    "--max-size",
    type=click.IntRange(min=inference.MIN_SIDE),
    default=None,
    help="Downscale images whose longer side exceeds this many pixels (noted per image).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(inference.IMAGE_FORMATS)),
    default="png",
    show_default=True,
    help="Output image format; each output keeps its input's name with this extension.",
)
@click.option(
    "--allow-large",
    is_flag=True,
    help="Translate images over the decoder's safety limit (89 megapixels) at full size; trust the files first.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace outputs that already exist in --output [default: leave them as they are and skip their inputs].",
)
@trust_model_option
@checkpoint_option
@user_errors
def translate(
    inputs, model, direction, output, batch_size, max_size, fmt, allow_large, overwrite, trust_model, checkpoint
):
    """Translate images (files or folders, recursively) of any size.

    \b
    tfcyclegan translate --model runs/horse2zebra --direction a2b photos/ --output zebras/
    """
    from tfcyclegan.util.errors import UserError

    inference.check_output_dir(output)  # before the model is loaded: a file there is a mistake
    translator = inference.load_translator(model, direction, trust_model=trust_model, checkpoint=checkpoint)
    with contextlib.ExitStack() as stack:
        bar = None

        def progress(done, total):
            nonlocal bar
            if bar is None:
                bar = stack.enter_context(click.progressbar(length=total, label="translating", file=sys.stderr))
            bar.update(done - bar.pos)

        outcome = inference.translate_files(
            translator,
            inputs,
            output,
            batch_size=batch_size,
            max_size=max_size,
            fmt=fmt,
            progress=progress,
            log=lambda message: click.echo(_fresh_line(bar) + message, err=True),
            allow_large=allow_large,
            overwrite=overwrite,
        )
    if outcome.existing:
        total = len(outcome.existing) + len(outcome.written) + len(outcome.skipped)
        click.echo(
            f"skipped {len(outcome.existing)} of {total} inputs: their output already exists in {output}; "
            "pass --overwrite to replace them",
            err=True,
        )
    written, skipped = len(outcome.written), len(outcome.skipped)
    small, large = len(outcome.too_small), len(outcome.too_large)
    why = [
        f"{count} {what}"
        for count, what in ((skipped - small - large, "could not be read"), (small, "too small"), (large, "too large"))
        if count
    ]
    if skipped and not written:
        raise UserError(
            f"none of the {skipped} inputs was translated ({', '.join(why)}; listed above); nothing was written"
        )
    if skipped:
        raise UserError(
            f"{skipped} of {written + skipped} inputs were skipped ({', '.join(why)}; listed above); "
            f"the other {written} were written to {output}"
        )
    note = f" ({len(outcome.downscaled)} downscaled by --max-size)" if outcome.downscaled else ""
    click.echo(f"translated {written} image{'' if written == 1 else 's'} into {output}{note}")
