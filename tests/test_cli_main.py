"""The command group (cli/main.py): what a command leaves on stderr in a real process off a
terminal (no C++ line -- TensorFlow's start-up log, absl's pre-initialisation warning, the
TFLite converter's `fully_quantize: ...`, LiteRT's XNNPACK line -- unless --debug, whatever
TF_CPP_MIN_LOG_LEVEL says; Keras' download lines on stderr, not among the results; progress
as finished lines), and an unexpected error or Ctrl-C as one line without a traceback."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_line_error, invoke, photo_like, write_untrained_run
from PIL import Image

TFCYCLEGAN = str(Path(sys.executable).parent / "tfcyclegan")
# absl's notice before its logging starts, and glog-style lines: I0000 00:00:... port.cc:153] ...
TF_LOG = re.compile(r"absl::InitializeLog|^[IWEF]\d{4} ", re.MULTILINE)
# Every C++ line seen so far: TF_LOG, the TFLite converter's, LiteRT's `INFO: ...`.
CPP_LOG = re.compile(TF_LOG.pattern + r"|fully_quantize|^INFO: |XNNPACK", re.MULTILINE)


def run(*args, **env):
    # The test process may have TF_CPP_MIN_LOG_LEVEL set (an in-process command sets it).
    base = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([TFCYCLEGAN, *args], capture_output=True, text=True, env={**base, **env})


def images(folder, count):
    folder.mkdir()
    for i in range(count):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(folder / f"{i:03d}.png")
    return folder


def test_check_data_prints_only_its_own_lines(tmp_path):
    folder = images(tmp_path / "a", 100)
    result = run("check-data", str(folder))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"100 readable, 0 unreadable of 100 image files under {folder}\n"
    assert result.stderr == "checking images: 100/100\n"


def test_tensorflow_log_shows_with_debug(tmp_path):
    folder = images(tmp_path / "a", 1)
    result = run("--debug", "check-data", str(folder))
    assert result.returncode == 0, result.stderr
    assert TF_LOG.search(result.stderr), result.stderr


@pytest.mark.parametrize("level", ["0", "2"])
def test_a_users_own_log_level_shows_no_cpp_line(tmp_path, level):
    # With TF_CPP_MIN_LOG_LEVEL=2, a common habit, absl's pre-initialisation warning and
    # cudart_stub's "Could not find cuda drivers" came through: TensorFlow reads the level
    # only after they are written.
    folder = images(tmp_path / "a", 100)
    result = run("check-data", str(folder), TF_CPP_MIN_LOG_LEVEL=level)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "checking images: 100/100\n"


def test_int8_export_and_tflite_translate_print_no_cpp_line(tmp_path):
    for domain, offset in (("A", 0), ("B", 100)):
        (tmp_path / domain).mkdir()
        for i in range(4):
            pixels = ((photo_like(40, 48, offset + i) + 1) * 127.5).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / domain / f"{i}.png")
    run_dir = write_untrained_run(tmp_path)
    out = tmp_path / "int8"
    result = run("export", str(run_dir), "--format", "tflite", "--quantize", "int8", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "converting a2b" in result.stderr and not CPP_LOG.search(result.stderr), result.stderr
    result = run("translate", "--model", str(out / "a2b.tflite"), str(tmp_path / "A" / "0.png"), "-o", str(tmp_path / "t"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == "translating\n"


def test_translate_prints_only_its_own_lines(tmp_path):
    images(tmp_path / "A", 3)
    images(tmp_path / "B", 1)
    run_dir = write_untrained_run(tmp_path)
    result = run("translate", "--model", str(run_dir), "--direction", "a2b", str(tmp_path / "A"), "-o", str(tmp_path / "out"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"translated 3 images into {tmp_path / 'out'}\n"
    # click's bar off a terminal: its label once, no redraws.
    assert result.stderr == "translating\n"


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(domains, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("tfcyclegan.data.imagefiles.scan_images", boom)
    assert_one_line_error(
        invoke("check-data", domains / "clean"),
        "error: unexpected RuntimeError: boom; this is a bug: rerun with `tfcyclegan --debug ...` for the traceback "
        "and report it",
    )
    result = invoke("--debug", "check-data", domains / "clean")
    assert isinstance(result.exception, RuntimeError)


def test_ctrl_c_outside_training_exits_130_without_a_traceback(domains, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("tfcyclegan.data.imagefiles.scan_images", interrupt)
    result = invoke("check-data", domains / "clean")
    assert result.exit_code == 130 and result.stderr == "\ninterrupted\n" and "Traceback" not in result.output


def run_patched(patch, *args):
    """The tfcyclegan command in a fresh Python that first runs `patch` (pointing a download
    origin at a file:// URL: no network)."""
    source = f"import sys\n{patch}\nfrom tfcyclegan_cli.main import main\nmain(sys.argv[1:], prog_name='tfcyclegan')\n"
    base = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", source, *args], capture_output=True, text=True, env=base)


def test_download_prints_only_the_path_on_stdout(tmp_path):
    # Keras' get_file printed "Downloading data from ..." on stdout, among the results.
    import hashlib
    import zipfile

    archive = tmp_path / "tiny.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for split in ("trainA", "trainB", "testA", "testB"):
            zf.writestr(f"tiny/{split}/0.png", b"")
    data = archive.read_bytes()
    patch = (
        "from tfcyclegan.data import datasets\n"
        f"datasets.ARCHIVES['tiny'] = datasets.Archive('tiny', 'ta', 'tb', {archive.as_uri()!r}, {len(data)}, "
        f"{hashlib.sha256(data).hexdigest()!r})"
    )
    result = run_patched(patch, "download", "tiny", "--data-root", str(tmp_path / "root"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{tmp_path / 'root' / 'tiny'}\n"
    assert f"Downloading data from {archive.as_uri()}" in result.stderr


def test_evaluate_prints_the_inception_download_on_stderr(tmp_path):
    import hashlib

    images(tmp_path / "A", 10)  # FID needs two held-out images per domain
    images(tmp_path / "B", 10)
    run_dir = write_untrained_run(tmp_path)
    weights = tmp_path / "not_weights.h5"
    weights.write_bytes(b"not an h5 file")
    (tmp_path / "keras").mkdir()  # Keras would take /tmp/.keras for a cache folder that does not exist
    patch = (
        "from tfcyclegan.quality import metrics\n"
        f"metrics.INCEPTION_URL = {weights.as_uri()!r}\n"
        f"metrics.INCEPTION_MD5 = {hashlib.md5(weights.read_bytes()).hexdigest()!r}\n"
        f"import os; os.environ['KERAS_HOME'] = {str(tmp_path / 'keras')!r}"
    )
    result = run_patched(patch, "evaluate", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert "Downloading data from" not in result.stdout and result.stdout.startswith(f"model {run_dir} ")
    assert f"Downloading data from {weights.as_uri()}" in result.stderr


def test_ctrl_c_while_tensorflow_loads_is_one_line_without_its_log(tmp_path):
    from helpers import default_sigint

    program = """
import builtins, os, sys
real = builtins.__import__
def interrupted(name, *args, **kwargs):
    if name == "tensorflow":
        os.write(2, b"I0000 captured start-up log of TensorFlow\\n")
        raise KeyboardInterrupt
    return real(name, *args, **kwargs)
builtins.__import__ = interrupted
os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
from tfcyclegan_cli.main import main
sys.argv = ["tfcyclegan", "check-data", sys.argv[1]]
main()
"""
    done = subprocess.run([sys.executable, "-c", program, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          preexec_fn=default_sigint)  # fmt: skip
    assert (done.returncode, done.stderr) == (130, "\ninterrupted\n")
