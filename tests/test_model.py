import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcyclegan.core.model import LOSS_NAMES, CycleGAN
from tfcyclegan.core.networks import PatchDiscriminator, ResnetGenerator


def tiny_cyclegan(size=32, pool_size=0, ngf=8, blocks=1, seed=0):
    keras.utils.set_random_seed(seed)
    return CycleGAN(
        ResnetGenerator(ngf=ngf, n_blocks=blocks),
        ResnetGenerator(ngf=ngf, n_blocks=blocks),
        PatchDiscriminator(ndf=8),
        PatchDiscriminator(ndf=8),
        image_size=size,
        pool_size=pool_size,
    )


def images(n, size=32, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype("float32")


def snapshot(model):
    nets = ("generator_g", "generator_f", "discriminator_x", "discriminator_y")
    return {n: [v.numpy().copy() for v in getattr(model, n).trainable_variables] for n in nets}


def moved(before, after):
    return {n for n in before if any(not np.array_equal(a, b) for a, b in zip(before[n], after[n]))}


def test_update_order_generators_then_dx_then_dy():
    model = tiny_cyclegan(pool_size=2)
    model.compile()
    seen = []
    for label, optimizer in (
        ("G", model.generator_optimizer),
        ("D_X", model.discriminator_x_optimizer),
        ("D_Y", model.discriminator_y_optimizer),
    ):
        apply = optimizer.apply_gradients

        def recorder(grads_and_vars, _apply=apply, _label=label):
            before = snapshot(model)
            _apply(grads_and_vars)
            seen.append((_label, moved(before, snapshot(model))))

        optimizer.apply_gradients = recorder
    model.train_step((tf.constant(images(2)), tf.constant(images(2, seed=1))))
    assert seen == [
        ("G", {"generator_g", "generator_f"}),
        ("D_X", {"discriminator_x"}),
        ("D_Y", {"discriminator_y"}),
    ]


def test_train_step_runs_as_tf_function_and_reports_every_loss():
    model = tiny_cyclegan(pool_size=2)
    model.compile()
    eager = []
    step = model.train_step

    def recording(data):
        eager.append(tf.executing_eagerly())
        return step(data)

    model.train_step = recording
    ds = tf.data.Dataset.from_tensor_slices((images(4), images(4, seed=1))).batch(2)
    history = model.fit(ds, epochs=1, verbose=0, shuffle=False)
    assert eager and not any(eager)  # traced into a graph, never run eagerly
    assert set(history.history) == set(LOSS_NAMES)
    assert int(model.pool_x.count.numpy()) == 2  # the discriminators saw pooled fakes


def test_compute_losses_against_numpy():
    model = tiny_cyclegan()
    model.compile(lambda_gan=2.0, lambda_identity=3.0, lambda_cycle=4.0)
    x, y = images(2), images(2, seed=1)
    terms, fake_x, fake_y = model.compute_losses(x, y)
    g, f = model.generator_g, model.generator_f
    dx, dy = model.discriminator_x, model.discriminator_y
    n = lambda t: np.asarray(t, "float64")  # noqa: E731
    gy, fx = n(g(x)), n(f(y))
    gan = np.mean((n(dy(g(x))) - 1) ** 2) + np.mean((n(dx(f(y))) - 1) ** 2)
    identity = np.mean(np.abs(n(f(x)) - x)) + np.mean(np.abs(n(g(y)) - y))
    cycle = np.mean(np.abs(n(f(g(x))) - x)) + np.mean(np.abs(n(g(f(y))) - y))
    np.testing.assert_allclose(terms["loss_GAN"], gan, rtol=1e-5)
    np.testing.assert_allclose(terms["loss_identity"], identity, rtol=1e-5)
    np.testing.assert_allclose(terms["loss_cycle"], cycle, rtol=1e-5)
    np.testing.assert_allclose(terms["loss_G"], 2 * gan + 3 * identity + 4 * cycle, rtol=1e-5)
    np.testing.assert_allclose(fake_y, gy, atol=1e-6)
    np.testing.assert_allclose(fake_x, fx, atol=1e-6)
    dxl = 0.5 * (np.mean((n(dx(x)) - 1) ** 2) + np.mean(n(dx(f(y))) ** 2))
    np.testing.assert_allclose(model.loss_discriminator_x(x, fake_x), dxl, rtol=1e-5)


def test_test_step_updates_nothing():
    model = tiny_cyclegan()
    model.compile()
    before = snapshot(model)
    result = model.evaluate(images(2), images(2, seed=1), batch_size=2, verbose=0, return_dict=True)
    assert set(result) == set(LOSS_NAMES)
    assert moved(before, snapshot(model)) == set()


def test_call_maps_x_to_y():
    model = tiny_cyclegan()
    x = images(1)
    np.testing.assert_array_equal(model(x), model.generator_g(x))


# Each channel of domain A lives in its own range, so the permuted domain B differs from
# A in distribution (a plain permutation of uniform colours would not, and the identity
# would already fool the discriminators) and only the true mapping puts every channel
# in its B range.
CHANNEL_RANGES = ((-1.0, -0.4), (-0.3, 0.3), (0.4, 1.0))
PERMUTATION = [2, 0, 1]


def smooth_images(n, size, rng):
    """Random low-frequency fields, channel c scaled into CHANNEL_RANGES[c]."""
    coarse = rng.uniform(0, 1, (n, 4, 4, 3)).astype("float32")
    field = tf.image.resize(coarse, (size, size), method="bilinear").numpy()
    low, high = np.array(CHANNEL_RANGES, "float32").T
    return low + (high - low) * field


@pytest.mark.slow
def test_learning_on_a_known_mapping():
    """B is A with colour channels permuted; unpaired training must find it."""
    rng = np.random.default_rng(0)
    size, n = 32, 64
    a = smooth_images(n, size, rng)
    b = smooth_images(n, size, rng)[..., PERMUTATION]  # unpaired: other scenes, permuted
    test_a = smooth_images(16, size, rng)
    truth_b = test_a[..., PERMUTATION]
    model = tiny_cyclegan(size=size, ngf=16, blocks=2, pool_size=10)
    # No identity term: for a colour permutation it pulls G towards the identity map,
    # the opposite of the mapping to learn (the paper uses it to preserve colour).
    model.compile(
        generator_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
        discriminator_x_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
        discriminator_y_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
        lambda_identity=0.0,
    )
    ds = tf.data.Dataset.from_tensor_slices((a, b)).shuffle(n, seed=0).batch(4).repeat()
    first = model.evaluate(a[:16], b[:16], batch_size=4, verbose=0, return_dict=True)["loss_cycle"]
    model.fit(ds, epochs=1, steps_per_epoch=300, verbose=0, shuffle=False)
    last = model.evaluate(a[:16], b[:16], batch_size=4, verbose=0, return_dict=True)["loss_cycle"]
    baseline = np.mean(np.abs(test_a - truth_b))
    translated = np.mean(np.abs(model.generator_g(test_a).numpy() - truth_b))
    print(f"cycle loss {first:.3f} -> {last:.3f}; |G(a)-b*| {translated:.3f} vs |a-b*| {baseline:.3f}")
    assert last < 0.5 * first
    assert translated < 0.5 * baseline


REPLICA_SCRIPT = textwrap.dedent(
    """
    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfcyclegan.core import losses
    from tfcyclegan.core.model import CycleGAN
    from tfcyclegan.core.networks import PatchDiscriminator, ResnetGenerator

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    scaled = mirrored.run(lambda: losses.replica_scale(tf.constant(3.0)))
    print("REPLICA_SCALE", *(float(v) for v in mirrored.experimental_local_results(scaled)))

    # A small SGD step: at 0.1 the 2x2 and 3x3 maps deep in these tiny discriminators
    # (whose instance norms divide by near-zero spreads) turn float rounding chaotic
    # within 3 steps, on one device as much as on two.
    def run(strategy, pool_size=0, optimizer=lambda: keras.optimizers.SGD(0.01)):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            m = CycleGAN(ResnetGenerator(ngf=4, n_blocks=1), ResnetGenerator(ngf=4, n_blocks=1),
                         PatchDiscriminator(ndf=4), PatchDiscriminator(ndf=4), image_size=32, pool_size=pool_size)
            m.compile(*(optimizer() for _ in range(3)))
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (12, 32, 32, 3)).astype("float32")
        y = rng.uniform(-1, 1, (12, 32, 32, 3)).astype("float32")
        start = np.concatenate([v.numpy().ravel() for v in m.trainable_variables])
        reported = []
        record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: reported.append(list(logs.values())))
        m.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(4), epochs=1, verbose=0, callbacks=[record], shuffle=False)  # 3 steps
        return start, np.concatenate([v.numpy().ravel() for v in m.trainable_variables]), m, np.array(reported)

    start, one, _, _ = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
    _, two, _, _ = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    _, _, pooled, _ = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), pool_size=3)
    adam = lambda: keras.optimizers.Adam(2e-4, beta_1=0.5)
    *_, adam_one = run(tf.distribute.OneDeviceStrategy("/cpu:0"), optimizer=adam)
    *_, adam_two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), optimizer=adam)
    # Each replica fills its own pool: 3 steps x 2 images per replica, capped at 3.
    print("POOL_COUNTS", ",".join(str(int(v.numpy())) for v in pooled.pool_x.count.values))
    print("RELATIVE", np.max(np.abs(two - one)) / np.max(np.abs(one)))
    print("UPDATE_RATIO", np.linalg.norm(two - start) / np.linalg.norm(one - start))
    print("ADAM_LOSSES", adam_one.shape[0], np.max(np.abs(adam_two - adam_one) / np.abs(adam_one)))
    """
)


def test_two_replicas_match_one_device():
    # The timeout only stops a hang: on a loaded shared machine the script can take minutes.
    result = subprocess.run([sys.executable, "-c", REPLICA_SCRIPT], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    values = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.strip()}
    # Each of the 2 replicas' mean loss is halved, so their summed gradients make the global mean's.
    assert values["REPLICA_SCALE"] == ["1.5", "1.5"]
    assert float(values["RELATIVE"][0]) < 1e-5
    # Unscaled per-replica losses would make this 2 (the summed gradients double).
    assert abs(float(values["UPDATE_RATIO"][0]) - 1) < 1e-3
    assert values["POOL_COUNTS"] == ["3,3"]
    # With Adam the seven reported losses of each of the 3 steps agree too.
    steps, relative = values["ADAM_LOSSES"]
    assert steps == "3" and float(relative) < 1e-5


def test_warmup_step_trains_only_the_discriminators_on_eqs_7_and_8():
    model = tiny_cyclegan()
    model.compile()
    x, y = tf.constant(images(2)), tf.constant(images(2, seed=1))
    fake_x, fake_y = model.generator_f(y, training=True).numpy(), model.generator_g(x, training=True).numpy()
    dx_real, dx_fake = model.discriminator_x(x).numpy(), model.discriminator_x(fake_x).numpy()
    dy_real, dy_fake = model.discriminator_y(y).numpy(), model.discriminator_y(fake_y).numpy()
    before = snapshot(model)
    losses = model.warmup_step((x, y))
    assert moved(before, snapshot(model)) == {"discriminator_x", "discriminator_y"}
    assert int(model.generator_optimizer.iterations) == 0 and int(model.discriminator_x_optimizer.iterations) == 1
    # pool_size 0: the fakes reach the discriminators as they are.
    expected_dx = 0.5 * (np.mean((dx_real - 1) ** 2) + np.mean(dx_fake**2))
    expected_dy = 0.5 * (np.mean((dy_real - 1) ** 2) + np.mean(dy_fake**2))
    np.testing.assert_allclose(float(losses["loss_D_X"]), expected_dx, rtol=1e-5)
    np.testing.assert_allclose(float(losses["loss_D_Y"]), expected_dy, rtol=1e-5)
