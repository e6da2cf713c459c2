"""Issue #17, "Nothing lost, nothing hangs": tfcyclegan never deletes, overwrites or
trains on a file it did not create, and says so in one line when it refuses.

The demo data folder, translate's outputs and temporary files, export targets, and
archives already in the data root; plus a full disk during export and the umask.
"""

import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import invoke, one_line_error, write_noise_run
from PIL import Image

from tfcyclegan import export, inference
from tfcyclegan.data import datasets, demo
from tfcyclegan.data.datasets import ARCHIVES, Archive
from tfcyclegan.models import publish
from tfcyclegan.util.errors import UserError

SPLITS = ("trainA", "trainB", "testA", "testB")


def tree(folder):
    """{relative path: bytes, or None for a folder} of everything under `folder`, hidden entries too."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


@pytest.fixture
def umask():
    """Set the process umask for one test; restored afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


def modes(folder):
    """{relative path: permission bits} of `folder` itself ('.') and everything under it."""
    folder = Path(folder)
    return {
        ".": stat.S_IMODE(folder.stat().st_mode),
        **{p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*")},
    }


def expected_modes(folder, umask):
    return {name: (0o777 if (Path(folder) / name).is_dir() else 0o666) & ~umask for name in modes(folder)}


# --- 1. the demo folder -----------------------------------------------------------


def test_download_demo_keeps_a_demo_folder_it_did_not_write(tmp_path):
    (tmp_path / "demo" / "trainA").mkdir(parents=True)
    (tmp_path / "demo" / "notes.txt").write_text("my own data")
    Image.new("RGB", (8, 8)).save(tmp_path / "demo" / "trainA" / "horse.png")
    before = tree(tmp_path)
    message = one_line_error(invoke("download", "demo", "--data-root", tmp_path))
    assert message == (
        f"{tmp_path / 'demo'} exists and is not tfcyclegan's demo data (no demo COMPLETE marker); "
        "move it away, or use another --data-root (or TFCYCLEGAN_DATA)"
    )
    assert tree(tmp_path) == before  # nothing deleted, no staging folder left


def test_fit_on_demo_domains_keeps_a_demo_folder_it_did_not_write(tmp_path):
    (tmp_path / "data" / "demo").mkdir(parents=True)
    (tmp_path / "data" / "demo" / "thesis.tex").write_text("years of work")
    before = tree(tmp_path / "data")
    result = invoke(
        "fit",
        "--domain-a",
        "demo:flat",
        "--domain-b",
        "demo:striped",
        "--run-dir",
        tmp_path / "run",
        *("--ngf", 4, "--ndf", 4, "--blocks", 1, "--image-size", 16, "--load-size", 16),
        *("--epochs", 1, "--decay-epoch", 0, "--steps-per-epoch", 1),
        env={"TFCYCLEGAN_DATA": str(tmp_path / "data")},
    )
    assert "is not tfcyclegan's demo data" in one_line_error(result)
    assert tree(tmp_path / "data") == before


def test_a_demo_folder_of_ours_holding_a_user_file_is_neither_replaced_nor_used(tmp_path):
    root = Path(demo.ensure_demo_data(tmp_path, size=16, n_train=2, n_test=1))
    (root / "trainA" / "mine.png").write_bytes(b"user's image")
    (root / "README").write_text("user's notes")
    before = tree(tmp_path)
    # Other parameters: the folder would be remade (deleting the user's files); the same
    # parameters: the user's image would be trained on.
    for n_train in (3, 2):
        with pytest.raises(UserError) as info:
            demo.ensure_demo_data(tmp_path, size=16, n_train=n_train, n_test=1)
        assert str(info.value) == (
            f"{root} holds files that are not tfcyclegan's demo data (README, trainA/mine.png); "
            "move them away, or use another --data-root (or TFCYCLEGAN_DATA)"
        )
    assert tree(tmp_path) == before


@pytest.mark.parametrize("marker", ["", "my own COMPLETE file\n", "tfcyclegan demo v3 size=16 n_train=2"])
def test_a_foreign_complete_marker_is_not_ours(tmp_path, marker):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "COMPLETE").write_text(marker)
    with pytest.raises(UserError, match="is not tfcyclegan's demo data"):
        demo.ensure_demo_data(tmp_path, size=16, n_train=2, n_test=1)
    assert tree(tmp_path) == {"demo": None, "demo/COMPLETE": marker.encode()}


def test_a_demo_file_or_link_is_not_replaced(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "demo").write_text("a file")
    with pytest.raises(UserError, match=r"a/demo exists and is not tfcyclegan's demo data \(a file\)"):
        demo.ensure_demo_data(tmp_path / "a", size=16, n_train=2, n_test=1)
    elsewhere = Path(demo.ensure_demo_data(tmp_path / "b", size=16, n_train=2, n_test=1))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "demo").symlink_to(elsewhere)
    # A link to demo data of the wanted parameters is used as it is ...
    assert demo.ensure_demo_data(tmp_path / "c", size=16, n_train=2, n_test=1) == str(tmp_path / "c" / "demo")
    # ... but never replaced: the link is the user's.
    with pytest.raises(UserError, match=r"c/demo exists and is not tfcyclegan's demo data \(a symbolic link\)"):
        demo.ensure_demo_data(tmp_path / "c", size=16, n_train=3, n_test=1)
    assert (tmp_path / "c" / "demo").is_symlink() and len(list((elsewhere / "trainA").iterdir())) == 2


def test_demo_data_of_older_versions_is_still_replaced(tmp_path):
    root = Path(demo.ensure_demo_data(tmp_path, size=16, n_train=2, n_test=1))
    (root / "COMPLETE").write_text("tfcyclegan demo v1 size=16 n_train=2 n_test=1\n")
    demo.ensure_demo_data(tmp_path, size=16, n_train=2, n_test=1)
    assert (root / "COMPLETE").read_text().startswith("tfcyclegan demo v3 ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_demo_data_follows_the_umask(tmp_path, umask, mask):
    umask(mask)
    root = demo.ensure_demo_data(tmp_path, size=16, n_train=2, n_test=1)
    assert modes(root) == expected_modes(root, mask)


# --- 4. archives already in the data root -------------------------------------------


def serve(monkeypatch, tmp_path, name="tiny", url=None):
    """Register archive `name` as a local zip of the usual layout; returns (Archive, zip bytes)."""
    zip_path = tmp_path / "served" / f"{name}.zip"
    zip_path.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(zip_path, "w") as zf:
        for split in SPLITS:
            zf.writestr(f"{name}/{split}/0.png", b"img")
    content = zip_path.read_bytes()
    archive = Archive(
        name, "tinya", "tinyb", url or zip_path.as_uri(), len(content), hashlib.sha256(content).hexdigest()
    )
    monkeypatch.setitem(ARCHIVES, name, archive)
    return archive, content


@pytest.mark.parametrize("kind", ["partial", "foreign"])
def test_no_network_keeps_an_archive_already_there_and_says_so(monkeypatch, tmp_path, kind):
    archive, content = serve(monkeypatch, tmp_path, url=(tmp_path / "offline.zip").as_uri())
    root = tmp_path / "root"
    root.mkdir()
    existing = content[: len(content) // 2] if kind == "partial" else b"someone else's zip of the same name"
    (root / "tiny.zip").write_bytes(existing)
    with pytest.raises(UserError) as info:
        datasets.download_archive("tiny", root)
    message = str(info.value)
    assert message.startswith(f"could not download {archive.url}: ")
    assert (
        f"; {root / 'tiny.zip'} was already there but is not a complete copy (wrong size), so it was not used "
        "and is kept as it is. Download it by hand and unzip it into "
    ) in message
    assert "\n" not in message
    assert tree(root) == {"tiny.zip": existing}


def test_a_foreign_archive_is_kept_when_a_fresh_copy_is_downloaded(monkeypatch, tmp_path, capsys):
    serve(monkeypatch, tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    (root / "tiny.zip").write_bytes(b"x" * 10)
    assert datasets.download_archive("tiny", root) == str(root / "tiny")
    assert sorted(p.name for p in root.iterdir()) == ["tiny", "tiny.zip"]
    assert (root / "tiny.zip").read_bytes() == b"x" * 10
    assert (
        f"note: {root / 'tiny.zip'} is not a complete copy of tiny (wrong size); it is kept as it is, "
        "and a fresh copy was downloaded"
    ) in capsys.readouterr().err.splitlines()


def test_a_verified_archive_already_there_is_used_and_kept(monkeypatch, tmp_path, capsys):
    archive, content = serve(monkeypatch, tmp_path, url=(tmp_path / "offline.zip").as_uri())
    root = tmp_path / "root"
    root.mkdir()
    (root / "tiny.zip").write_bytes(content)
    assert datasets.download_archive("tiny", root) == str(root / "tiny")  # offline: no fetch needed
    assert sorted(p.name for p in root.iterdir()) == ["tiny", "tiny.zip"]
    assert sorted(p.name for p in (root / "tiny").iterdir()) == sorted(SPLITS)
    assert (
        f"note: unzipped {root / 'tiny.zip'}, which was already there (SHA-256 ok); it is kept, "
        "delete it if you no longer need it"
    ) in capsys.readouterr().err.splitlines()


def test_an_archive_of_the_right_size_but_other_bytes_is_kept(monkeypatch, tmp_path):
    archive, content = serve(monkeypatch, tmp_path, url=(tmp_path / "offline.zip").as_uri())
    root = tmp_path / "root"
    root.mkdir()
    (root / "tiny.zip").write_bytes(bytes(len(content)))
    with pytest.raises(UserError, match=r"is not a complete copy \(SHA-256 mismatch\), so it was not used and is kept"):
        datasets.download_archive("tiny", root)
    assert (root / "tiny.zip").read_bytes() == bytes(len(content))


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_extracted_archives_follow_the_umask(monkeypatch, tmp_path, umask, mask):
    archive, content = serve(monkeypatch, tmp_path)
    # An archive whose members sit at the top (no <name>/ folder): the staging folder itself is kept.
    with zipfile.ZipFile(tmp_path / "served" / "tiny.zip", "w") as zf:
        for split in SPLITS:
            zf.writestr(f"{split}/0.png", b"img")
    content = (tmp_path / "served" / "tiny.zip").read_bytes()
    monkeypatch.setitem(
        ARCHIVES, "tiny", Archive("tiny", "a", "b", archive.url, len(content), hashlib.sha256(content).hexdigest())
    )
    umask(mask)
    folder = datasets.download_archive("tiny", tmp_path / "root")
    assert modes(folder)["."] == 0o777 & ~mask


# --- translate ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny untrained run (ngf 8, 1 block) whose domains are folders of random images."""
    return write_noise_run(tmp_path_factory.mktemp("loss"), 3, shape=(24, 28))


@pytest.fixture
def photos(tmp_path, run_dir):
    """tmp_path/photos: three images of the run's domain A."""
    shutil.copytree(run_dir.parent / "A", tmp_path / "photos")
    return tmp_path / "photos"


def translate(run_dir, *args):
    return invoke("translate", "--model", run_dir, "--direction", "a2b", *args)


@pytest.mark.parametrize("how", ["symlink", "dotdot"])
def test_an_output_that_resolves_to_the_input_folder_is_refused(run_dir, photos, tmp_path, how):
    if how == "symlink":
        output = tmp_path / "link"
        output.symlink_to(photos)
    else:
        (photos / "sub").mkdir()
        output = photos / "sub" / ".."
    before = tree(photos)
    message = one_line_error(translate(run_dir, photos, "--output", output))
    assert message == f"{output / '0.png'} would overwrite its input {photos / '0.png'}; choose another --output folder"
    assert tree(photos) == before


def test_an_output_link_into_the_inputs_is_refused_for_single_files(run_dir, photos, tmp_path):
    (tmp_path / "out").symlink_to(photos)
    before = tree(photos)
    message = one_line_error(translate(run_dir, photos / "1.png", "--output", tmp_path / "out"))
    assert "would overwrite its input" in message
    assert tree(photos) == before


def test_existing_outputs_are_kept_unless_overwrite(run_dir, photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "1.png").write_bytes(b"an image the user made")
    result = translate(run_dir, photos, "--output", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"translated 2 images into {out}\n"
    assert result.stderr.splitlines()[-1] == (
        f"skipped 1 of 3 inputs: their output already exists in {out}; pass --overwrite to replace them"
    )
    assert (out / "1.png").read_bytes() == b"an image the user made"
    first = tree(out)
    result = translate(run_dir, photos, "--output", out)  # a second run: nothing to do, nothing touched
    assert result.exit_code == 0 and result.stdout == f"translated 0 images into {out}\n"
    assert "skipped 3 of 3 inputs: their output already exists" in result.stderr
    assert tree(out) == first
    result = translate(run_dir, photos, "--output", out, "--overwrite")
    assert result.exit_code == 0 and result.stdout == f"translated 3 images into {out}\n"
    assert "already exists" not in result.stderr
    assert Image.open(out / "1.png").size == (28, 24)


def test_a_second_run_into_a_nested_output_does_not_translate_its_own_outputs(run_dir, photos):
    result = translate(run_dir, photos, "-o", photos / "out")
    assert result.exit_code == 0 and result.stdout == f"translated 3 images into {photos / 'out'}\n"
    result = translate(run_dir, photos, "-o", photos / "out", "--overwrite")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"translated 3 images into {photos / 'out'}\n"
    assert sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*")) == [
        "0.png", "1.png", "2.png", "out", "out/0.png", "out/1.png", "out/2.png",
    ]  # fmt: skip
    # An output folder reached through a link is recognised too.
    (photos / "link").symlink_to(photos / "out")
    result = translate(run_dir, photos, "-o", photos / "link", "--overwrite")
    assert result.exit_code == 0 and result.stdout == f"translated 3 images into {photos / 'link'}\n"


def test_inputs_inside_the_output_folder_are_refused(run_dir, photos, tmp_path):
    message = one_line_error(translate(run_dir, photos, "--output", tmp_path, "--format", "jpg"))
    assert message == (
        f"input {photos} is inside the --output folder {tmp_path}, so earlier outputs would be taken as inputs; "
        "choose an --output folder outside the inputs"
    )
    assert not list(tmp_path.rglob("*.jpg"))


def test_translate_into_an_existing_file_fails_before_any_work(run_dir, photos, tmp_path, monkeypatch):
    (tmp_path / "out.png").write_bytes(b"not a folder")

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the --output check")

    monkeypatch.setattr(inference, "load_translator", no_model)
    for output in (tmp_path / "out.png", tmp_path / "out.png" / "below"):
        message = one_line_error(translate(run_dir, photos, "--output", output))
        assert message == (
            f"--output {output}: {tmp_path / 'out.png'} is a file, not a folder; give a folder for the translated images"
        )
    assert (tmp_path / "out.png").read_bytes() == b"not a folder"


@pytest.fixture(scope="module")
def translator(run_dir):
    return inference.load_translator(run_dir, "a2b")


def test_temporary_names_are_unique_and_never_another_runs(translator, photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # What the other run writing into the same folder has in progress, under the name the old code used.
    (out / ".0.png.part").write_bytes(b"another run's half-written image")
    report = inference.translate_files(translator, [photos], out, log=print)
    assert len(report.written) == 3
    assert (out / ".0.png.part").read_bytes() == b"another run's half-written image"
    assert sorted(p.name for p in out.iterdir()) == [".0.png.part", "0.png", "1.png", "2.png"]


@pytest.mark.slow
def test_two_runs_into_one_folder_at_once(run_dir, photos, tmp_path):
    out = tmp_path / "out"
    for i in range(17):
        shutil.copy(photos / "0.png", photos / f"copy{i}.png")
    command = [str(Path(sys.executable).parent / "tfcyclegan"), "translate", "--model", str(run_dir),
               "--direction", "a2b", str(photos), "-o", str(out), "--batch-size", "1"]  # fmt: skip
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in runs]
    for code, _, err in results:
        assert code == 0, err[-2000:]
    # Between them every image once: none lost to a shared temporary name, none written twice.
    assert sum(int(stdout.split()[1]) for _, stdout, _ in results) == 20
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in photos.iterdir())
    assert all(Image.open(p).size == (28, 24) for p in out.iterdir())


def test_a_failed_write_removes_its_temporary_file(translator, photos, tmp_path, monkeypatch):
    def full(self, fp, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(UserError) as info:
        inference.translate_files(translator, [photos / "0.png"], tmp_path / "out", log=print)
    assert (
        str(info.value)
        == f"cannot write {tmp_path / 'out' / '0.png'}: No space left on device; check the --output folder"
    )
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_translated_images_follow_the_umask(translator, photos, tmp_path, umask, mask):
    umask(mask)
    inference.translate_files(translator, [photos], tmp_path / "out", log=print)
    assert modes(tmp_path / "out") == expected_modes(tmp_path / "out", mask)


# --- 3, 23, 16. export targets, umask, full disk ---------------------------------------


def test_export_keeps_a_folder_with_someone_elses_metadata_json(run_dir, tmp_path):
    target = tmp_path / "project"
    target.mkdir()
    (target / "metadata.json").write_text('{"author": "me"}')
    (target / "paper.tex").write_text("years of work")
    before = tree(tmp_path)
    message = one_line_error(invoke("export", run_dir, "--output", target))
    assert message == (
        f"{target} exists and is not an earlier tfcyclegan SavedModel export (its metadata.json says otherwise); "
        "choose another --output or move it away"
    )
    assert tree(tmp_path) == before


@pytest.fixture(scope="module")
def earlier_export(run_dir):
    """An untouched SavedModel export of the run, to copy where a test needs an earlier export."""
    return export.export(run_dir, "savedmodel", output=run_dir.parent / "earlier", log=print).path


def test_export_keeps_an_earlier_export_that_holds_a_user_file(run_dir, earlier_export, tmp_path):
    target = tmp_path / "savedmodel"
    shutil.copytree(earlier_export, target)
    (target / "notes.txt").write_text("where this model came from")
    before = tree(tmp_path)
    message = one_line_error(invoke("export", run_dir, "--output", target))
    assert message == (
        f"{target} holds files that tfcyclegan export did not write (notes.txt); move them away or choose another --output"
    )
    assert tree(tmp_path) == before


def test_export_does_not_replace_an_export_of_another_kind(run_dir, earlier_export, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(earlier_export, target)
    before = tree(tmp_path)
    message = one_line_error(invoke("export", run_dir, "--format", "tflite", "--output", target))
    assert message == (
        f"{target} exists and is not an earlier tfcyclegan TFLite export (it is a SavedModel export); "
        "choose another --output or move it away"
    )
    assert tree(tmp_path) == before


def test_export_replaces_an_earlier_export_of_the_same_kind(run_dir, earlier_export, tmp_path):
    target = tmp_path / "savedmodel"
    shutil.copytree(earlier_export, target)
    old = json.loads((target / "metadata.json").read_text())
    old["exported"] = "earlier"
    (target / "metadata.json").write_text(json.dumps(old))
    result = invoke("export", run_dir, "--output", target)
    assert result.exit_code == 0, result.output
    assert json.loads((target / "metadata.json").read_text())["exported"] != "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["savedmodel"]


@pytest.mark.parametrize("earlier", [False, True])
def test_export_into_the_current_folder(run_dir, earlier_export, tmp_path, monkeypatch, earlier):
    here = tmp_path / "here"
    if earlier:
        shutil.copytree(earlier_export, here)
    else:
        here.mkdir()
        here.chmod(0o750)
    inode = here.stat().st_ino
    monkeypatch.chdir(here)
    result = invoke("export", run_dir, "--output", ".")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"exported SavedModel to {here} (")
    assert sorted(p.name for p in here.iterdir()) == sorted(p.name for p in earlier_export.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]  # no stray ..old-* or staging folder
    assert inference.load_translator(here, "a2b").kind == "savedmodel"
    # The folder itself is kept (the shell in it is not left in a deleted folder), with its permissions.
    assert here.stat().st_ino == inode and (earlier or stat.S_IMODE(here.stat().st_mode) == 0o750)


def test_exports_follow_the_umask(run_dir, tmp_path, umask):
    mask = 0o027  # group may read, others may not: neither tempfile's 0700 nor world-readable
    umask(mask)
    path = export.export(run_dir, "savedmodel", output=tmp_path / "shared", log=print).path
    assert modes(path) == expected_modes(path, mask)


def assert_full_disk_keeps_the_earlier_export(run_dir, target):
    """`export` into `target` (an earlier export) on a full disk: one line, and nothing beside it changed."""
    before = tree(target.parent)
    message = one_line_error(invoke("export", run_dir, "--output", target))
    assert message == (
        f"cannot write the export into {target.parent}: No space left on device; nothing was written and the "
        f"earlier export in {target} is intact; free some disk space or choose another --output"
    )
    assert tree(target.parent) == before


def test_disk_full_during_export_keeps_the_earlier_export(run_dir, earlier_export, tmp_path, monkeypatch):
    target = tmp_path / "savedmodel"
    shutil.copytree(earlier_export, target)
    written = Path.write_text

    def full(self, *args, **kwargs):
        if self.name == "metadata.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return written(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    assert_full_disk_keeps_the_earlier_export(run_dir, target)


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


def test_a_really_full_disk_during_export(run_dir, earlier_export, tiny_disk):
    # The earlier export (about 470 KB) fits; a second copy beside it does not.
    target = tiny_disk / "model"
    shutil.copytree(earlier_export, target)
    assert_full_disk_keeps_the_earlier_export(run_dir, target)


def test_a_really_full_disk_during_a_tflite_export(run_dir, tiny_disk):
    (tiny_disk / "ballast").write_bytes(bytes(450_000))
    message = one_line_error(invoke("export", run_dir, "--format", "tflite", "--output", tiny_disk / "tflite"))
    assert message == (
        f"cannot write the export into {tiny_disk}: No space left on device; nothing was written; "
        "free some disk space or choose another --output"
    )
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["ballast"]
