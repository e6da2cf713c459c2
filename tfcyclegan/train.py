"""Training as importable library code: build, restore, fit, save (what `tfcyclegan fit` runs)."""

import signal
import sys
from pathlib import Path

import keras
import tensorflow as tf

from tfcyclegan import callbacks, data, datasets, distribute
from tfcyclegan.config import TrainConfig
from tfcyclegan.errors import UserError
from tfcyclegan.model import CycleGAN
from tfcyclegan.networks import PatchDiscriminator, ResnetGenerator
from tfcyclegan.schedules import LinearDecay

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"


def build_generators(config):
    """G: X -> Y and F: Y -> X as the config describes."""
    return (
        ResnetGenerator(ngf=config.ngf, n_blocks=config.blocks, name="generator_g"),
        ResnetGenerator(ngf=config.ngf, n_blocks=config.blocks, name="generator_f"),
    )


def build_model(config, steps_per_epoch):
    """A compiled CycleGAN whose three optimizers follow the linear-decay schedule.

    Under a mixed precision the layers compute in bfloat16 or float16 while every
    variable stays float32, so checkpoints load in any precision; float16 adds
    dynamic loss scaling, which bfloat16's float32-sized exponent does not need.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(config.precision)
    try:
        generator_g, generator_f = build_generators(config)
        model = CycleGAN(
            generator_g,
            generator_f,
            PatchDiscriminator(ndf=config.ndf, n_layers=config.disc_layers, name="discriminator_x"),
            PatchDiscriminator(ndf=config.ndf, n_layers=config.disc_layers, name="discriminator_y"),
            image_size=config.image_size,
            pool_size=config.pool_size,
            seed=config.seed,
        )
    finally:
        keras.mixed_precision.set_global_policy(previous)
    schedule = LinearDecay(config.lr, config.epochs, config.decay_epoch, steps_per_epoch)

    def adam():
        optimizer = keras.optimizers.Adam(learning_rate=schedule, beta_1=config.beta1)
        if config.precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    model.compile(
        generator_optimizer=adam(),
        discriminator_x_optimizer=adam(),
        discriminator_y_optimizer=adam(),
        lambda_gan=config.lambda_gan,
        lambda_identity=config.lambda_identity,
        lambda_cycle=config.lambda_cycle,
    )
    return model


def make_checkpoint(model):
    """Everything a resumed run needs: weights, all optimizer state (and so the step), pools."""
    return tf.train.Checkpoint(
        generator_g=model.generator_g,
        generator_f=model.generator_f,
        discriminator_x=model.discriminator_x,
        discriminator_y=model.discriminator_y,
        generator_optimizer=model.generator_optimizer,
        discriminator_x_optimizer=model.discriminator_x_optimizer,
        discriminator_y_optimizer=model.discriminator_y_optimizer,
        pool_x=model.pool_x,
        pool_y=model.pool_y,
    )


def default_run_dir(config):
    def short(spec):
        return Path(spec.rstrip("/")).name.replace("demo:", "demo_") or "data"

    return str(Path("runs") / f"{short(config.domain_a)}2{short(config.domain_b)}")


def _readable(domain, label):
    good, bad = data.scan_images(domain.train_files)
    for path, reason in bad:
        print(f"skipping {path}: {reason}", file=sys.stderr)
    if not good:
        raise UserError(f"domain {label} ({domain.name}) has no readable training image; check {domain.root}")
    return good


def _check_resume(config, run_dir, explicit):
    """On resume the saved config wins; options given now that disagree with it are an error."""
    saved = TrainConfig.load(run_dir / CONFIG_FILE)
    differs = [
        f"--{name.replace('_', '-')}: run has {getattr(saved, name)!r}, given {getattr(config, name)!r}"
        for name in sorted(explicit)
        if name != "run_dir" and getattr(saved, name) != getattr(config, name)
    ]
    if differs:
        raise UserError(
            f"{run_dir} was trained with other options ({'; '.join(differs)}); "
            "drop those options to resume, or pass a new --run-dir"
        )
    saved.run_dir = config.run_dir
    return saved


def has_checkpoint(run_dir):
    return (Path(run_dir) / CONFIG_FILE).exists() and tf.train.latest_checkpoint(Path(run_dir) / CHECKPOINT_DIR) is not None


def fit(config, explicit=frozenset(), verbose=None):
    """Train (or resume) the run in config.run_dir; returns the run directory.

    `explicit` names the options the user set, checked against a run being resumed.
    `verbose` is Keras' (default: a progress bar on a terminal, a line per epoch in logs).
    """
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    config.run_dir = config.run_dir or default_run_dir(config)
    run_dir = Path(config.run_dir)
    resuming = has_checkpoint(run_dir)
    if resuming:
        config = _check_resume(config, run_dir, explicit)
    config.validate()
    keras.utils.set_random_seed(config.seed)

    domain_a, domain_b = datasets.resolve_domains(config.domain_a, config.domain_b, config.data_root)
    files_a, files_b = _readable(domain_a, "A"), _readable(domain_b, "B")
    steps = config.steps_per_epoch or data.default_steps_per_epoch(len(files_a), len(files_b), config.batch_size)

    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / CONFIG_FILE)
    print(config.describe())
    print(f"A: {len(files_a)} images from {domain_a.root}\nB: {len(files_b)} images from {domain_b.root}")

    strategy = distribute.make_strategy(config.strategy, config.simulate_devices)
    if strategy.num_replicas_in_sync > 1:
        print(f"training on {strategy.num_replicas_in_sync} replicas, "
              f"{config.batch_size / strategy.num_replicas_in_sync:g} images each per step")
    with strategy.scope():
        model = build_model(config, steps)
    checkpoint = make_checkpoint(model)
    manager = tf.train.CheckpointManager(checkpoint, run_dir / CHECKPOINT_DIR, max_to_keep=3)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_consumed()
    step_variable = model.generator_optimizer.iterations
    first_epoch, done_in_epoch = divmod(int(step_variable.numpy()), steps)
    if first_epoch >= config.epochs:
        print(f"{run_dir} already finished all {config.epochs} epochs")
        return run_dir
    if resuming:
        print(f"resuming {run_dir} at epoch {first_epoch + 1}, step {int(step_variable.numpy())}")

    writer = tf.summary.create_file_writer(str(run_dir / "logs"))
    count = config.sample_count
    guard = callbacks.StopOnNonFinite(step_variable)
    side_work = [
        callbacks.Throughput(config.batch_size),
        guard,
        callbacks.TensorBoardLog(writer, model.generator_optimizer, config.log_every),
        callbacks.Samples(
            run_dir,
            writer,
            data.make_eval_batch(files_a, config.image_size, count),
            data.make_eval_batch(files_b, config.image_size, count),
        ),
        callbacks.LossLog(run_dir),
        callbacks.CheckpointSaver(manager, step_variable),
    ]

    def dataset(first, last):
        return data.make_train_dataset(
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

    def stop_on_sigterm(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        if done_in_epoch:
            # Finish the epoch an interruption cut short, on exactly the batches it had left.
            model.fit(
                dataset(first_epoch, first_epoch + 1).skip(done_in_epoch),
                epochs=first_epoch + 1,
                initial_epoch=first_epoch,
                steps_per_epoch=steps - done_in_epoch,
                callbacks=side_work,
                verbose=verbose,
                shuffle=False,  # the dataset is already shuffled, per epoch and reproducibly
            )
            first_epoch += 1
        if first_epoch < config.epochs and not model.stop_training:
            model.fit(
                dataset(first_epoch, config.epochs),
                epochs=config.epochs,
                initial_epoch=first_epoch,
                steps_per_epoch=steps,
                callbacks=side_work,
                verbose=verbose,
                shuffle=False,  # the dataset is already shuffled, per epoch and reproducibly
            )
    except KeyboardInterrupt:
        path = manager.save(checkpoint_number=int(step_variable.numpy()))
        print(f"\ninterrupted: saved {path}; resume with: tfcyclegan fit --run-dir {run_dir}")
        return run_dir
    finally:
        signal.signal(signal.SIGTERM, previous)
        writer.close()
    bad = guard.bad
    if bad:
        raise UserError(
            f"training diverged: {bad[1]} = {bad[2]} at step {bad[0]}; the last good checkpoint is in "
            f"{manager.directory}; resume with a lower --lr"
        )
    print(f"done: {run_dir} (checkpoints, logs, losses.png, samples/)")
    return run_dir


def load_generators(run_dir):
    """Restore G and F from a run directory's newest checkpoint; returns (G, F, config)."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        raise UserError(f"{run_dir} is not a tfcyclegan run directory (no {CONFIG_FILE})")
    config = TrainConfig.load(run_dir / CONFIG_FILE)
    latest = tf.train.latest_checkpoint(run_dir / CHECKPOINT_DIR)
    if latest is None:
        raise UserError(f"{run_dir} has no checkpoint yet; train it with: tfcyclegan fit --run-dir {run_dir}")
    generator_g, generator_f = build_generators(config)
    probe = tf.zeros((1, 32, 32, 3))
    generator_g(probe), generator_f(probe)
    tf.train.Checkpoint(generator_g=generator_g, generator_f=generator_f).restore(latest).expect_partial()
    return generator_g, generator_f, config
