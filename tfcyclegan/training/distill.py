"""Distillation as importable library code: a mobile student of one direction of a teacher
(what `tfcyclegan distill` runs).

The run directory follows fit's contract (tfcyclegan.training.train): config.json (a
DistillConfig, with the teacher's path and the SHA-256 of its weights), checkpoints
of the whole state after every epoch and on Ctrl-C / SIGTERM, exact resume (mid-epoch
too), the lock, `--epochs` extension, TensorBoard scalars, losses.csv / losses.png, and
samples/epoch_NNN.png with columns input | teacher | student. The student is stored as
the run's G, so translate, export, evaluate and study read the run as a one-way run
(rundir.directions).
"""

import dataclasses
import hashlib
import signal
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from tfcyclegan.core.distill import Distiller
from tfcyclegan.core.networks import MobileResnetGenerator, PatchDiscriminator, variables_by_path
from tfcyclegan.core.schedules import LinearDecay
from tfcyclegan.data import datasets, imagefiles, pipeline, splits
from tfcyclegan.models import identify
from tfcyclegan.runs import checkpoints, rundir
from tfcyclegan.runs.distillconfig import DistillConfig, is_distilled
from tfcyclegan.runs.layout import CHECKPOINT_PREFIX, MAX_TO_KEEP, RunLayout
from tfcyclegan.training import callbacks, train
from tfcyclegan.training.figures import image_grid
from tfcyclegan.util import report
from tfcyclegan.util.errors import UsageError, UserError

# Options a resumed distillation may change (as fit's CHANGEABLE_ON_RESUME); the teacher
# may have moved, but its weights must be the same (teacher_sha256).
CHANGEABLE_ON_RESUME = ("run_dir", "teacher", "lr", "epochs", "decay_epoch", "precision")
PANELS = (
    ("loss_S", "L_S"),
    ("loss_L1", "L_recon: |S(x) - T(x)|"),
    ("loss_feature", "L_distill: features"),
    ("loss_GAN", "L_GAN"),
    ("loss_D", "L_D"),
)
WORKS = "give the run directory, model directory (tfcyclegan import / export --format keras) or .pth it came from"
# What TEACHER may be: features are read from its Keras layers, which exports no longer have.
ACCEPTS = identify.Accepts(
    "teacher",
    identify.KERAS_WEIGHTS,
    advice={kind: f"it keeps no Keras layers to read features from; {WORKS}"
            for kind in (identify.SAVEDMODEL, identify.TFLITE, identify.TFLITE_DIR)},
)  # fmt: skip


@dataclasses.dataclass
class Teacher:
    """A teacher generator and where it came from."""

    generator: keras.Model
    direction: str
    sha256: str
    path: Path
    domains: tuple = (None, None)  # (source, target) domains the teacher was trained on, when known
    discriminator: keras.Model | None = None  # its target domain's discriminator (a run directory's)


def weights_sha256(generator):
    """SHA-256 of a generator's weights: every variable's layer path and float32 bytes, in path order."""
    digest = hashlib.sha256()
    for path, variable in sorted(variables_by_path(generator).items()):
        digest.update(path.encode())
        digest.update(np.ascontiguousarray(variable.numpy(), np.float32).tobytes())
    return digest.hexdigest()


def default_run_dir(teacher):
    """runs/<teacher name>-mobile (a model directory named keras takes its parent's name)."""
    path = Path(teacher).expanduser().resolve()
    name = path.parent.name if path.name == "keras" else path.stem if path.is_file() else path.name
    return str(Path("runs") / f"{name}-mobile")


def _pick(held, direction, path):
    """The direction to distill: the one asked for (it must be held), else the only one held."""
    if direction is None:
        if len(held) > 1:
            raise UsageError(
                f"teacher {path} translates both ways: pass --direction a2b (A to B) or --direction b2a (B to A)"
            )
        return held[0]
    if direction not in held:
        raise UserError(
            f"teacher {path} has no {direction} generator, only {', '.join(held)}; pass --direction {held[0]}"
        )
    return direction


def load_teacher(path, direction=None):
    """The Teacher at `path`: a run directory, a model directory or a PyTorch .pth file (the
    kinds that hold Keras weights, from which features can be read). `direction` picks a
    direction of a two-way teacher; a one-way teacher needs none."""
    path, kind = ACCEPTS.identify(path)
    direction = _pick(identify.directions(path, kind) or ("a2b",), direction, path)
    if kind is identify.RUN_DIR:
        return _run_dir_teacher(path, direction)
    generators, meta, _ = identify.load_generators(path, ACCEPTS, wanted=[direction])
    generator = generators[direction]
    domains = (meta.domain_a, meta.domain_b)[:: 1 if direction == "a2b" else -1]
    return Teacher(generator, direction, weights_sha256(generator), path, domains)


def _run_dir_teacher(path, direction):
    """A run directory's generator of `direction` and, for the adversarial term, its target domain's discriminator."""
    held = rundir.directions(path)
    direction = _pick(held, direction, path)
    generator_g, generator_f, config, checkpoint = rundir.restore_generators(path)
    generator = generator_g if direction == "a2b" else generator_f
    domains = (config.domain_a, config.domain_b)
    if direction == "b2a":
        domains = domains[::-1]
    discriminator = None
    if not is_distilled(path):
        name = "discriminator_y" if direction == "a2b" else "discriminator_x"
        discriminator = PatchDiscriminator(ndf=config.ndf, n_layers=config.disc_layers, name="discriminator_y")
        discriminator(tf.zeros((1, 32, 32, 3)))
        try:
            rundir.check_matches(checkpoint, {name: discriminator}, path)
            variables = {name: rundir.network_variables(discriminator)}
            tf.train.Checkpoint(**variables).restore(checkpoint).expect_partial().assert_existing_objects_matched()
        except (UserError, AssertionError, ValueError):
            report.note(f"note: cannot read {name} from {checkpoint}; the discriminator starts from scratch")
            discriminator = None
    return Teacher(generator, direction, weights_sha256(generator), path, domains, discriminator)


def _check_resume(config, explicit):
    """On resume the saved config wins; options given now that disagree with it are an error."""
    saved = rundir.load_config(config.run_dir)
    if not isinstance(saved, DistillConfig):
        raise UserError(
            f"{config.run_dir} is a `tfcyclegan fit` run, not a distillation; resume it with `tfcyclegan fit`, "
            "or pass another --run-dir"
        )
    differs = [
        f"--{name.replace('_', '-')}: run has {getattr(saved, name)!r}, given {getattr(config, name)!r}"
        for name in sorted(explicit)
        if name not in CHANGEABLE_ON_RESUME and getattr(saved, name) != getattr(config, name)
    ]
    if differs:
        raise UserError(
            f"{config.run_dir} was distilled with other options ({'; '.join(differs)}); drop those options to "
            "resume, or pass a new --run-dir"
        )
    before = dataclasses.replace(saved)
    for name in CHANGEABLE_ON_RESUME:
        if name in explicit or name in ("run_dir", "teacher"):
            setattr(saved, name, getattr(config, name))
    if "epochs" in explicit and "decay_epoch" not in explicit:
        saved.decay_epoch = min(max(before.decay_epoch, 0), saved.epochs)
    return saved, before


def _reschedule(config, before, explicit, step, steps):
    """fit's rule for a new --epochs: the decay starts at the run's decay epoch, or where a run
    already past it stands, and reaches exactly 0 at the new last step."""
    if step > config.epochs * steps:
        least = -(-step // steps)
        raise UserError(
            f"--epochs {config.epochs}: {config.run_dir} has already trained {step} steps, into epoch {least}; "
            f"give --epochs {least} or more"
        )
    if config.epochs != before.epochs and "decay_epoch" not in explicit:
        config.decay_epoch = min(max(before.decay_epoch, step // steps), config.epochs)
    if (config.epochs, config.decay_epoch) != (before.epochs, before.decay_epoch):
        report.note(
            f"{config.run_dir}: {before.epochs} -> {config.epochs} epochs; learning rate decays linearly from epoch "
            f"{config.decay_epoch} to 0 at epoch {config.epochs}"
        )


def _readable(spec, label, data_root):
    domain = datasets.resolve_domain(spec, data_root)
    return domain, splits.readable(domain.train_files, "training", label, domain)


def build_distiller(config, teacher, steps_per_epoch):
    """The compiled Distiller: a MobileResnetGenerator student (stored as the run's G), the
    frozen teacher, and with --domain-b a PatchGAN (the teacher's own, when it has one)."""
    student = MobileResnetGenerator(ngf=config.ngf, n_blocks=config.blocks, name="generator_g", dtype=config.precision)
    discriminator = None
    if config.domain_b:
        discriminator = PatchDiscriminator(
            ndf=config.ndf, n_layers=config.disc_layers, name="discriminator_y", dtype=config.precision
        )
    model = Distiller(student, teacher.generator, discriminator, image_size=config.image_size)
    if discriminator is not None and teacher.discriminator is not None:
        if [w.shape for w in teacher.discriminator.weights] == [w.shape for w in discriminator.weights]:
            discriminator.set_weights(teacher.discriminator.get_weights())
        else:
            report.note("note: --ndf / --disc-layers differ from the teacher's discriminator; D starts from scratch")
    schedule = LinearDecay(config.lr, config.epochs, config.decay_epoch, steps_per_epoch)

    def adam():
        optimizer = keras.optimizers.Adam(learning_rate=schedule, beta_1=config.beta1)
        if config.precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    model.compile(adam(), adam(), config.lambda_l1, config.lambda_feature, config.lambda_gan)
    return model


def _networks(model):
    networks = {"generator_g": model.student}
    if model.discriminator is not None:
        networks["discriminator_y"] = model.discriminator
    return networks


def make_checkpoint(model):
    """The whole state of a distillation: student (as the run's G, by layer path), feature maps,
    discriminator, both optimizers (and so the step), the epoch's loss sums."""
    parts = {name: rundir.network_variables(network) for name, network in _networks(model).items()}
    parts["feature_maps"] = {f"{m.name}:{v.name}": v for m in model.mappings for v in m.weights}
    parts["generator_optimizer"] = model.student_optimizer  # named as fit names it: rundir.checkpoint_step reads it
    if model.discriminator is not None:
        parts["discriminator_y_optimizer"] = model.discriminator_optimizer
    parts["epoch_losses"] = rundir.epoch_loss_variables(model)
    return tf.train.Checkpoint(**parts)


class Samples(keras.callbacks.Callback):
    """Each epoch: samples/epoch_NNN.png with columns input | teacher | student, and the same
    strip in TensorBoard."""

    def __init__(self, run_dir, writer, inputs):
        super().__init__()
        self.layout = RunLayout(run_dir)
        self.writer = writer
        self.inputs = inputs

    def on_epoch_end(self, epoch, logs=None):
        teacher = self.model.teacher(self.inputs, training=False)
        student = self.model.student(self.inputs, training=False)
        grid = image_grid([imagefiles.to_uint8(x) for x in (self.inputs, teacher, student)])
        self.layout.samples.mkdir(exist_ok=True)
        Image.fromarray(grid).save(self.layout.sample(epoch + 1))
        with self.writer.as_default(step=epoch + 1):
            tf.summary.image("input|teacher|student", grid[None], step=epoch + 1)


def distill(config, explicit=frozenset(), verbose=None):
    """Distill (or resume distilling) config.teacher into a mobile student in config.run_dir;
    returns the run directory."""
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    config.run_dir = config.run_dir or default_run_dir(config.teacher)
    run_dir = Path(config.run_dir)
    resuming = rundir.has_checkpoint(run_dir)
    before = None
    if resuming:
        config, before = _check_resume(config, explicit)
    rundir.check_writable(run_dir)
    lock = rundir.RunLock(run_dir)
    if RunLayout(run_dir).config.exists():
        lock.acquire()
    try:
        # Nothing is written before the teacher has loaded: Ctrl-C here leaves the run as it was.
        teacher = load_teacher(config.teacher, config.direction)
        if resuming and teacher.sha256 != config.teacher_sha256:
            raise UserError(
                f"teacher {config.teacher} is not the one {run_dir} was distilled from: its weights have SHA-256 "
                f"{teacher.sha256}, config.json has {config.teacher_sha256}; give that teacher, or a new --run-dir"
            )
        config.direction, config.teacher_sha256 = teacher.direction, teacher.sha256
        if not resuming and teacher.discriminator is not None and not {"ndf", "disc_layers"} & set(explicit):
            config.ndf, config.disc_layers = teacher.discriminator.ndf, teacher.discriminator.n_layers
        config.teacher = str(Path(config.teacher).expanduser().resolve())
        if not config.domain_a:
            raise UsageError("--domain-a is required: the teacher's source images the student learns on")
        config.validate()
        return _prepare_and_distill(config, teacher, run_dir, lock, before, explicit, verbose)
    finally:
        lock.release()


def _prepare_and_distill(config, teacher, run_dir, lock, before, explicit, verbose):
    keras.utils.set_random_seed(config.seed)
    domain_a, files_a = _readable(config.domain_a, "A", config.data_root)
    folders = [("A", domain_a.root)]
    files_b = None
    if config.domain_b:
        domain_b, files_b = _readable(config.domain_b, "B", config.data_root)
        folders.append(("B", domain_b.root))
    rundir.check_outside(run_dir, folders)
    steps = config.steps_per_epoch or pipeline.default_steps_per_epoch(len(files_a), len(files_a), config.batch_size)
    config.steps_per_epoch = steps
    found = checkpoints.Found()
    folder = RunLayout(run_dir).checkpoints
    if checkpoints.candidates(folder):
        found = rundir.newest_checkpoint(run_dir)
        if before is not None and found.path:
            _reschedule(config, before, explicit, rundir.checkpoint_step(found.path), steps)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not lock.held:
        lock.acquire()
    roots = {"A": str(Path(domain_a.root).resolve()), "B": str(Path(domain_b.root).resolve()) if files_b else None}
    rundir.save_config(config, run_dir, {"A": len(files_a), "B": len(files_b or [])}, roots)
    report.note(config.describe())
    report.note(f"teacher: {teacher.path} ({teacher.direction}), weights SHA-256 {teacher.sha256[:16]}...")
    report.note(f"A: {len(files_a)} images from {domain_a.root}")
    model = build_distiller(config, teacher, steps)
    manager = tf.train.CheckpointManager(make_checkpoint(model), folder, MAX_TO_KEEP, checkpoint_name=CHECKPOINT_PREFIX)
    if found.path:
        rundir.check_matches(found.path, _networks(model), run_dir)
        if checkpoints.listed_newest(folder) != found.number:
            checkpoints.relist(folder, found)
        make_checkpoint(model).restore(found.path).assert_consumed()
    return _train(config, model, manager, found, files_a, files_b, run_dir, verbose)


def _train(config, model, manager, found, files_a, files_b, run_dir, verbose):
    steps = config.steps_per_epoch
    step_variable = model.student_optimizer.iterations
    first_epoch, done_in_epoch = divmod(int(step_variable.numpy()), steps)
    if first_epoch >= config.epochs:
        report.result(f"{run_dir} already finished all {config.epochs} epochs")
        return run_dir
    if found.path:
        report.note(f"resuming {run_dir} at epoch {first_epoch + 1}, step {int(step_variable.numpy())}")
    names = model.loss_names
    writer = tf.summary.create_file_writer(str(RunLayout(run_dir).logs))
    taken = checkpoints.highest_damaged(RunLayout(run_dir).checkpoints, found.number or 0)
    saver = callbacks.CheckpointSaver(manager, step_variable, taken=taken, restored=found.path, names=names)
    guard = callbacks.StopOnNonFinite(step_variable, names=names)
    side_work = [callbacks.Throughput(config.batch_size), guard, saver]
    if done_in_epoch:
        carried = rundir.epoch_loss_variables(model)
        side_work.append(callbacks.ContinueEpoch(carried, [v.numpy() for v in carried]))
    side_work += [
        callbacks.TensorBoardLog(writer, model.student_optimizer, config.log_every, names=names),
        Samples(run_dir, writer, pipeline.make_eval_batch(files_a, config.image_size, config.sample_count)),
        callbacks.LossLog(run_dir, names, [p for p in PANELS if p[0] in names]),
    ]
    stopper = callbacks.StopOnSignal()
    side_work.append(stopper)  # last: see StopOnSignal
    watched = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN else [])
    previous = {signum: signal.signal(signum, stopper.handle) for signum in watched}
    resume = f"tfcyclegan distill {config.teacher} --domain-a {config.domain_a} --run-dir {run_dir}"
    try:
        # Without --domain-b the second stream is unused: A again.
        train.train_epochs(config, model, files_a, files_b or files_a, side_work, verbose, first_epoch, done_in_epoch)
    except KeyboardInterrupt:
        if callbacks.all_finite(model.student.weights):
            path = saver.save()
            report.result(f"\ninterrupted: saved {path}; resume with: {resume}")
            return run_dir
    except OSError as error:
        raise UserError(
            f"cannot write {error.filename or run_dir}: {error.strerror or error}; "
            f"{callbacks.after_write_failure(manager).split('; free')[0]}; free some disk space, then: {resume}"
        ) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        writer.close()
    if guard.bad or not callbacks.all_finite(model.student.weights):
        what = f"{guard.bad[1]} = {guard.bad[2]} at step {guard.bad[0]}" if guard.bad else "the weights are not finite"
        kept = manager.latest_checkpoint or "no checkpoint"
        raise UserError(f"distillation diverged: {what}; {kept} is kept; resume with a lower --lr: {resume}")
    report.result(f"done: {run_dir} (checkpoints, logs, losses.png, samples/)")
    return run_dir
