"""Training as importable library code: build, restore, fit, save (what `tfcyclegan fit` runs)."""

import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

import keras
import tensorflow as tf
from PIL import Image

from tfcyclegan.core.model import CycleGAN
from tfcyclegan.core.networks import MobileResnetGenerator, PatchDiscriminator
from tfcyclegan.core.schedules import LinearDecay
from tfcyclegan.data import datasets, imagefiles, pipeline, splits
from tfcyclegan.models import identify
from tfcyclegan.runs import checkpoints, rundir
from tfcyclegan.runs.config import TrainConfig
from tfcyclegan.runs.layout import CHECKPOINT_PREFIX, MAX_TO_KEEP, RunLayout
from tfcyclegan.training import callbacks, distribute, health
from tfcyclegan.util import cpu, fsutil, report, seeding
from tfcyclegan.util.errors import UsageError, UserError

# What `fit --init-generators` starts G and F from: any model holding Keras generators.
INIT_ACCEPTS = identify.Accepts(
    "--init-generators",
    identify.KERAS_WEIGHTS,
    advice={
        kind: "give the run directory or model directory it was exported from"
        for kind in (identify.SAVEDMODEL, identify.TFLITE, identify.TFLITE_DIR)
    },
)


def build_model(config, steps_per_epoch):
    """A compiled CycleGAN whose three optimizers follow the linear-decay schedule.

    Under a mixed precision the networks compute in bfloat16 or float16 (the dtype policy
    is passed to them; the global policy is never touched) while every variable stays
    float32, so checkpoints load in any precision; float16 adds dynamic loss scaling,
    which bfloat16's float32-sized exponent does not need.
    """
    generator_g, generator_f = rundir.build_generators(config, dtype=config.precision)
    model = CycleGAN(
        generator_g,
        generator_f,
        PatchDiscriminator(ndf=config.ndf, n_layers=config.disc_layers, name="discriminator_x", dtype=config.precision),
        PatchDiscriminator(ndf=config.ndf, n_layers=config.disc_layers, name="discriminator_y", dtype=config.precision),
        image_size=config.image_size,
        pool_size=config.pool_size,
        seed=config.seed,
    )
    schedule = LinearDecay(config.lr, config.epochs, config.decay_epoch, steps_per_epoch)
    # The discriminators' steps count their warm-up too: their schedule starts after it.
    shifted = LinearDecay(
        config.lr, config.epochs, config.decay_epoch, steps_per_epoch, offset=config.warmup_discriminators or 0
    )

    def adam(schedule):
        optimizer = keras.optimizers.Adam(learning_rate=schedule, beta_1=config.beta1)
        if config.precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    model.compile(
        generator_optimizer=adam(schedule),
        discriminator_x_optimizer=adam(shifted),
        discriminator_y_optimizer=adam(shifted),
        lambda_gan=config.lambda_gan,
        lambda_identity=config.lambda_identity,
        lambda_cycle=config.lambda_cycle,
    )
    return model


def default_run_dir(config):
    def short(spec):
        return Path(spec.rstrip("/")).name.replace("demo:", "demo_") or "data"

    return str(Path("runs") / f"{short(config.domain_a)}2{short(config.domain_b)}")


def _size(path):
    with Image.open(path) as image:  # reads the header only
        return image.size


def _readable(domain, label, image_size):
    """The domain's decodable training images; says which files are skipped and why."""
    good = splits.readable(domain.train_files, "training", label, domain)
    skipped = len(domain.train_files) - len(good)
    if skipped:
        report.note(
            f"warning: domain {label}: {skipped} of {len(domain.train_files)} files skipped (listed above); "
            f"remove or replace them"
        )
    # Images smaller than the crop still train (resized up), but are usually strays.
    small = [(path, size) for path, size in ((path, _size(path)) for path in good) if min(size) < image_size]
    if small:
        path, (w, h) = min(small, key=lambda item: min(item[1]))
        report.note(
            f"note: domain {label}: {len(small)} images are smaller than --image-size {image_size} and are "
            f"upscaled, the smallest {path} ({w}x{h}); remove them if that is not wanted"
        )
    return good


# Options a resumed run may change: where it lives, the learning rate (the remedy for a
# run that diverged), which only scales the schedule and is not checkpointed, the
# schedule's length and decay (issue #15: extending a run, see _reschedule), the
# precision (every variable is float32, see restore_checkpoint) and the devices it runs
# on (a checkpoint restores under any strategy), and whether health checks run.
CHANGEABLE_ON_RESUME = (
    "run_dir",
    "lr",
    "epochs",
    "decay_epoch",
    "precision",
    "strategy",
    "simulate_devices",
    "worker_timeout",
    "health",
)


def _check_resume(config, run_dir, explicit):
    """On resume the saved config wins; options given now that disagree with it are an error.

    Returns the config to train with and the one saved before (for _reschedule).
    """
    saved = rundir.load_config(run_dir)
    _place_relative_domains(saved, run_dir)

    def given(name):  # a folder as the run saves it: absolute
        value = getattr(config, name)
        if name == "data_root" and value:
            return str(Path(value).expanduser().absolute())
        return datasets.folder_spec(value) if name in ("domain_a", "domain_b") else value

    differs = [
        f"--{name.replace('_', '-')}: run has {getattr(saved, name)!r}, given {given(name)!r}"
        for name in sorted(explicit)
        if name not in CHANGEABLE_ON_RESUME and getattr(saved, name) != given(name)
    ]
    if differs:
        raise UserError(
            f"{run_dir} was trained with other options ({'; '.join(differs)}); "
            "drop those options to resume, or pass a new --run-dir"
        )
    if "lr" in explicit and config.lr != saved.lr:
        report.note(f"resuming with --lr {config.lr:g} (the run had {saved.lr:g})")
    if "precision" in explicit and config.precision != saved.precision:
        report.note(f"resuming with --precision {config.precision} (the run had {saved.precision})")
    given = {name: getattr(config, name) for name in CHANGEABLE_ON_RESUME if name in explicit}
    resumed = dataclasses.replace(saved, **{**given, "run_dir": config.run_dir})
    if "epochs" in explicit and "decay_epoch" not in explicit:
        # For validate; _reschedule decides.
        resumed = dataclasses.replace(resumed, decay_epoch=min(resumed.decay_epoch, resumed.epochs))
    return resumed, saved


def _place_relative_domains(saved, run_dir):
    """Make the folders of a config.json written before they were saved absolute (issue #25)
    absolute where they were typed: relative to the working folder of the `fit` that wrote
    it, which its run_dir, typed in that same folder, tells (runs/x found at /p/runs/x: /p).
    A run dir given by an absolute path, or moved since, leaves them to the current folder,
    as before."""
    typed = Path(saved.run_dir or "")
    if not saved.run_dir or typed.is_absolute():
        return
    here = Path(run_dir).resolve()
    base = next((folder for folder in here.parents if (folder / typed).resolve() == here), None)
    if base is None:
        return
    for side in ("domain_a", "domain_b"):
        spec = getattr(saved, side)
        if (
            not spec.lower().startswith("demo:")
            and not Path(spec).expanduser().is_absolute()
            and (base / spec).exists()
        ):
            setattr(saved, side, str((base / spec).resolve()))
    if saved.data_root and not Path(saved.data_root).expanduser().is_absolute():
        saved.data_root = str(base / saved.data_root)


def _check_same_images(run_dir, domains):
    """A resumed run must train on the folders it trained on (config.json's "domains", saved
    since issue #25): a named domain under another data root, or a folder of that name in
    the working folder (a folder wins over a name), is refused by name."""
    # load_config has read this file as a JSON object already, under the run's lock.
    saved = json.loads(fsutil.read_regular_text(RunLayout(run_dir).config)).get("domains")
    if not isinstance(saved, dict):
        return  # a config.json written before the folders were saved
    for label, domain in zip("AB", domains):
        if saved.get(label) != os.path.abspath(domain.root):
            raise UserError(
                f"{run_dir} trained on domain {label} images in {saved.get(label)}, but its domain {domain.name!r} "
                f"resolves to {domain.root} here; resume it with the same --data-root (or TFCYCLEGAN_DATA) and "
                "from where those images are, or pass a new --run-dir"
            )


def _reschedule(config, before, explicit, step, steps, run_dir):
    """Fit the schedule of a resumed run to a new --epochs / --decay-epoch (issue #15).

    The learning rate stays constant to decay_epoch, then falls linearly to exactly 0
    at the new last step (LinearDecay, which is not checkpointed: the new one applies
    from the restored step on). A new --epochs without --decay-epoch keeps the run's
    decay epoch, or, when the run is already past it (a finished run), starts the decay
    where the run stands, so the added epochs decay from the initial rate to 0. Fewer
    epochs than the run has trained are an error; the change is said in one line.
    Returns the config with the decay epoch it trains with.
    """
    if step > config.epochs * steps:
        least = -(-step // steps)
        raise UserError(
            f"--epochs {config.epochs}: {run_dir} has already trained {step} steps, into epoch {least}; "
            f"give --epochs {least} or more, or pass a new --run-dir"
        )
    if config.epochs != before.epochs and "decay_epoch" not in explicit:
        config = dataclasses.replace(config, decay_epoch=min(max(before.decay_epoch, step // steps), config.epochs))
    if (config.epochs, config.decay_epoch) == (before.epochs, before.decay_epoch):
        return config
    if config.epochs == before.epochs:
        change = f"resuming {run_dir} with --decay-epoch {config.decay_epoch} (the run had {before.decay_epoch})"
    else:
        verb = "extending" if config.epochs > before.epochs else "shortening"
        change = f"{verb} {run_dir} from {before.epochs} to {config.epochs} epochs"
    report.note(
        f"{change}; learning rate decays linearly from epoch {config.decay_epoch} to 0 at epoch {config.epochs}"
    )
    return config


def _held_out(run_dir, resuming, domains):
    """{label: held-out files} for the health checks and {label: training files} without them.

    Chosen once (health.held_out) and recorded in config.json as {label: {"files": [...],
    "left_training": bool}} (whether they were taken out of the training images), so a
    resumed run checks the same images and trains on the same.
    """
    saved = {}
    if resuming:
        saved = json.loads(fsutil.read_regular_text(RunLayout(run_dir).config)).get(health.HELD_OUT_KEY) or {}
    held, train = {}, {}
    for label, domain in domains.items():
        record = saved.get(label) if isinstance(saved, dict) else None
        if isinstance(record, dict) and isinstance(record.get("files"), list):
            held[label] = {
                "files": [str(p) for p in record["files"]],
                "left_training": bool(record.get("left_training")),
            }
        else:
            files, kept = health.held_out(domain)
            # A run begun before health checks keeps training on every image.
            held[label] = {"files": files, "left_training": not resuming and len(kept) < len(domain.train_files)}
        left_out = set(held[label]["files"]) if held[label]["left_training"] else set()
        train[label] = [p for p in domain.train_files if str(p) not in left_out]
    return held, train


def _note_changed_counts(run_dir, counts, steps):
    """Say in one line that a resumed run's domains changed size since config.json recorded
    them (its "images" key, {"A": n, "B": m}); the run keeps its steps per epoch."""
    # load_config has read this file as a JSON object already, under the run's lock.
    saved = json.loads(fsutil.read_regular_text(RunLayout(run_dir).config)).get("images")
    if not isinstance(saved, dict) or saved == counts:
        return  # a config.json written before image counts were saved
    report.note(
        f"note: the domains now hold {counts['A']} (A) and {counts['B']} (B) training images, {saved.get('A')} and "
        f"{saved.get('B')} when {run_dir} last trained; it keeps its {steps} steps per epoch"
    )


def settle_precision(config, cpuinfo=None, gpu_capabilities=None):
    """Resolve --precision auto (util.cpu.choose_precision) and say in one line what it chose
    and why; for mixed_bfloat16 on a CPU without native bfloat16, say it will be slow.

    `cpuinfo` and `gpu_capabilities` default to this machine's (/proc/cpuinfo; the CUDA
    compute capability of each visible GPU).
    """
    if config.precision not in ("auto", "mixed_bfloat16"):
        return
    if gpu_capabilities is None:
        gpus = tf.config.list_physical_devices("GPU")
        gpu_capabilities = [tf.config.experimental.get_device_details(g).get("compute_capability") for g in gpus]
    cpuinfo = cpu.read_cpuinfo() if cpuinfo is None else cpuinfo
    if config.precision == "auto":
        config.precision, why = cpu.choose_precision(cpuinfo, gpu_capabilities)
        report.note(f"--precision auto: {config.precision} ({why})")
    elif not gpu_capabilities:
        warning = cpu.bfloat16_warning(cpuinfo)
        if warning:
            report.note(warning)


def init_generators(folder, config, explicit=frozenset()):
    """{direction: generator} of `folder` (any kind of INIT_ACCEPTS) to start a new run from,
    and `config` with the generators' kind, blocks and ngf, which the run takes.

    An explicit --generator / --blocks / --ngf that differs is an error naming both. A model without F
    (pretrained files are one way) starts F fresh, said in one line.
    """
    generators, _, _ = identify.load_generators(folder, INIT_ACCEPTS)
    folder = Path(folder).expanduser()
    shapes = {d: (g.n_blocks, g.ngf) for d, g in generators.items()}
    if len(set(shapes.values())) > 1:
        raise UserError(
            f"--init-generators {folder}: G has {shapes['a2b'][0]} blocks and ngf {shapes['a2b'][1]}, F "
            f"{shapes['b2a'][0]} blocks and ngf {shapes['b2a'][1]}; a run trains two generators of one shape"
        )
    for direction, generator in generators.items():
        kind = "mobile" if isinstance(generator, MobileResnetGenerator) else "resnet"
        for option, theirs in (("generator", kind), ("blocks", generator.n_blocks), ("ngf", generator.ngf)):
            if option in explicit and getattr(config, option) != theirs:
                raise UsageError(
                    f"--{option} {getattr(config, option)} disagrees with --init-generators {folder}, whose "
                    f"{direction} generator has {option} {theirs}; drop --{option}"
                )
        if generator.affine:
            raise UserError(
                f"--init-generators {folder}: its {direction} generator uses affine instance norm, which `fit` does "
                "not train; fine-tune a generator without it"
            )
        if generator.dropout:
            report.note(f"note: {folder}'s {direction} generator was trained with dropout; fit trains it without")
    if "b2a" not in generators:
        report.note(f"note: {folder} holds no second generator (F: B -> A); F starts from scratch")
    blocks, ngf = shapes["a2b"]
    return generators, dataclasses.replace(config, blocks=blocks, ngf=ngf)


def resolve(config, explicit=frozenset(), init_from=None, resume=False):
    """The options a run trains with, from `config` (left as it is) and its run directory.

    The run directory defaults to runs/<a>2<b>. A run directory holding a config.json is
    resumed, from its checkpoint or, killed before its first one, from the start: its saved
    options win, except those a resumed run may change (CHANGEABLE_ON_RESUME) named in
    `explicit`; other explicit options that disagree are an error (`resume` requires a
    config.json). A run started from model directory `init_from` (new, or without a
    checkpoint yet) takes its generators' blocks and ngf (init_generators). Returns
    (config, before, start): the validated config, the config the run was saved with
    (None for a new run) and the generators to start from (None unless init_from).
    """
    config = dataclasses.replace(config, run_dir=config.run_dir or default_run_dir(config))
    run_dir = Path(config.run_dir)
    fsutil.check_utf8(run_dir, "--run-dir")
    # A run directory's config.json is the run's, checkpoint or not (issue #25: a run killed
    # before its first checkpoint must not be replaced by a run of the default options).
    resuming, checkpointed = rundir.has_config(run_dir), rundir.has_checkpoint(run_dir)
    if resume and not resuming:
        raise UserError(f"--resume: {run_dir} has no config.json, so no run to resume")
    before = start = None
    if resuming:
        config, before = _check_resume(config, run_dir, explicit)
        if init_from and checkpointed:
            report.note(f"note: resuming {run_dir} from its checkpoint; --init-generators {init_from} is not used")
        elif not checkpointed:
            report.note(f"note: {run_dir} has no checkpoint yet; training it from the start with its config.json")
    if init_from and not checkpointed:
        # A run's saved shape stands: the generators must match it, as an explicit --blocks / --ngf would.
        start, config = init_generators(init_from, config, explicit | ({"blocks", "ngf"} if resuming else set()))
    if not start and not resuming and config.warmup_discriminators:
        raise UsageError("--warmup-discriminators applies with --init-generators (generators to keep frozen)")
    config.validate()
    return config, before, start


def fit(config, explicit=frozenset(), verbose=None, init_from=None, resume=False, callbacks=()):
    """Train (or resume) the run of `config` (resolve: `config` itself is left as it is);
    returns the run directory.

    `explicit` names the options the user set, checked against a run being resumed;
    `resume` requires a checkpoint to resume from. `verbose` is Keras' (default: a
    progress bar on a terminal, a line per epoch in logs). `init_from` is a model
    directory whose generators a new run starts from (init_generators); a resumed run
    continues from its checkpoint instead. `callbacks` are Keras callbacks run beside
    the run's own, after its checkpoint saver.
    """
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    config, before, start = resolve(config, explicit, init_from, resume)
    run_dir = Path(config.run_dir)
    # First: a multi-worker strategy must exist before TensorFlow runs anything.
    strategy = distribute.make_strategy(config.strategy, config.simulate_devices, config.worker_timeout)
    settle_precision(config)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise UsageError(
            f"--batch-size {config.batch_size} must be a multiple of the {replicas} replicas "
            f"(it is the global batch, split evenly among them)"
        )
    chief = distribute.is_chief(strategy)
    lock = rundir.RunLock(run_dir)
    if chief:
        rundir.check_writable(run_dir)
        if RunLayout(run_dir).config.exists():
            lock.acquire()  # before any work: another fit may be training in it
    try:
        plan = _plan(config, before, explicit, start, strategy, chief, verbose)
        with seeding.seeded(config.seed):
            return _write_and_train(plan, lock, callbacks)
    finally:
        lock.release()


@dataclasses.dataclass(frozen=True)
class Plan:
    """What `fit` settled before training: the run's options (run directory, steps per
    epoch and schedule resolved), where it trains, on which images, and from where (the
    checkpoint found, or generators to start from)."""

    config: TrainConfig
    strategy: tf.distribute.Strategy
    chief: bool  # only the chief writes the run directory
    run_dir: Path
    roots: tuple  # the folders of domains A and B
    files_a: tuple
    files_b: tuple
    found: checkpoints.Found
    start: dict | None
    verbose: int
    held_out: dict  # {"A": files, "B": files} the health checks translate each epoch
    held_out_record: dict  # how config.json records them (_held_out)

    @property
    def counts(self):
        return {"A": len(self.files_a), "B": len(self.files_b)}


def _plan(config, before, explicit, start, strategy, chief, verbose):
    """The Plan of a resolved config: the domains' readable images, the steps per epoch,
    the checkpoint to resume from and the schedule it resumes on. Writes nothing.

    `before` is the config a resumed run was saved with (None for a new run).
    """
    run_dir = Path(config.run_dir)
    resuming = before is not None
    domain_a, domain_b = datasets.resolve_domains(config.domain_a, config.domain_b, config.data_root)
    if resuming:
        _check_same_images(run_dir, (domain_a, domain_b))
    config = dataclasses.replace(
        config,
        domain_a=datasets.folder_spec(config.domain_a),
        domain_b=datasets.folder_spec(config.domain_b),
        data_root=str(Path(config.data_root).expanduser().absolute()) if config.data_root else None,
    )
    if chief:
        rundir.check_outside(run_dir, [("A", domain_a.root), ("B", domain_b.root)])
    held_out, kept = _held_out(run_dir, resuming, {"A": domain_a, "B": domain_b})
    domain_a = dataclasses.replace(domain_a, train_files=kept["A"])
    domain_b = dataclasses.replace(domain_b, train_files=kept["B"])
    files_a = _readable(domain_a, "A", config.image_size)
    files_b = _readable(domain_b, "B", config.image_size)
    checked = {label: imagefiles.scan_images(record["files"])[0] for label, record in held_out.items()}
    # Resolved once and saved as a number, so a resumed run keeps its epochs whatever
    # images were added or removed since (issue #15).
    steps = config.steps_per_epoch or pipeline.default_steps_per_epoch(len(files_a), len(files_b), config.batch_size)
    config = dataclasses.replace(config, steps_per_epoch=steps)
    if config.warmup_discriminators is None:  # a new run: one epoch's steps after --init-generators
        config = dataclasses.replace(config, warmup_discriminators=steps if start else 0)
    has_any = checkpoints.candidates(RunLayout(run_dir).checkpoints)
    found = rundir.newest_checkpoint(run_dir) if has_any else checkpoints.Found()
    if before is not None:
        _note_changed_counts(run_dir, {"A": len(files_a), "B": len(files_b)}, steps)
        if found.path:
            config = _reschedule(config, before, explicit, rundir.checkpoint_step(found.path), steps, run_dir)
    roots = (os.path.abspath(domain_a.root), os.path.abspath(domain_b.root))
    return Plan(
        config,
        strategy,
        chief,
        run_dir,
        roots,
        tuple(files_a),
        tuple(files_b),
        found,
        start,
        verbose,
        checked,
        held_out,
    )


def _write_and_train(plan, lock, extra_callbacks):
    """Write the run's config.json (the chief, under the run's lock), then train."""
    config, run_dir = plan.config, plan.run_dir
    # Only the chief writes the run; other workers save their checkpoints (which every
    # worker must take part in) to a temporary folder that is removed at the end.
    out_dir = run_dir if plan.chief else Path(tempfile.mkdtemp(prefix="tfcyclegan-worker-"))
    if plan.chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not lock.held:  # a new run directory: locked as soon as it exists
            lock.acquire()
        rundir.save_config(
            config, run_dir, plan.counts, dict(zip("AB", plan.roots)), **{health.HELD_OUT_KEY: plan.held_out_record}
        )
    report.note(config.describe())
    report.note(
        f"A: {len(plan.files_a)} images from {plan.roots[0]}\nB: {len(plan.files_b)} images from {plan.roots[1]}"
    )
    replicas = plan.strategy.num_replicas_in_sync
    if replicas > 1:
        report.note(f"training on {replicas} replicas, {config.batch_size // replicas} images each per step")
    try:
        return _fit(plan, out_dir, extra_callbacks)
    finally:
        if not plan.chief:
            shutil.rmtree(out_dir, ignore_errors=True)


def _restored_model(plan, out_dir):
    """The model, restored from the checkpoint found or started from `plan.start`, and the
    CheckpointManager that saves it into `out_dir`."""
    with plan.strategy.scope():
        model = build_model(plan.config, plan.config.steps_per_epoch)
    folder = RunLayout(plan.run_dir).checkpoints
    found = plan.found
    if found.path:
        rundir.check_model_matches(found.path, model, plan.run_dir)
        if plan.chief and checkpoints.listed_newest(folder) != found.number:
            # The manager would resume from (and in time delete) what the state file lists.
            checkpoints.relist(folder, found)
    # With --keep-every the saver prunes (checkpoints.retain) instead of the manager.
    manager = tf.train.CheckpointManager(
        rundir.make_checkpoint(model),
        RunLayout(out_dir).checkpoints,
        None if plan.config.keep_every else MAX_TO_KEEP,
        checkpoint_name=CHECKPOINT_PREFIX,
    )
    if found.path:
        rundir.restore_checkpoint(model, found.path)
    elif plan.start:
        for direction, generator in plan.start.items():
            target = model.generator_g if direction == "a2b" else model.generator_f
            target.set_weights(generator.get_weights())
    return model, manager


def _side_work(plan, model, manager, writer, done_in_epoch, extra):
    """The callbacks of the run, in order, with the caller's `extra` after the checkpoint
    saver; the divergence guard and the checkpoint saver are returned apart as well, for
    what happens after training."""
    config, step_variable = plan.config, model.generator_optimizer.iterations
    guard = callbacks.StopOnNonFinite(step_variable)
    # Checkpoints are numbered by step, but above any damaged one left in place; saved
    # before the samples and the loss log, so neither can keep an epoch from being saved.
    taken = checkpoints.highest_damaged(RunLayout(plan.run_dir).checkpoints, plan.found.number or 0)
    keep = rundir.every_nth_epoch(config.keep_every, config.steps_per_epoch) if config.keep_every else None
    saver = callbacks.CheckpointSaver(
        manager, step_variable, taken=taken, restored=plan.found.path, keep=keep, warmed=_warmed(model)
    )
    side_work = [callbacks.Throughput(config.batch_size), guard, saver, *extra]
    if done_in_epoch:
        carried = rundir.epoch_loss_variables(model)
        side_work.append(callbacks.ContinueEpoch(carried, [v.numpy() for v in carried]))
    if plan.chief:
        count = config.sample_count
        side_work += [
            callbacks.TensorBoardLog(writer, model.generator_optimizer, config.log_every),
            callbacks.Samples(
                plan.run_dir,
                writer,
                pipeline.make_eval_batch(plan.files_a, config.image_size, count),
                pipeline.make_eval_batch(plan.files_b, config.image_size, count),
            ),
            callbacks.LossLog(plan.run_dir),
        ]
        if config.health == "on" and all(plan.held_out.values()):
            held = [pipeline.make_eval_batch(plan.held_out[x], config.image_size, health.HELD_OUT_COUNT) for x in "AB"]
            side_work.append(health.HealthCheck(plan.run_dir, writer, *held))
    return side_work, guard, saver


def _train_epochs(plan, model, side_work, first_epoch, done_in_epoch):
    train_epochs(plan.config, model, plan.files_a, plan.files_b, side_work, plan.verbose, first_epoch, done_in_epoch)


def train_epochs(config, model, files_a, files_b, side_work, verbose, first_epoch, done_in_epoch):
    """model.fit from where a run stands to its last epoch (fit's and distill's): first the
    rest of an epoch an interruption cut short, on exactly the batches it had left, then
    whole epochs."""
    steps = config.steps_per_epoch

    def dataset(first, last):
        return pipeline.make_train_dataset(
            files_a,
            files_b,
            image_size=config.image_size,
            load_size=config.load_size,
            batch_size=config.batch_size,
            steps_per_epoch=steps,
            epochs=last,
            initial_epoch=first,
            flip=config.flip,
            seed=config.seed,
        )

    # shuffle=False: the dataset is already shuffled, per epoch and reproducibly.
    options = dict(callbacks=side_work, verbose=verbose, shuffle=False)
    if done_in_epoch:
        model.fit(
            dataset(first_epoch, first_epoch + 1).skip(done_in_epoch),
            epochs=first_epoch + 1,
            initial_epoch=first_epoch,
            steps_per_epoch=steps - done_in_epoch,
            **options,
        )
        first_epoch += 1
    if first_epoch < config.epochs and not model.stop_training:
        model.fit(
            dataset(first_epoch, config.epochs),
            epochs=config.epochs,
            initial_epoch=first_epoch,
            steps_per_epoch=steps,
            **options,
        )


def _warmed(model):
    """A function returning the discriminator warm-up steps done: the steps D_X took beyond G's."""

    def done():
        return int(model.discriminator_x_optimizer.iterations.numpy()) - int(
            model.generator_optimizer.iterations.numpy()
        )

    return done


def _warm_up(plan, model, writer, stopper):
    """Train D_X and D_Y alone against the frozen generators (CycleGAN.warmup_step) until
    `warmup_discriminators` steps are done, on the batches of the first epochs in order;
    a resumed run skips the ones it did. A signal stops it like training (StopOnSignal)."""
    config, done = plan.config, _warmed(model)()
    total = config.warmup_discriminators
    if done >= total:
        return
    report.note(
        f"warm-up: training D_X and D_Y alone against the frozen generators, steps {done + 1}-{total} of {total}"
    )
    steps = config.steps_per_epoch
    batches = pipeline.make_train_dataset(
        plan.files_a, plan.files_b, image_size=config.image_size, load_size=config.load_size,
        batch_size=config.batch_size, steps_per_epoch=steps, epochs=-(-total // steps), flip=config.flip,
        seed=config.seed,
    ).take(total).skip(done)  # fmt: skip
    strategy = plan.strategy

    @tf.function
    def step(batch):
        losses = strategy.run(model.warmup_step, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in losses.items()}

    for batch in strategy.experimental_distribute_dataset(batches):
        losses = step(batch)
        done += 1
        if plan.chief and (done % config.log_every == 0 or done == total):
            with writer.as_default(step=done):
                for name, value in losses.items():
                    tf.summary.scalar(f"warmup/{name}", value)
        if stopper.received:
            raise KeyboardInterrupt
    report.note(
        f"warm-up done: loss_D_X {float(losses['loss_D_X']):.3f}, loss_D_Y {float(losses['loss_D_Y']):.3f}; "
        "training G, F, D_X and D_Y together"
    )


def _fit(plan, out_dir, extra_callbacks):
    """Train the planned run to its last epoch; an interrupt saves a checkpoint and returns.

    SIGINT and SIGTERM are caught only when fit runs on the main thread, the only one
    Python lets set signal handlers; on another thread the caller's handlers stay.
    """
    config, run_dir = plan.config, plan.run_dir
    model, manager = _restored_model(plan, out_dir)
    step_variable = model.generator_optimizer.iterations
    first_epoch, done_in_epoch = divmod(int(step_variable.numpy()), config.steps_per_epoch)
    if first_epoch >= config.epochs:
        report.result(f"{run_dir} already finished all {config.epochs} epochs")
        return run_dir
    if plan.found.path:
        report.note(f"resuming {run_dir} at epoch {first_epoch + 1}, step {int(step_variable.numpy())}")

    writer = tf.summary.create_file_writer(str(RunLayout(out_dir).logs))
    side_work, guard, saver = _side_work(plan, model, manager, writer, done_in_epoch, extra_callbacks)
    # SIGINT and SIGTERM stop at the next batch boundary (StopOnSignal): an interrupt
    # raised wherever Python happens to be can land in a garbage-collection callback,
    # where Python prints and drops it, and training would go on.
    stopper = callbacks.StopOnSignal()
    side_work.append(stopper)  # last: see StopOnSignal
    ruined = False
    watched = []
    if threading.current_thread() is threading.main_thread():
        watched = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN else [])
    previous = {signum: signal.signal(signum, stopper.handle) for signum in watched}
    try:
        _warm_up(plan, model, writer, stopper)
        _train_epochs(plan, model, side_work, first_epoch, done_in_epoch)
    except KeyboardInterrupt:
        # Never checkpoint ruined weights (a divergence the loss check did not see yet).
        ruined = not callbacks.all_finite(_state_variables(model))
        if not ruined:
            path = saver.save()
            report.result(f"\ninterrupted: saved {path}; resume with: tfcyclegan fit --run-dir {run_dir}")
            return run_dir
    except distribute.PEER_LOST as error:
        if not isinstance(plan.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            raise
        layout = RunLayout(run_dir)
        kept = checkpoints.candidates(layout.checkpoints)
        kept = (
            f"the last checkpoint, {layout.checkpoint(kept[0])}, is intact" if kept else "no checkpoint was saved yet"
        )
        raise UserError(
            f"lost contact with another worker: {distribute.peer_lost_reason(error, config.worker_timeout)}; "
            f"{kept}; restart every worker with the same command to go on"
        ) from None
    except OSError as error:
        # Samples, figures, logs: a full or read-only disk, as for checkpoints.
        raise UserError(
            f"cannot write {error.filename or run_dir}: {error.strerror or error}; "
            f"{callbacks.after_write_failure(manager)}"
        ) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        writer.close()
    if guard.bad or ruined:
        _diverged(config, run_dir, manager, guard.bad, int(step_variable.numpy()))
    report.result(f"done: {run_dir} (checkpoints, logs, losses.png, samples/)")
    return run_dir


def _diverged(config, run_dir, manager, bad, step):
    """Raise the UserError of a run whose loss (`bad`: step, name, value) or weights
    stopped being finite, with the way back: the last good checkpoint and a lower --lr."""
    lower = f"--lr {config.lr / 10:g}"
    if manager.latest_checkpoint:
        advice = (
            f"the last good checkpoint {manager.latest_checkpoint} is kept; resume from it with a lower "
            f"--lr: tfcyclegan fit --run-dir {run_dir} {lower}"
        )
    else:
        advice = f"no checkpoint was saved; start again with a lower --lr, e.g. {lower}"
    what = f"{bad[1]} = {bad[2]}" if bad else "the weights are not finite"
    raise UserError(f"training diverged: {what} at step {bad[0] if bad else step}; {advice}")


def _state_variables(model):
    """The networks' and optimizers' variables, which an interrupt checkpoint saves."""
    networks = (model.generator_g, model.generator_f, model.discriminator_x, model.discriminator_y)
    optimizers = [getattr(model, name) for name in rundir.OPTIMIZERS]
    return [v for network in networks for v in network.weights] + [v for o in optimizers for v in o.variables]
