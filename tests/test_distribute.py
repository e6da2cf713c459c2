"""Strategies: TF_CONFIG checks, which process writes, and real multi-worker training.

The multi-worker tests start two worker processes on 127.0.0.1 (loopback only) that
train a tiny model through `train.fit` under MultiWorkerMirroredStrategy; every
process a test starts is killed when it ends.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import write_noise_domains

from tfcyclegan.training import distribute
from tfcyclegan.util.errors import UserError

TIMEOUT = 300  # seconds for one multi-worker run on a loaded 2-core machine (183 s measured at load 8)

# Trains through train.fit and saves the final weights of all four networks (this
# worker's copy) to argv[2]. With STOP_AFTER_EPOCH set, every worker stops after that
# epoch, as an interrupted run would (its checkpoint saved), so a restart resumes.
WORKER = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    from tfcyclegan.training import callbacks, train
    from tfcyclegan.runs import rundir
    from tfcyclegan.runs.config import TrainConfig
    from tfcyclegan.util.errors import UserError

    built, build = [], train.build_model
    train.build_model = lambda *args, **kwargs: built.append(build(*args, **kwargs)) or built[-1]
    epoch_end = callbacks.Throughput.on_epoch_end
    stop_after = int(os.environ.get("STOP_AFTER_EPOCH", 0))

    def on_epoch_end(self, epoch, logs=None):
        epoch_end(self, epoch, logs)
        self.model.stop_training = epoch + 1 == stop_after

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        print("STEP", int(self.model.generator_optimizer.iterations.numpy()), flush=True)

    callbacks.Throughput.on_epoch_end = on_epoch_end
    callbacks.Throughput.on_train_batch_end = on_train_batch_end
    try:
        train.fit(TrainConfig(**json.loads(sys.argv[1])), verbose=0)
    except UserError as error:  # as the command line reports it
        sys.exit(f"error: {error}")
    nets = [built[-1].generator_g, built[-1].generator_f, built[-1].discriminator_x, built[-1].discriminator_y]
    np.save(sys.argv[2], np.concatenate([w.numpy().ravel() for net in nets for w in net.weights]))
    """
)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture
def cluster(tmp_path):
    """Starts workers of one two-worker cluster; kills whatever is left at the end."""
    write_noise_domains(tmp_path, count=4, shape=(16, 16))
    started = []

    def start(epochs, steps, stop_after=0, worker_timeout=60):
        ports = free_ports(2)
        config = dict(domain_a=str(tmp_path / "a"), domain_b=str(tmp_path / "b"), run_dir=str(tmp_path / "run"),
                      epochs=epochs, decay_epoch=0, steps_per_epoch=steps, ngf=4, ndf=4, blocks=1, disc_layers=1,
                      image_size=16, load_size=16, batch_size=2, pool_size=2, sample_count=1,
                      strategy="multiworker", worker_timeout=worker_timeout)  # fmt: skip
        workers = []
        for index in range(2):
            scratch = tmp_path / f"tmp{index}"
            scratch.mkdir(exist_ok=True)
            env = {**os.environ, "TMPDIR": str(scratch), "STOP_AFTER_EPOCH": str(stop_after),
                   "TF_CONFIG": json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                            "task": {"type": "worker", "index": index}})}  # fmt: skip
            weights = tmp_path / f"weights{index}.npy"
            process = subprocess.Popen(
                [sys.executable, "-c", WORKER, json.dumps(config), str(weights)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            started.append(process)
            workers.append((process, weights, scratch))
        return workers

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def finish(workers):
    outputs = []
    for process, _weights, _scratch in workers:
        output, _ = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, output[-3000:]
        outputs.append(output)
    return outputs


@pytest.mark.slow
def test_two_workers_train_alike_only_the_chief_writes_and_both_resume(cluster, tmp_path):
    run = tmp_path / "run"
    workers = cluster(epochs=2, steps=3, stop_after=1)
    finish(workers)
    (_, w0, tmp0), (_, w1, tmp1) = workers
    assert np.array_equal(np.load(w0), np.load(w1))
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.suffix == ".index") == ["ckpt-3.index"]
    assert (run / "losses.csv").exists() and (run / "config.json").exists()
    # The non-chief wrote its checkpoints to a temporary folder and removed it.
    assert list(tmp1.iterdir()) == []
    first = np.load(w0)

    outputs = finish(cluster(epochs=2, steps=3))
    assert all("resuming" in output and "epoch 2, step 3" in output for output in outputs)
    assert np.array_equal(np.load(w0), np.load(w1)) and not np.array_equal(np.load(w0), first)
    assert "ckpt-6.index" in {p.name for p in (run / "checkpoints").iterdir()}
    assert list(tmp1.iterdir()) == []


@pytest.mark.slow
def test_a_dead_worker_stops_the_other_with_a_message(cluster):
    (chief, _, _), (worker, _, _) = cluster(epochs=1, steps=100_000, worker_timeout=60)
    for line in chief.stdout:  # wait until both train
        if line.startswith("STEP 3"):
            break
    worker.send_signal(signal.SIGKILL)
    output, _ = chief.communicate(timeout=TIMEOUT)
    assert chief.returncode == 1, output[-3000:]
    # "died" is the heartbeat's verdict (UnavailableError), not the --worker-timeout's.
    assert "error: lost contact with another worker: a worker died" in output and "restart every worker" in output
    assert "Traceback" not in output


def test_tf_config_is_required_and_checked(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="TF_CONFIG environment variable, which is not set"):
        distribute.cluster_task()
    for bad, reason in (("{", "JSONDecodeError"), ('{"cluster": {}}', "KeyError"),
                        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 1}}', "IndexError")):  # fmt: skip
        monkeypatch.setenv("TF_CONFIG", bad)
        with pytest.raises(UserError, match=reason):
            distribute.cluster_task()


def test_chief_is_the_chief_task_else_worker_0():
    two = {"worker": ["a:1", "b:1"]}
    with_chief = {"chief": ["c:1"], "worker": ["a:1"]}
    assert distribute.chief_task(two, "worker", 0) and not distribute.chief_task(two, "worker", 1)
    assert distribute.chief_task(with_chief, "chief", 0) and not distribute.chief_task(with_chief, "worker", 0)


CROSS_RESTORE = textwrap.dedent(
    """
    import tempfile
    import keras, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfcyclegan.runs import rundir
    from tfcyclegan.training import train
    from tfcyclegan.runs.config import TrainConfig

    config = TrainConfig(ngf=4, ndf=4, blocks=1, disc_layers=1, image_size=16, load_size=16, pool_size=2)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    single = tf.distribute.OneDeviceStrategy("/cpu:0")

    def model_under(strategy, seed):
        with strategy.scope():
            keras.utils.set_random_seed(seed)
            return train.build_model(config, steps_per_epoch=10)

    def state(model):
        nets = [model.generator_g, model.generator_f, model.discriminator_x, model.discriminator_y]
        optimizers = [model.generator_optimizer, model.discriminator_x_optimizer, model.discriminator_y_optimizer]
        return [v.numpy() for net in nets for v in net.weights] + [v.numpy() for o in optimizers for v in o.variables]

    def pools(model):  # each replica's buffer of pool_x
        images = model.pool_x.images
        return [v.numpy() for v in getattr(images, "values", (images,))]

    x = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    for source, target, name in ((mirrored, single, "mirrored->single"), (single, mirrored, "single->mirrored")):
        trained = model_under(source, 0)
        trained.fit(tf.data.Dataset.from_tensors((x, x)).repeat(2), epochs=1, verbose=0, shuffle=False)
        path = rundir.make_checkpoint(trained).save(tempfile.mkdtemp() + "/ckpt")
        restored = model_under(target, 1)
        before = state(restored)
        rundir.make_checkpoint(restored).restore(path).assert_consumed()
        after, wanted = state(restored), state(trained)
        same = all(np.array_equal(a, b) for a, b in zip(after, wanted)) and len(after) == len(wanted)
        moved = sum(not np.array_equal(a, b) for a, b in zip(before, after))
        saved, got = pools(trained), pools(restored)
        # Replica i restores saved pool i mod R: the first replica's for a single device,
        # the one pool of a single device for every replica.
        pooled = np.any(saved[0]) and all(np.array_equal(p, saved[i % len(saved)]) for i, p in enumerate(got))
        steps = int(restored.generator_optimizer.iterations.numpy())
        print(name, "SAME" if same else "DIFFERENT", steps, moved, "POOLS" if pooled else "NO-POOLS")
    """
)


def test_checkpoints_restore_across_mirrored_and_single_device():
    result = subprocess.run([sys.executable, "-c", CROSS_RESTORE], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line.split() for line in result.stdout.splitlines() if "->" in line]
    assert [line[:3] for line in lines] == [["mirrored->single", "SAME", "2"], ["single->mirrored", "SAME", "2"]]
    assert all(int(line[3]) > 10 for line in lines)  # the restore really replaced the fresh model's values
    assert all(line[4] == "POOLS" for line in lines)


# Trains 2 epochs straight and 1 + resume 1 on 2 mirrored logical CPUs through train.fit,
# then prints the largest difference between the two final checkpoints and what the
# resumed run's pool checkpoint holds.
MIRRORED_RESUME = textwrap.dedent(
    """
    import sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfcyclegan.training import callbacks, train
    from tfcyclegan.runs import rundir
    from tfcyclegan.runs.config import TrainConfig

    root = sys.argv[1]

    def fit(run):
        train.fit(TrainConfig(domain_a=root + "/a", domain_b=root + "/b", run_dir=root + "/" + run, epochs=2,
                              decay_epoch=1, steps_per_epoch=3, ngf=4, ndf=4, blocks=1, disc_layers=1,
                              image_size=16, load_size=16, batch_size=2, pool_size=2, sample_count=1,
                              strategy="mirrored"), verbose=0)

    def state(run):
        reader = tf.train.load_checkpoint(root + "/" + run + "/checkpoints")
        dtypes = reader.get_variable_to_dtype_map()
        return {k: reader.get_tensor(k) for k, t in dtypes.items() if t.is_numeric and "save_counter" not in k}

    fit("straight")
    save = callbacks.CheckpointSaver.on_epoch_end

    def stop_after_first_epoch(self, epoch, logs=None):
        save(self, epoch, logs)
        raise KeyboardInterrupt

    callbacks.CheckpointSaver.on_epoch_end = stop_after_first_epoch
    fit("resumed")
    callbacks.CheckpointSaver.on_epoch_end = save
    fit("resumed")
    a, b = state("straight"), state("resumed")
    assert a.keys() == b.keys()
    pools = b["pool_x/images/.ATTRIBUTES/VARIABLE_VALUE"]
    print("POOLS", pools.shape[0], "DIFFERENT" if not np.array_equal(pools[0], pools[1]) else "EQUAL")
    print("MAXDIFF", max(float(np.max(np.abs(a[k].astype("float64") - b[k]))) for k in a))
    """
)


@pytest.mark.slow
def test_mirrored_resume_restores_every_replicas_pool(tmp_path):
    """Each replica draws from its own pool, so an exact resume needs all of them back."""
    write_noise_domains(tmp_path, count=4, shape=(16, 16))
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_RESUME, str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(maxsplit=1) for line in result.stdout.splitlines() if line.startswith(("POOLS", "MAX")))
    assert lines["POOLS"] == "2 DIFFERENT"
    # Weights, Adam moments, steps and both replicas' pools; with only the first
    # replica's pool restored, the weights end 2.6e-3 apart.
    assert float(lines["MAXDIFF"]) <= 1e-6
