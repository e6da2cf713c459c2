"""`tfcyclegan fit`: train a translator between two domains."""

import dataclasses

import click
from tfcyclegan_cli.common import user_errors

# (option, help) for every TrainConfig field; the default and type come from TrainConfig.
HELP = {
    "domain_a": "Domain X: a folder of images, a named Berkeley domain (photos, ukiyoe, vangogh, monet, "
    "cezanne, horses, zebras, apples, oranges, summer, winter) or demo:flat / demo:striped.",
    "domain_b": "Domain Y, given like --domain-a.",
    "data_root": "Where named datasets live or are downloaded to [default: $TFCYCLEGAN_DATA, else the Keras cache].",
    "run_dir": "Run directory for checkpoints, logs and figures [default: runs/<a>2<b>].",
    "epochs": "Total epochs (more than a run dir has extends that run).",
    "decay_epoch": "Epoch E0 after which the learning rate decays linearly to 0.",
    "lr": "Initial Adam learning rate.",
    "beta1": "Adam beta_1.",
    "lambda_gan": "Weight l1 of L_GAN in L_G (eq. 6).",
    "lambda_identity": "Weight l2 of L_identity in L_G (eq. 6).",
    "lambda_cycle": "Weight l3 of L_cyc in L_G (eq. 6).",
    "generator": "resnet (the paper's) or mobile (depthwise-separable residual blocks, GAN Compression's: "
    "about 1/60 of the multiply-adds at --ngf 16; see docs/mobile.md).",
    "blocks": "Residual blocks in each generator (6 as the paper, 9 for 256px in the official code).",
    "ngf": "Filters of the generators' first layer.",
    "ndf": "Filters of the discriminators' first layer.",
    "disc_layers": "Stride-2 layers of the PatchGAN discriminators (3 gives 70x70 patches).",
    "image_size": "Training crop size (multiple of 4).",
    "load_size": "Images are resized to this before the random crop.",
    "batch_size": "Global batch size.",
    "pool_size": "Past fakes kept per domain for the discriminators (0 disables the pool).",
    "steps_per_epoch": "Steps per epoch [default: max(|A|, |B|) / batch size].",
    "seed": "Random seed for weights, shuffling, crops and the pool.",
    "flip": "Random horizontal flips.",
    "sample_count": "Images per sample grid.",
    "log_every": "Steps between TensorBoard scalar points.",
    "precision": "float32, or mixed precision: mixed_bfloat16 (CPUs with avx512_bf16 or amx_bf16, GPUs of compute "
    "capability 8.0 on, TPUs; elsewhere several times slower) or mixed_float16; auto: mixed_bfloat16 where the "
    "hardware has it, else float32.",
    "strategy": "auto (mirrored over >1 GPU, else default), default (one device), mirrored (every local GPU) "
    "or multiworker (the machines in $TF_CONFIG; see docs/distributed.md).",
    "worker_timeout": "multiworker: seconds a worker waits for a silent peer before stopping with an error "
    "(0: forever).",
    "health": "Health checks each epoch on held-out images (colour inversion, returning the input, collapse, "
    "a discriminator that has won; cycle PSNR): scalars under health/ and health.csv, a warning line when one "
    "trips (docs/training.md). off skips them.",
    "keep_every": "Also keep every Nth epoch's checkpoint besides the newest three (0: only the newest three), "
    "to choose from with `evaluate --checkpoints all` and `--checkpoint N`.",
    "warmup_discriminators": "With --init-generators: steps that train only D_X and D_Y against the frozen "
    "generators before the joint updates [default: one epoch; 0 skips].",
    "simulate_devices": "Split the CPU into N logical devices (to run the mirrored path without GPUs).",
}
HIDDEN = {"simulate_devices"}


def _options(command):
    from tfcyclegan.runs.config import CHOICES, TrainConfig

    choices = CHOICES
    for field in reversed(dataclasses.fields(TrainConfig)):
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        if field.type is bool or isinstance(default, bool):
            command = click.option(
                f"{flag}/--no-{flag[2:]}", field.name, default=default, show_default=True, help=HELP[field.name]
            )(command)
            continue
        kind = {"int": int, "float": float}.get(type(default).__name__, str)
        if field.name in ("steps_per_epoch", "warmup_discriminators"):
            kind = int
        if field.name in choices:
            kind = click.Choice(choices[field.name])
        command = click.option(
            flag,
            field.name,
            type=kind,
            default=default,
            show_default=default is not None,
            help=HELP[field.name],
            hidden=field.name in HIDDEN,
        )(command)
    return command


@click.command("fit")
@_options
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir (re-running a run dir also resumes).")
@click.option(
    "--init-generators",
    "init_from",
    default=None,
    metavar="MODEL",
    help="Start G (and F, when present) from a run directory, a model directory (`tfcyclegan import` or "
    "`export --format keras`) or a PyTorch .pth generator; its blocks and ngf become the run's. Discriminators "
    "start fresh and first train alone against them (--warmup-discriminators).",
)
@click.pass_context
@user_errors
def fit(ctx, resume, init_from, **options):
    """Train CycleGAN: tfcyclegan fit --domain-a photos --domain-b ukiyoe"""
    from tfcyclegan.runs.config import TrainConfig
    from tfcyclegan.training import train

    explicit = {name for name in options if ctx.get_parameter_source(name).name != "DEFAULT"}
    run_dir = train.fit(TrainConfig(**options), explicit=explicit, init_from=init_from, resume=resume)
    _demo_ground_truth(run_dir)


def _demo_ground_truth(run_dir):
    """End a finished run between the demo domains with its ground-truth line, as
    `tfcyclegan evaluate` computes it (its ground_truth section alone); nothing for other
    runs, an interrupted one or a multi-worker one."""
    from tfcyclegan_cli.evaluate import ground_truth_line

    from tfcyclegan.quality import evaluate
    from tfcyclegan.runs import checkpoints, rundir
    from tfcyclegan.runs.layout import RunLayout

    config = rundir.load_config(run_dir)
    if {config.domain_a, config.domain_b} != {"demo:flat", "demo:striped"} or config.strategy == "multiworker":
        return
    found = checkpoints.newest_intact(RunLayout(run_dir).checkpoints)
    if not found.path or rundir.checkpoint_step(found.path) < config.epochs * config.steps_per_epoch:
        return
    click.echo(ground_truth_line(evaluate.evaluate(run_dir, sections=("ground_truth",))))
