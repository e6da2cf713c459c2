"""`tfcyclegan export` (cli/export.py) end to end: results, one clear line for each kind of bad
input, and never a lost file: foreign or earlier exports kept, the umask followed, a full disk
leaving the earlier export in place."""

import errno
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from helpers import assert_one_line_error, assert_says, expected_modes, invoke, modes, one_line_error, tree

from tfcyclegan import export, inference
from tfcyclegan.models import publish

# --- 3, 23, 16. export targets, umask, full disk ---------------------------------------


def test_export_keeps_a_folder_with_someone_elses_metadata_json(small_run, tmp_path):
    target = tmp_path / "project"
    target.mkdir()
    (target / "metadata.json").write_text('{"author": "me"}')
    (target / "paper.tex").write_text("years of work")
    before = tree(tmp_path)
    message = one_line_error(invoke("export", small_run, "--output", target))
    assert_says(message, f"{target} exists", "not an earlier tfcyclegan SavedModel export", "choose another --output")
    assert tree(tmp_path) == before


@pytest.fixture(scope="module")
def earlier_export(small_run):
    """An untouched SavedModel export of the run, to copy where a test needs an earlier export."""
    return export.export(small_run, "savedmodel", output=small_run.parent / "earlier", log=print).path


def test_export_keeps_an_earlier_export_that_holds_a_user_file(small_run, earlier_export, tmp_path):
    target = tmp_path / "savedmodel"
    shutil.copytree(earlier_export, target)
    (target / "notes.txt").write_text("where this model came from")
    before = tree(tmp_path)
    message = one_line_error(invoke("export", small_run, "--output", target))
    assert_says(message, f"{target} holds files that tfcyclegan export did not write (notes.txt)", "move them away")
    assert tree(tmp_path) == before


def test_export_does_not_replace_an_export_of_another_kind(small_run, earlier_export, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(earlier_export, target)
    before = tree(tmp_path)
    message = one_line_error(invoke("export", small_run, "--format", "tflite", "--output", target))
    assert_says(message, f"{target} exists", "not an earlier tfcyclegan TFLite export (it is a SavedModel export)",
                "choose another --output")  # fmt: skip
    assert tree(tmp_path) == before


def test_export_replaces_an_earlier_export_of_the_same_kind(small_run, earlier_export, tmp_path):
    target = tmp_path / "savedmodel"
    shutil.copytree(earlier_export, target)
    old = json.loads((target / "metadata.json").read_text())
    old["exported"] = "earlier"
    (target / "metadata.json").write_text(json.dumps(old))
    result = invoke("export", small_run, "--output", target)
    assert result.exit_code == 0, result.output
    assert json.loads((target / "metadata.json").read_text())["exported"] != "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["savedmodel"]


@pytest.mark.parametrize("earlier", [False, True])
def test_export_into_the_current_folder(small_run, earlier_export, tmp_path, monkeypatch, earlier):
    here = tmp_path / "here"
    if earlier:
        shutil.copytree(earlier_export, here)
    else:
        here.mkdir()
        here.chmod(0o750)
    inode = here.stat().st_ino
    monkeypatch.chdir(here)
    result = invoke("export", small_run, "--output", ".")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"exported SavedModel to {here} (")
    assert sorted(p.name for p in here.iterdir()) == sorted(p.name for p in earlier_export.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]  # no stray ..old-* or staging folder
    assert inference.load_translator(here, "a2b").kind == "savedmodel"
    # The folder itself is kept (the shell in it is not left in a deleted folder), with its permissions.
    assert here.stat().st_ino == inode and (earlier or stat.S_IMODE(here.stat().st_mode) == 0o750)


def test_exports_follow_the_umask(small_run, tmp_path, umask):
    mask = 0o027  # group may read, others may not: neither tempfile's 0700 nor world-readable
    umask(mask)
    path = export.export(small_run, "savedmodel", output=tmp_path / "shared", log=print).path
    assert modes(path) == expected_modes(path, mask)


def assert_full_disk_keeps_the_earlier_export(small_run, target):
    """`export` into `target` (an earlier export) on a full disk: one line, and nothing beside it changed."""
    before = tree(target.parent)
    message = one_line_error(invoke("export", small_run, "--output", target))
    assert_says(message, f"cannot write the export into {target.parent}: No space left on device",
                f"the earlier export in {target} is intact", "free some disk space")  # fmt: skip
    assert tree(target.parent) == before


def test_disk_full_during_export_keeps_the_earlier_export(small_run, earlier_export, tmp_path, monkeypatch):
    target = tmp_path / "savedmodel"
    shutil.copytree(earlier_export, target)
    written = Path.write_text

    def full(self, *args, **kwargs):
        if self.name == "metadata.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return written(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    assert_full_disk_keeps_the_earlier_export(small_run, target)


def test_a_failed_swap_in_the_current_folder_puts_the_earlier_export_back(tmp_path, monkeypatch):
    work, staging = tmp_path / "here", tmp_path / ".here.tmp-x"
    for folder, content in ((work, b"old"), (staging, b"new")):
        folder.mkdir()
        (folder / "a2b.tflite").write_bytes(content)
        (folder / "metadata.json").write_bytes(content)
    monkeypatch.chdir(work)
    rename = os.rename

    def flaky(source, destination):
        if Path(source) == staging / "metadata.json":
            raise OSError(errno.EIO, "Input/output error")
        return rename(source, destination)

    monkeypatch.setattr(os, "rename", flaky)
    with pytest.raises(OSError):
        publish.swap_in(staging, work)
    assert tree(work) == {"a2b.tflite": b"old", "metadata.json": b"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".here.tmp-x", "here"]  # the caller removes its staging


@pytest.fixture
def tiny_disk(tmp_path):
    """A 600 KB tmpfs at tmp_path/disk (root only; skips elsewhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the monkeypatched disk-full test covers the logic")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_really_full_disk_during_export(small_run, earlier_export, tiny_disk):
    # The earlier export (about 470 KB) fits; a second copy beside it does not.
    target = tiny_disk / "model"
    shutil.copytree(earlier_export, target)
    assert_full_disk_keeps_the_earlier_export(small_run, target)


def test_a_really_full_disk_during_a_tflite_export(small_run, tiny_disk):
    (tiny_disk / "ballast").write_bytes(bytes(450_000))
    message = one_line_error(invoke("export", small_run, "--format", "tflite", "--output", tiny_disk / "tflite"))
    assert_says(message, f"cannot write the export into {tiny_disk}: No space left on device", "nothing was written",
                "free some disk space")  # fmt: skip
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["ballast"]


def test_export_then_translate_with_the_tflite_file(noise_run, images, tmp_path):
    result = invoke("export", noise_run, "--format", "tflite", "--output", tmp_path / "tflite")
    assert result.exit_code == 0, result.output
    # It said "exported TFLite (none)" for the float32 file.
    assert result.stdout.startswith(f"exported TFLite (float32) to {tmp_path / 'tflite'} (")
    assert "a2b: max abs error" in result.stderr and "ok" in result.stderr
    result = invoke(
        "translate",
        "--model",
        tmp_path / "tflite" / "a2b.tflite",
        "--direction",
        "a2b",
        images / "0.png",
        "--output",
        tmp_path / "out",
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "0.png").is_file()


def test_export_errors(noise_run, tmp_path):
    assert_one_line_error(
        invoke("export", noise_run, "--quantize", "int8"), "--quantize applies to --format tflite only", code=2
    )
    assert_one_line_error(
        invoke("export", noise_run, *["--calibration-dir", tmp_path] * 3), "give --calibration-dir once", code=2
    )
    result = invoke("export", noise_run, "--format", "onnx")
    assert result.exit_code == 2
    assert_one_line_error(
        invoke("export", tmp_path, "--output", tmp_path / "x"), f"{tmp_path} is not a model", "expected a run directory"
    )
