"""The run directory (tfcyclegan/runs/rundir.py): checkpoints name every variable by its layer
path and runs written before that still load in full; one `fit` at a time, never inside the
data; damaged checkpoints fall back to an intact one; config.json problems are one line."""

import errno
import json
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_one_line_error, invoke, tiny_config, write_noise_domains, write_noise_run

from tfcyclegan import export, inference
from tfcyclegan.data import imagefiles
from tfcyclegan.models import modeldir
from tfcyclegan.runs import checkpoints, rundir
from tfcyclegan.runs.config import TrainConfig
from tfcyclegan.runs.layout import RunLayout
from tfcyclegan.training import callbacks, train
from tfcyclegan.util.errors import UserError

V1 = Path(__file__).parent / "fixtures" / "v1"  # written by tests/fixtures/make_v1_fixtures.py


SCHEDULE = dict(pool_size=2, epochs=2, decay_epoch=1)  # the v1 fixture run's


@pytest.fixture
def v1_run(tmp_path):
    return Path(shutil.copytree(V1 / "run", tmp_path / "run"))


def test_a_checkpoint_names_every_network_variable_by_its_layer_path(tmp_path):
    model = train.build_model(tiny_config(**SCHEDULE), steps_per_epoch=1)
    path = rundir.make_checkpoint(model).write(str(tmp_path / "ckpt"))
    keys = {key for key, _ in tf.train.list_variables(path)}
    value = "/.ATTRIBUTES/VARIABLE_VALUE"
    for name in ("conv_in:kernel", "conv_down_2:bias", "block_1:conv_2:kernel", "conv_up_1:kernel", "conv_out:bias"):
        assert f"generator_g/{name}{value}" in keys and f"generator_f/{name}{value}" in keys
    for name in ("conv_1:kernel", "conv_4:kernel", "conv_out:kernel"):
        assert f"discriminator_x/{name}{value}" in keys and f"discriminator_y/{name}{value}" in keys
    networks = {k.split("/")[0] for k in keys if k.startswith(("generator_", "discriminator_"))}
    by_network = {n: [k for k in keys if k.startswith(n + "/")] for n in networks}
    # Every variable of every network is stored under its own name, none only through Adam's list.
    for name in rundir.NETWORKS:
        assert len(by_network[name]) == len(getattr(model, name).weights), name


def test_a_run_written_before_named_checkpoints_still_translates_as_it_did(v1_run):
    generator_g, generator_f, config = rundir.load_generators(v1_run)
    probe = np.load(V1 / "probe.npy")
    assert (config.ngf, config.blocks) == (4, 1)
    np.testing.assert_allclose(generator_g(probe).numpy(), np.load(V1 / "run_a2b.npy"), atol=1e-6)
    np.testing.assert_allclose(generator_f(probe).numpy(), np.load(V1 / "run_b2a.npy"), atol=1e-6)


def test_a_run_written_before_named_checkpoints_resumes_in_full_and_saves_named(v1_run, tmp_path):
    model = train.build_model(rundir.load_config(v1_run), steps_per_epoch=1)
    found = rundir.newest_checkpoint(v1_run)
    rundir.check_model_matches(found.path, model, v1_run)
    rundir.restore_checkpoint(model, found.path)  # asserts that every value was consumed
    reader = tf.train.load_checkpoint(found.path)
    assert int(model.generator_optimizer.iterations.numpy()) == 1 == rundir.checkpoint_step(found.path)
    # Adam's moments of the one step came back (assert_consumed above placed every value).
    assert any(np.any(v.numpy() != 0) for v in model.generator_optimizer.variables[1:])
    saved = [reader.get_tensor(f"discriminator_y/{i}/.ATTRIBUTES/VARIABLE_VALUE") for i in range(10)]
    for variable, value in zip(model.discriminator_y.weights, saved, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    path = rundir.make_checkpoint(model).write(str(tmp_path / "ckpt"))
    assert "generator_g/block_1:conv_1:kernel/.ATTRIBUTES/VARIABLE_VALUE" in dict(tf.train.list_variables(path))


def test_a_model_directory_written_before_named_layers_still_loads(tmp_path):
    folder = Path(shutil.copytree(V1 / "model", tmp_path / "model"))
    probe = np.load(V1 / "probe.npy")
    for direction, expected in (("a2b", "run_a2b.npy"), ("b2a", "run_b2a.npy")):
        generator = modeldir.load_generator(folder, direction)
        np.testing.assert_allclose(generator(probe).numpy(), np.load(V1 / expected), atol=1e-6)


def test_a_config_that_builds_other_layers_is_refused_naming_the_layer_path(v1_run):
    model = train.build_model(tiny_config(**SCHEDULE, blocks=2), steps_per_epoch=1)
    with pytest.raises(
        UserError, match=r"\(generator_g/16 is not there; generator_g has 16 variables there, 20 by config.json\)"
    ):
        rundir.check_model_matches(rundir.newest_checkpoint(v1_run).path, model, v1_run)
    named = train.build_model(tiny_config(**SCHEDULE, ngf=8), steps_per_epoch=1)
    path = rundir.make_checkpoint(named).write(str(v1_run / "named"))
    model = train.build_model(tiny_config(**SCHEDULE), steps_per_epoch=1)
    with pytest.raises(UserError) as error:
        rundir.check_model_matches(path, model, v1_run)
    assert "(generator_g/conv_in/kernel has shape [7, 7, 3, 8] there, [7, 7, 3, 4] by config.json)" in str(error.value)
    fewer = train.build_model(tiny_config(**SCHEDULE, blocks=0), steps_per_epoch=1)
    with pytest.raises(UserError, match=r"it has generator_g/block_1/conv_1/bias, which config.json does not build"):
        rundir.check_model_matches(path, fewer, v1_run)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_a_mixed_precision_model_leaves_the_global_policy_alone(precision):
    before = keras.mixed_precision.global_policy().name
    model = train.build_model(tiny_config(**SCHEDULE, precision=precision), steps_per_epoch=1)
    assert keras.mixed_precision.global_policy().name == before == "float32"
    compute = precision.removeprefix("mixed_")
    for name in rundir.NETWORKS:
        network = getattr(model, name)
        convolutions = [layer for layer in network.stack if isinstance(layer, keras.layers.Conv2D)]
        assert {layer.compute_dtype for layer in convolutions[:-1]} == {compute}, name
        assert {v.dtype for v in network.weights} == {"float32"}, name
    assert model.generator_g.stack[-1].compute_dtype == "float32"  # tanh: full-range images
    assert model.discriminator_x.stack[-1].compute_dtype == "float32"  # LSGAN scores
    # A float32 model built afterwards computes in float32.
    assert train.build_model(tiny_config(**SCHEDULE), steps_per_epoch=1).generator_g.stack[1].compute_dtype == "float32"


TINY = dict(epochs=2, steps_per_epoch=2, disc_layers=1, pool_size=2)  # two epochs, two checkpoints


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Domains root/a, root/b and a finished two-epoch run root/run (ckpt-2, ckpt-4)."""
    root = tmp_path_factory.mktemp("rundir")
    write_noise_domains(root, count=3, shape=(32, 32))
    config = tiny_config(domain_a=root / "a", domain_b=root / "b", run_dir=root / "run", **TINY)
    train.fit(config, verbose=0)
    return root


@pytest.fixture
def run(trained, tmp_path):
    """A copy of the trained run to damage."""
    return Path(shutil.copytree(trained / "run", tmp_path / "run"))


def generator_weights(run_dir, checkpoint):
    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints" / checkpoint))
    return reader.get_tensor("generator_g/conv_in:kernel/.ATTRIBUTES/VARIABLE_VALUE")


def test_a_second_fit_stops_at_once_naming_the_pid_that_holds_the_run(trained, run, tmp_path):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for folder in (run, fresh):
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time; from tfcyclegan.runs.rundir import RunLock; "
             "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(600)", str(folder)],
            stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert holder.stdout.readline().strip() == "locked"
            result = invoke("fit", "--domain-a", trained / "a", "--domain-b", trained / "b", "--run-dir", folder)
            assert_one_line_error(
                result,
                f"error: {folder} is in use by another `tfcyclegan fit` (PID {holder.pid}); wait for it to finish "
                "or stop it, or pass another --run-dir",
            )
            if folder == run:
                assert result.stdout == ""  # an existing run is refused before any work
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
    assert not (fresh / "config.json").exists()  # the fresh run stopped before writing anything
    # A killed holder leaves its lock file but no lock: the next fit goes on.
    result = invoke("fit", "--run-dir", run)
    assert result.exit_code == 0 and "already finished all 2 epochs" in result.stdout, result.output
    assert (run / "fit.lock").read_text().strip() == str(os.getpid())


def test_a_run_dir_inside_a_domain_is_refused(trained, tmp_path, monkeypatch):
    domain = Path(shutil.copytree(trained / "a", tmp_path / "a"))
    monkeypatch.chdir(domain)  # the default run dir runs/a2b would land inside domain A
    result = invoke("fit", "--domain-a", domain, "--domain-b", trained / "b", "--epochs", "1", "--decay-epoch", "0")
    assert_one_line_error(
        result,
        f"error: run directory {Path('runs') / 'a2b'} is inside domain A's folder {domain}, where its samples would "
        f"become training images; pass a --run-dir outside {domain}",
    )
    assert not (domain / "runs").exists()


@pytest.mark.parametrize("state", [b'model_checkpoint_path: "ckpt-', b"\x00\xff\xfe not text"])
def test_a_damaged_checkpoint_state_file_finds_the_checkpoints_from_their_files(run, state):
    (run / "checkpoints" / "checkpoint").write_bytes(state)
    assert rundir.has_checkpoint(run)
    translator = inference.load_translator(run, "a2b")
    assert translator(np.zeros((8, 8, 3), np.float32)).shape == (8, 8, 3)
    result = invoke("fit", "--run-dir", run)  # resumes (and finds the run finished), not a fresh run
    assert result.exit_code == 0 and "already finished all 2 epochs" in result.stdout, result.output


def truncate_data(prefix):
    data = Path(f"{prefix}.data-00000-of-00001")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])


def delete_data(prefix):
    Path(f"{prefix}.data-00000-of-00001").unlink()


def flip_bytes(prefix):
    data = Path(f"{prefix}.data-00000-of-00001")
    flipped = bytearray(data.read_bytes())
    flipped[len(flipped) // 3] ^= 0xFF
    data.write_bytes(bytes(flipped))


def truncate_index(prefix):
    index = Path(f"{prefix}.index")
    index.write_bytes(index.read_bytes()[:100])


DAMAGE = {
    truncate_data: "a .data file is truncated",
    delete_data: "a .data file is missing",
    flip_bytes: "a .data file fails its checksum",
    truncate_index: "its .index file is unreadable: ",
}


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(run, damage, capsys):
    damaged = run / "checkpoints" / "ckpt-4"
    damage(damaged)
    g, _, _ = rundir.load_generators(run)
    np.testing.assert_array_equal(g.weights[0].numpy(), generator_weights(run, "ckpt-2"))
    note = capsys.readouterr().err
    assert f"note: checkpoint {damaged} is damaged ({DAMAGE[damage]}" in note
    assert f"using {run / 'checkpoints' / 'ckpt-2'}, the newest intact one" in note


def test_resume_falls_back_never_overwrites_the_damaged_checkpoint_and_sets_aside_a_foreign_loss_log(run):
    damaged = run / "checkpoints" / "ckpt-4"
    flip_bytes(damaged)
    kept = {p.name: p.read_bytes() for p in run.joinpath("checkpoints").glob("ckpt-4.*")}
    spreadsheet = "\ufeffepoch;loss_G\r\n1;0,5\r\n".encode()
    (run / "losses.csv").write_bytes(spreadsheet)
    result = invoke("fit", "--run-dir", run)
    assert result.exit_code == 0, result.output
    assert f"note: checkpoint {damaged} is damaged" in result.stderr
    assert f"resuming {run} at epoch 2, step 2" in result.stderr
    # Step 4 again, numbered above the damaged ckpt-4, which is left as it was.
    assert tf.train.latest_checkpoint(run / "checkpoints").endswith("ckpt-5")
    assert {p.name: p.read_bytes() for p in run.joinpath("checkpoints").glob("ckpt-4.*")} == kept
    # Unlisted now, ckpt-4 still holds its number against a later resume from ckpt-2.
    assert checkpoints.highest_damaged(run / "checkpoints", above=2) == 4
    reader = tf.train.load_checkpoint(str(run / "checkpoints" / "ckpt-5"))
    assert reader.get_tensor("generator_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 4
    aside = run / "losses.csv.unreadable-1"
    assert aside.read_bytes() == spreadsheet
    assert f"note: cannot read {run / 'losses.csv'} (" in result.stderr
    assert f"moved it to {aside} and began a new one" in result.stderr
    assert (run / "losses.csv").read_text().splitlines()[1].startswith("2,")


def test_the_checkpoint_does_not_depend_on_the_loss_log(trained, tmp_path, monkeypatch):
    def disk_full(rows, path, panels):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(callbacks, "save_loss_figure", disk_full)
    config = tiny_config(domain_a=trained / "a", domain_b=trained / "b", run_dir=tmp_path / "r",
                         **{**TINY, "epochs": 1, "steps_per_epoch": 1})  # fmt: skip
    with pytest.raises(UserError, match=r"losses\.png[^:]*: No space left on device"):
        train.fit(config, verbose=0)
    assert tf.train.latest_checkpoint(tmp_path / "r" / "checkpoints").endswith("ckpt-1")


def edit_config(run_dir, **changes):
    path = run_dir / "config.json"
    values = json.loads(path.read_text())
    for key, value in changes.items():
        if value is KeyError:
            del values[key]
        else:
            values[key] = value
    path.write_text(json.dumps(values))
    return path


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"ngf": KeyError}, '"ngf" is missing'),
        ({"ngf": True}, '"ngf" must be an integer (got true)'),
        ({"flip": 1}, '"flip" must be true or false (got 1)'),
        ({"blocks": 1000000}, '"blocks" must be <= 32 (got 1000000)'),
        ({"lr": math.nan}, '"lr" must be a finite number (got nan)'),
        ({"lambda_cycle": math.inf}, '"lambda_cycle" must be a finite number (got inf)'),
    ],
)
def test_config_json_problems_are_one_line_naming_the_key(trained, run, tmp_path, changes, problem):
    path = edit_config(run, **changes)
    result = invoke("translate", "--model", run, "--direction", "a2b", trained / "a", "--output", tmp_path / "out")
    assert_one_line_error(
        result,
        f"error: {path} is not a valid tfcyclegan config ({problem}); give a run directory written by "
        "`tfcyclegan fit` (its config.json lists every option)",
    )


def test_config_json_that_disagrees_with_the_checkpoint_names_the_variable(trained, run, tmp_path):
    path = edit_config(run, ngf=8)
    result = invoke("translate", "--model", run, "--direction", "a2b", trained / "a", "--output", tmp_path / "out")
    assert_one_line_error(result, f"error: {path} does not match checkpoint {run / 'checkpoints' / 'ckpt-4'} (")
    assert "generator_g/conv_in/kernel has shape [7, 7, 3, 4] there, [7, 7, 3, 8] by config.json" in result.stderr
    assert "put back the config.json this run was trained with" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    edit_config(run, ngf=4, blocks=2)
    with pytest.raises(
        UserError, match=r"\(generator_g/block_2/conv_1/bias is not there; generator_g has 16 variables there, 20 by"
    ):
        rundir.load_generators(run)


def test_run_dir_that_is_a_file_read_only_or_on_a_full_disk(trained, tmp_path, monkeypatch):
    domains = ["--domain-a", trained / "a", "--domain-b", trained / "b"]
    (tmp_path / "notes.txt").write_text("not a folder\n")
    result = invoke("fit", *domains, "--run-dir", tmp_path / "notes.txt")
    assert_one_line_error(
        result, f"error: --run-dir {tmp_path / 'notes.txt'} is a file; give a folder (a new one, or a run directory to "
        "resume)"
    )  # fmt: skip

    # As root chmod does not stop writes, so a read-only folder is simulated where it is
    # checked: os.access, which also reports a read-only mount.
    access = os.access
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != read_only and access(path, mode))
    result = invoke("fit", *domains, "--run-dir", read_only / "run")
    assert_one_line_error(
        result, f"error: cannot write in {read_only} (read-only); pass a --run-dir in a folder you can write"
    )
    assert result.stdout == "" and not (read_only / "run").exists()  # stopped before any work
    monkeypatch.undo()

    def disk_full(self, path, **extra):
        Path(path).write_text("")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(TrainConfig, "save", disk_full)
    run_dir = tmp_path / "full"
    result = invoke("fit", *domains, "--run-dir", run_dir)
    assert_one_line_error(
        result,
        f"error: cannot write {run_dir / 'config.json'}: No space left on device; free some disk space or pass a "
        "--run-dir on another disk",
    )
    assert sorted(p.name for p in run_dir.iterdir()) == ["fit.lock"]  # no config.json.tmp left behind


def test_a_run_dir_among_the_data_is_not_listed_as_images(trained, tmp_path):
    domain = Path(shutil.copytree(trained / "a", tmp_path / "a"))
    shutil.copytree(trained / "run", domain / "old run")  # samples/epoch_001.png, losses.png...
    notes = []
    expected = sorted(str(domain / p.name) for p in (trained / "a").iterdir())
    assert imagefiles.list_images(domain, log=notes.append) == expected
    assert notes == [f"note: skipped folder {domain / 'old run'}: a tfcyclegan run directory, not data"]


def test_export_of_a_run_whose_newest_checkpoint_is_damaged_exports_the_intact_one(run, tmp_path, capsys):
    delete_data(run / "checkpoints" / "ckpt-4")
    export.export(run, "savedmodel", output=tmp_path / "exported", log=lambda message: None)
    assert json.loads((tmp_path / "exported" / "metadata.json").read_text())["checkpoint"] == "ckpt-2"
    assert f"note: checkpoint {run / 'checkpoints' / 'ckpt-4'} is damaged" in capsys.readouterr().err


# Hostile run directories (issue #25 items 15, 17, 18): files tfcyclegan reads of its own are
# opened only when regular, a lock never follows a link, bad names and roots are one line.


class ReaderWatch:
    """Watches a named pipe for a reader or a writer blocked on it, and lets it go (the other
    end opened, drained and closed), so a hang fails the test instead of stalling it."""

    def __init__(self, fifo):
        import threading

        self.fifo, self.blocked, self.done = fifo, False, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self):
        while not self.done.wait(0.2):
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody is reading; ENOENT: moved away
                pass
            else:
                self.blocked = self.blocked or stat.S_ISFIFO(os.fstat(fd).st_mode)  # not a file made in its place
                os.close(fd)
            try:
                fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                continue
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                time.sleep(0.1)  # a writer let through by this open writes now
                try:
                    while os.read(fd, 65536):
                        self.blocked = True
                except BlockingIOError:  # a writer holds it open
                    self.blocked = True
            os.close(fd)

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.blocked


def tiny_fit(run, root, *extra):
    return invoke("fit", "--domain-a", root / "A", "--domain-b", root / "B", "--run-dir", run, "--ngf", 4, "--ndf", 4,
                  "--blocks", 1, "--disc-layers", 1, "--image-size", 16, "--load-size", 16, "--epochs", 1,
                  "--decay-epoch", 0, "--pool-size", 2, "--steps-per-epoch", 1, *extra)  # fmt: skip


def test_named_pipes_as_a_run_s_files_are_refused_at_once(tmp_path):
    run = write_noise_run(tmp_path, 2)
    state = RunLayout(run).checkpoint_state
    state.unlink()
    os.mkfifo(state)
    watch = ReaderWatch(state)
    message = f"{state} is not a regular file (a named pipe); move it away (the checkpoints are found from their ckpt-* files)"
    assert_one_line_error(
        invoke("translate", tmp_path / "A", "--model", run, "--direction", "a2b", "-o", tmp_path / "o"), message
    )
    assert_one_line_error(invoke("export", run, "--format", "keras", "-o", tmp_path / "k"), message)
    assert_one_line_error(tiny_fit(run, tmp_path), message)
    state.unlink()
    [data] = RunLayout(run).checkpoints.glob("ckpt-1.data-*")
    data.rename(tmp_path / "data")
    os.mkfifo(data)
    watch_data = ReaderWatch(data)
    result = invoke("translate", tmp_path / "A", "--model", run, "--direction", "a2b", "-o", tmp_path / "o")
    assert (
        f"note: checkpoint {RunLayout(run).checkpoint(1)} is damaged ({data.name} is a named pipe, not a regular file)"
        in result.stderr
    )
    assert_one_line_error(result, f"no checkpoint of {run} is intact")
    data.unlink()
    (tmp_path / "data").rename(data)
    config = RunLayout(run).config
    config.rename(tmp_path / "config.json")
    os.mkfifo(config)
    watch_config = ReaderWatch(config)
    assert_one_line_error(
        invoke("fit", "--run-dir", run),
        f"cannot read {config}: not a regular file (a named pipe); is this a tfcyclegan run directory?",
    )
    assert not watch.stop() and not watch_data.stop() and not watch_config.stop()


def test_named_pipes_as_the_loss_log_figure_and_samples_never_block_the_run(tmp_path):
    write_noise_domains(tmp_path, 2, (20, 20), names=("A", "B"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "samples").mkdir()
    pipes = [run / "losses.csv", run / "losses.png", run / "samples" / "epoch_001.png"]
    for pipe in pipes:
        os.mkfifo(pipe)
    watches = [ReaderWatch(pipe) for pipe in pipes]
    result = tiny_fit(run, tmp_path)
    assert [watch.stop() for watch in watches] == [False] * 3, "fit blocked on a named pipe"
    assert result.exit_code == 0, result.output
    assert all(stat.S_ISREG(os.lstat(path).st_mode) for path in pipes)  # the figure and the grid replaced them
    assert (
        f"note: cannot read {run / 'losses.csv'} (not a regular file (a named pipe)); moved it to "
        f"{run / 'losses.csv.unreadable-1'} and began a new one" in result.stderr
    )
    assert (run / "losses.csv.unreadable-1").is_fifo() and (run / "losses.csv").read_text().count("\n") == 2


def test_fit_lock_that_is_a_pipe_or_a_link_is_refused_and_nothing_is_truncated(tmp_path):
    run = write_noise_run(tmp_path, 2)
    os.mkfifo(RunLayout(run).lock)
    assert_one_line_error(
        invoke("fit", "--run-dir", run),
        f"{RunLayout(run).lock} is a named pipe, not a regular file; move it away (fit makes its own lock file)",
    )
    RunLayout(run).lock.unlink()
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    RunLayout(run).lock.symlink_to(victim)
    assert_one_line_error(
        invoke("fit", "--run-dir", run),
        f"{RunLayout(run).lock} is a symbolic link; move it away (fit makes its own lock file)",
    )
    assert victim.read_text() == "keep me"


def test_names_that_are_not_utf8_are_refused_before_anything_is_written(tmp_path):
    run = write_noise_run(tmp_path, 2)
    bad = str(tmp_path / "r\udcff")  # the byte 0xff, as Python keeps it from the command line
    before = sorted(os.listdir(tmp_path))
    assert_one_line_error(
        tiny_fit(bad, tmp_path),
        f"--run-dir {tmp_path}/r\\xff is not valid UTF-8, which TensorFlow needs in file names; "
        "give --run-dir a name in UTF-8",
    )
    assert_one_line_error(
        invoke("export", run, "--format", "keras", "-o", bad), f"--output {tmp_path}/r\\xff is not valid UTF-8"
    )
    assert sorted(os.listdir(tmp_path)) == before
