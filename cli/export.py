"""`tfcyclegan export`: a run's (or model directory's) generators as a SavedModel, TFLite
files or .keras files, parity-checked."""

import click
from tfcyclegan_cli.common import user_errors


@click.command("export")
@click.argument("run_dir", metavar="MODEL")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["savedmodel", "tflite", "keras"]),
    default="savedmodel",
    show_default=True,
    help="savedmodel: one SavedModel with a2b, b2a, a2b_uint8, b2a_uint8 endpoints; tflite: a2b.tflite and "
    "b2a.tflite; keras: a model directory (generator_g.keras, generator_f.keras).",
)
@click.option(
    "--quantize",
    type=click.Choice(["none", "float16", "dynamic", "int8"]),
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
@click.pass_context
@user_errors
def export(ctx, run_dir, fmt, quantize, calibration_dir, output):
    """Export MODEL and verify it against the Keras generators.

    MODEL is a run directory (its newest checkpoint) or a model directory from
    `tfcyclegan import` (a one-way pretrained generator exports its one direction; for
    int8 give --calibration-dir once, a folder of its source images).

    \b
    tfcyclegan export runs/horse2zebra --format tflite --quantize int8
    """
    from tfcyclegan import export as exporting

    if fmt != "tflite" and quantize != "none":
        raise click.UsageError("--quantize applies to --format tflite only", ctx)
    if len(calibration_dir) > 2:
        raise click.UsageError("give --calibration-dir once or twice", ctx)
    result = exporting.export(
        run_dir,
        fmt,
        output=output,
        quantize=quantize,
        calibration_dirs=calibration_dir,
        log=lambda message: click.echo(message, err=True),
    )
    kind = {"savedmodel": "SavedModel", "keras": "Keras model directory"}.get(fmt, f"TFLite ({quantize})")
    click.echo(f"exported {kind} to {result.path} ({result.size / 1e6:.1f} MB)")
