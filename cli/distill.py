"""`tfcyclegan distill`: a mobile student of one direction of a trained translator."""

import click
from tfcyclegan_cli.common import user_errors

# (option, help); the default and type come from DistillConfig.
HELP = {
    "domain_a": "The teacher's source images, which the student learns on (a folder, a named domain or demo:...).",
    "domain_b": "Real target images: adds the LSGAN term against a PatchGAN (the teacher's own when TEACHER is a "
    "run directory) [default: none, no adversarial term].",
    "direction": "Which direction of a two-way TEACHER to distill: a2b (G) or b2a (F) [default: a one-way "
    "teacher's only direction].",
    "run_dir": "Run directory [default: runs/<teacher name>-mobile].",
    "data_root": "Where named datasets live or are downloaded to.",
    "ngf": "Filters of the student's first layer.",
    "blocks": "The student's residual blocks.",
    "image_size": "Training crop size (multiple of 4).",
    "load_size": "Images are resized to this before the random crop.",
    "epochs": "Total epochs (more than a run dir has extends that run).",
    "decay_epoch": "Epoch after which the learning rate decays linearly to 0.",
    "steps_per_epoch": "Steps per epoch [default: images in --domain-a / batch size].",
    "batch_size": "Batch size.",
    "lr": "Initial Adam learning rate.",
    "precision": "float32, mixed_bfloat16 or mixed_float16 (the student's; the teacher computes in float32).",
    "seed": "Random seed for weights, shuffling and crops.",
    "lambda_l1": "Weight of L1 between student and teacher outputs.",
    "lambda_feature": "Weight of the feature distillation (teacher activations through learnable 1x1 convolutions).",
    "lambda_gan": "Weight of the LSGAN term (with --domain-b).",
    "ndf": "Filters of the discriminator's first layer [default: the teacher's].",
    "disc_layers": "Stride-2 layers of the discriminator [default: the teacher's].",
    "sample_count": "Images per sample grid.",
    "log_every": "Steps between TensorBoard scalar points.",
}


def _options(command):
    import dataclasses

    from tfcyclegan.runs.config import PRECISIONS
    from tfcyclegan.runs.distillconfig import DIRECTIONS, DistillConfig

    fields = {f.name: f for f in dataclasses.fields(DistillConfig)}
    choices = {"precision": click.Choice(PRECISIONS), "direction": click.Choice(DIRECTIONS)}
    for name in reversed(HELP):
        default = fields[name].default
        kind = choices.get(name) or {"int": int, "float": float}.get(type(default).__name__, str)
        if name == "steps_per_epoch":
            kind = int
        command = click.option(
            "--" + name.replace("_", "-"),
            name,
            type=kind,
            default=default,
            show_default=default is not None,
            required=name == "domain_a",
            help=HELP[name],
        )(command)
    return command


@click.command("distill")
@click.argument("teacher")
@_options
@click.pass_context
@user_errors
def distill(ctx, teacher, **options):
    """Distill TEACHER (a run directory, model directory or .pth) into a mobile generator.

    tfcyclegan distill runs/photos2ukiyoe --direction a2b --domain-a photos
    """
    from tfcyclegan.runs.distillconfig import DistillConfig
    from tfcyclegan.training import distill as distilling

    explicit = {name for name in options if ctx.get_parameter_source(name).name != "DEFAULT"}
    config = DistillConfig(teacher=teacher, **options)
    distilling.distill(config, explicit=explicit)
