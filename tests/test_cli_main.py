"""The command group (cli/main.py): what a command leaves on stderr in a real process off a
terminal (TensorFlow's C++ log only on request, progress as finished lines), and an
unexpected error or Ctrl-C as one line without a traceback."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_one_line_error, invoke, write_untrained_run
from PIL import Image

TFCYCLEGAN = str(Path(sys.executable).parent / "tfcyclegan")
# absl's notice before its logging starts, and glog-style lines: I0000 00:00:... port.cc:153] ...
TF_LOG = re.compile(r"absl::InitializeLog|^[IWEF]\d{4} ", re.MULTILINE)


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


@pytest.mark.parametrize("how", ["--debug", "TF_CPP_MIN_LOG_LEVEL=0"])
def test_tensorflow_log_shows_when_asked_for(tmp_path, how):
    folder = images(tmp_path / "a", 1)
    if how == "--debug":
        result = run("--debug", "check-data", str(folder))
    else:
        result = run("check-data", str(folder), TF_CPP_MIN_LOG_LEVEL="0")
    assert result.returncode == 0, result.stderr
    assert TF_LOG.search(result.stderr), result.stderr


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
