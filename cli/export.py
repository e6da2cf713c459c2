"""`tfcyclegan export`: a run's (or model directory's) generators as a SavedModel, TFLite
files or .keras files, parity-checked."""

import click
from tfcyclegan_cli.common import checkpoint_option, user_errors

# Stdlib only at import: `tfcyclegan --help` takes the choice lists without TensorFlow.
from tfcyclegan.export import options


@click.command("export")
@click.argument("run_dir", metavar="MODEL")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(options.FORMATS),
    default="savedmodel",
    show_default=True,
    help="savedmodel: one SavedModel with a2b, b2a, a2b_uint8, b2a_uint8 endpoints; tflite: a2b.tflite and "
    "b2a.tflite; keras: a model directory (generator_g.keras, generator_f.keras).",
)
@click.option(
    "--quantize",
    type=click.Choice(options.QUANTIZE),
    default="none",
    show_default=True,
    help="TFLite only. float16: half-size weights; dynamic: int8 weights; int8: int8 weights and "
    "activations, calibrated on domain images, float32 input and output.",
)
@click.option(
    "--calibration-dir",
    multiple=True,
    help="Images to calibrate int8 and check parity on: a folder with trainA/ and trainB/ "
    "(or A/ and B/), or give it twice: domain A's folder, then domain B's "
    "[default: the run's training domains].",
)
@click.option(
    "--output",
    "-o",
    default=None,
    help="Export folder [default: saved_models/<run name>/savedmodel, .../tflite or .../tflite-<quantize>].",
)
@checkpoint_option
@user_errors
def export(run_dir, fmt, quantize, calibration_dir, output, checkpoint):
    """Export MODEL and verify it against the Keras generators.

    MODEL is a run directory (its newest checkpoint) or a model directory from
    `tfcyclegan import` (a one-way pretrained generator exports its one direction; for
    int8 give --calibration-dir once, a folder of its source images).

    \b
    tfcyclegan export runs/horse2zebra --format tflite --quantize int8
    """
    from tfcyclegan import export as exporting

    # Progress and each direction's parity go to stderr (report.note); the result to stdout.
    result = exporting.export(
        run_dir, fmt, output=output, quantize=quantize, calibration_dirs=calibration_dir, checkpoint=checkpoint
    )
    # --quantize none is a float32 file.
    kind = f"TFLite ({'float32' if quantize == 'none' else quantize})" if fmt == "tflite" else options.FORMAT_NAMES[fmt]
    click.echo(f"exported {kind} to {result.path} ({result.size / 1e6:.1f} MB)")
