"""Named Berkeley pairs and folders resolved to domains, and downloads (size, SHA-256, archive
member paths, archives already in the data root kept) from local file:// archives."""

import hashlib
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import modes, tree
from PIL import Image
from tfcyclegan_cli.download import download

from tfcyclegan.data import datasets
from tfcyclegan.data.datasets import ARCHIVES, Archive, UserError, download_archive, resolve_domains

SPLITS = ("trainA", "trainB", "testA", "testB")


def make_images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (4, 4)).save(folder / name)


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    """Every Berkeley archive, already extracted, with 2 tiny images per split named after it."""
    root = tmp_path_factory.mktemp("data")
    for name in ARCHIVES:
        for split in SPLITS:
            make_images(root / name / split, [f"{split}-{i}.png" for i in range(2)])
    return root


def split_of(files):
    (split,) = {Path(f).parent.name for f in files}
    return split


@pytest.mark.parametrize("archive", sorted(ARCHIVES))
@pytest.mark.parametrize("swap", [False, True])
def test_every_named_pair_resolves_in_both_orders(fake_root, archive, swap):
    info = ARCHIVES[archive]
    a, b = (info.domain_b, info.domain_a) if swap else (info.domain_a, info.domain_b)
    domain_a, domain_b = resolve_domains(a, b.upper(), data_root=fake_root, download=False)
    assert (domain_a.name, domain_b.name) == (a, b)
    assert split_of(domain_a.train_files) == ("trainB" if swap else "trainA")
    assert split_of(domain_b.train_files) == ("trainA" if swap else "trainB")
    assert split_of(domain_a.test_files) == ("testB" if swap else "testA")
    assert domain_a.root == domain_b.root == str(fake_root / archive)


def test_real_named_pair_swapped(shared_datasets):
    photos, ukiyoe = resolve_domains("photos", "ukiyoe", data_root=shared_datasets, download=False)
    assert (len(photos.train_files), len(photos.test_files)) == (370, 80)
    assert (len(ukiyoe.train_files), len(ukiyoe.test_files)) == (562, 100)
    assert all("/ukiyoe2photo/trainB/" in f for f in photos.train_files)


@pytest.mark.parametrize(
    "a, b, words",
    [
        ("horses", "ukiyoe", "no dataset pairs horses with ukiyoe; named pairs (either order): apples/oranges"),
        ("photos", "photos", "no dataset pairs photos with photos"),
        ("zebra", "horses", "'zebra' is neither an existing folder nor a named domain"),
        ("demo:zebras", "demo:flat", "unknown demo domain 'demo:zebras'; use demo:flat or demo:striped"),
    ],
)
def test_wrong_names_and_impossible_pairs(fake_root, a, b, words):
    with pytest.raises(UserError) as info:
        resolve_domains(a, b, data_root=fake_root, download=False)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_name_next_to_a_folder(fake_root, tmp_path):
    make_images(tmp_path / "mine", ["x.png"])
    mine, ukiyoe = resolve_domains(tmp_path / "mine", "ukiyoe", data_root=fake_root, download=False)
    assert mine.train_files == [str(tmp_path / "mine" / "x.png")] and mine.test_files == []
    assert split_of(ukiyoe.train_files) == "trainA"
    with pytest.raises(UserError, match=r"photos is in several datasets \(cezanne2photo, monet2photo, ukiyoe2photo"):
        resolve_domains(tmp_path / "mine", "photos", data_root=fake_root, download=False)


def test_folder_with_train_and_test_splits(tmp_path):
    make_images(tmp_path / "a" / "train" / "deep", ["1.png", "2.png"])
    make_images(tmp_path / "a" / "test", ["3.png"])
    make_images(tmp_path / "b", ["4.png"])
    a, b = resolve_domains(str(tmp_path / "a"), str(tmp_path / "b"), data_root=tmp_path / "unused")
    assert [Path(f).name for f in a.train_files] == ["1.png", "2.png"]
    assert [Path(f).name for f in a.test_files] == ["3.png"]
    assert (a.name, a.root, b.test_files) == ("a", str(tmp_path / "a"), [])


def test_same_folder_twice_warns(tmp_path, capsys):
    make_images(tmp_path / "a", ["1.png"])
    a, b = resolve_domains(tmp_path / "a", str(tmp_path / "a") + "/", data_root=tmp_path)
    assert a.train_files == b.train_files
    assert "warning: domains A and B are the same images" in capsys.readouterr().err


def test_demo_domains(tmp_path):
    striped, flat = resolve_domains("demo:striped", "demo:flat", data_root=tmp_path)
    assert (split_of(striped.train_files), split_of(flat.train_files)) == ("trainB", "trainA")
    assert (len(flat.train_files), len(flat.test_files)) == (200, 50)
    assert flat.root == str(tmp_path / "demo")


def test_missing_archive_without_download(tmp_path):
    with pytest.raises(UserError) as info:
        resolve_domains("horses", "zebras", data_root=tmp_path, download=False)
    message = str(info.value)
    assert f"{tmp_path / 'horse2zebra'} not found and downloading is off" in message
    assert "tfcyclegan download horse2zebra" in message and ARCHIVES["horse2zebra"].url in message


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.delenv("TFCYCLEGAN_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert datasets.default_data_root() == tmp_path / "keras" / "datasets"
    monkeypatch.setenv("TFCYCLEGAN_DATA", str(tmp_path / "mine"))
    assert datasets.default_data_root() == tmp_path / "mine"


def test_checksum_table_matches_the_published_list(shared_datasets):
    rows = (shared_datasets / "berkeley_checksums.tsv").read_text().split("\n")[1:]
    published = {line.split("\t")[0]: line.split("\t")[1:] for line in rows if line}
    assert {a.url: [str(a.size), a.sha256] for a in ARCHIVES.values()} == published


# --- download_archive, offline: archives served from file:// URLs -------------------


def serve(monkeypatch, tmp_path, members, name="tiny", sha256=None, size=None):
    """Register archive `name` as a local zip holding `members` (path -> bytes)."""
    zip_path = tmp_path / "served" / f"{name}.zip"
    zip_path.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(zip_path, "w") as zf:
        for member, content in members.items():
            zf.writestr(member, content)
    content = zip_path.read_bytes()
    archive = Archive(
        name, "tinya", "tinyb", zip_path.as_uri(), size or len(content), sha256 or hashlib.sha256(content).hexdigest()
    )
    monkeypatch.setitem(ARCHIVES, name, archive)
    return archive


def layout(name="tiny"):
    return {f"{name}/{split}/{i}.png": b"img" for split in SPLITS for i in range(2)}


def test_download_extracts_verified_archive(monkeypatch, tmp_path):
    serve(monkeypatch, tmp_path, layout())
    root = tmp_path / "root"
    assert download_archive("tiny", root) == str(root / "tiny")
    assert sorted(p.name for p in (root / "tiny").iterdir()) == sorted(SPLITS)
    assert sorted(p.name for p in root.iterdir()) == ["tiny"]  # zip and staging folders gone
    monkeypatch.setitem(ARCHIVES, "tiny", Archive("tiny", "a", "b", "file:///nowhere.zip", 1, "0" * 64))
    assert download_archive("tiny", root) == str(root / "tiny")  # present: no fetch


def test_download_refuses_checksum_mismatch(monkeypatch, tmp_path):
    serve(monkeypatch, tmp_path, layout(), sha256="0" * 64)
    root = tmp_path / "root"
    with pytest.raises(UserError, match=r"arrived damaged \(SHA-256 mismatch\) and was deleted; try again"):
        download_archive("tiny", root)
    assert list(root.iterdir()) == []


def test_download_refuses_wrong_size(monkeypatch, tmp_path):
    serve(monkeypatch, tmp_path, layout(), size=12345)
    root = tmp_path / "root"
    with pytest.raises(UserError, match="arrived with the wrong size and was deleted"):
        download_archive("tiny", root)
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("evil", ["tiny/../../escaped.png", "/tmp/escaped.png", "tiny\\..\\..\\escaped.png"])
def test_download_refuses_members_outside_the_folder(monkeypatch, tmp_path, evil):
    serve(monkeypatch, tmp_path, {**layout(), evil: b"x"})
    root = tmp_path / "a" / "b" / "root"
    with pytest.raises(UserError, match="holds a file outside its folder"):
        download_archive("tiny", root)
    assert not (root / "tiny").exists()
    assert not list(tmp_path.rglob("escaped.png"))


def test_download_without_network_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setitem(ARCHIVES, "tiny", Archive("tiny", "a", "b", (tmp_path / "absent.zip").as_uri(), 1, "0" * 64))
    with pytest.raises(UserError) as info:
        download_archive("tiny", tmp_path / "root")
    message = str(info.value)
    assert message.startswith(f"could not download {(tmp_path / 'absent.zip').as_uri()}: ")
    assert message.endswith(
        f"Download it by hand and unzip it into {tmp_path / 'root' / 'tiny'}/ (trainA, trainB, testA, testB)"
    )


def test_download_refuses_bad_layout_and_unknown_names(monkeypatch, tmp_path):
    serve(monkeypatch, tmp_path, {"tiny/trainA/1.png": b"x"})
    with pytest.raises(UserError, match="lacks trainA/trainB/testA/testB"):
        download_archive("tiny", tmp_path / "root")
    with pytest.raises(UserError, match="unknown dataset 'nope'; known: apple2orange"):
        download_archive("nope", tmp_path / "root")


def test_resolve_downloads_a_missing_archive(monkeypatch, tmp_path):
    archive = serve(monkeypatch, tmp_path, layout("tiny"))
    monkeypatch.setattr(datasets, "DOMAIN_NAMES", [*datasets.DOMAIN_NAMES, archive.domain_a, archive.domain_b])
    b, a = resolve_domains("tinyb", "tinya", data_root=tmp_path / "root")
    assert (split_of(b.train_files), split_of(a.train_files)) == ("trainB", "trainA")


# --- tfcyclegan download ----------------------------------------------------------


def test_cli_download(monkeypatch, tmp_path):
    archive = serve(monkeypatch, tmp_path, layout())
    runner = CliRunner()
    result = runner.invoke(download, ["tiny", "--data-root", str(tmp_path / "root")])
    assert result.exit_code == 0 and result.output.strip().endswith(str(tmp_path / "root" / "tiny"))
    monkeypatch.setitem(
        ARCHIVES,
        "horse2zebra",
        Archive("horse2zebra", "horses", "zebras", (tmp_path / "x.zip").as_uri(), 1, archive.sha256),
    )
    result = runner.invoke(download, ["zebras", "horses", "--data-root", str(tmp_path / "root")])
    assert result.exit_code == 1 and "error: could not download" in result.output
    result = runner.invoke(download, ["horses", "ukiyoe"])
    assert result.exit_code == 1 and "error: no dataset pairs horses with ukiyoe" in result.output
    assert runner.invoke(download, ["a", "b", "c"]).exit_code == 2
    result = runner.invoke(download, ["demo", "--data-root", str(tmp_path / "root")])
    assert result.exit_code == 0 and (tmp_path / "root" / "demo" / "testB").is_dir()


# --- 4. archives already in the data root -------------------------------------------


def serve_usual_layout(monkeypatch, tmp_path, name="tiny", url=None):
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
    archive, content = serve_usual_layout(monkeypatch, tmp_path, url=(tmp_path / "offline.zip").as_uri())
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
    serve_usual_layout(monkeypatch, tmp_path)
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
    archive, content = serve_usual_layout(monkeypatch, tmp_path, url=(tmp_path / "offline.zip").as_uri())
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
    archive, content = serve_usual_layout(monkeypatch, tmp_path, url=(tmp_path / "offline.zip").as_uri())
    root = tmp_path / "root"
    root.mkdir()
    (root / "tiny.zip").write_bytes(bytes(len(content)))
    with pytest.raises(UserError, match=r"is not a complete copy \(SHA-256 mismatch\), so it was not used and is kept"):
        datasets.download_archive("tiny", root)
    assert (root / "tiny.zip").read_bytes() == bytes(len(content))


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_extracted_archives_follow_the_umask(monkeypatch, tmp_path, umask, mask):
    archive, content = serve_usual_layout(monkeypatch, tmp_path)
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


def test_a_data_root_that_is_a_file_says_so(tmp_path):
    from helpers import assert_one_line_error, invoke

    file = tmp_path / "data"
    file.write_text("not a folder")
    message = (
        f"TFCYCLEGAN_DATA={file} is a regular file, not a folder; set it to a folder for the datasets (made if missing)"
    )
    env = {"TFCYCLEGAN_DATA": str(file)}
    assert_one_line_error(invoke("fit", "--domain-a", "demo:flat", "--domain-b", "demo:striped", "--run-dir",
                                 tmp_path / "run", env=env), message)  # fmt: skip
    assert_one_line_error(invoke("download", "demo", env=env), message)
    assert_one_line_error(
        invoke("fit", "--domain-a", "demo:flat", "--domain-b", "demo:striped", "--data-root", file),
        f"--data-root {file} is a regular file, not a folder; give a folder for the datasets (made if missing)",
    )
    assert not (tmp_path / "run").exists()
