"""Shared fixtures."""

import errno
import os
from pathlib import Path

import pytest
from helpers import BAD, HUGE, build_corpus, noise, write_noise_run
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_datasets():
    """Path of the shared real-image datasets ($TFCYCLEGAN_SHARED_DATASETS, default <repo>/../shared/datasets).

    Skips when absent, except under CI, where a missing data set must fail rather than
    pass silently.
    """
    path = Path(os.environ.get("TFCYCLEGAN_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))
    if not path.is_dir():
        message = f"shared datasets not found at {path}; set TFCYCLEGAN_SHARED_DATASETS"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def bad_folder(tmp_path):
    for name, (content, _) in BAD.items():
        (tmp_path / name).write_bytes(content)
    return tmp_path


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory):
    """A valid 13500 x 13500 1-bit PNG: 22 kB on disk."""
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("1", HUGE, 1).save(path)
    return path


@pytest.fixture
def umask():
    """Set the process umask for one test; restored afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A tiny untrained run (ngf 8, 1 block) whose domains hold three 28 x 24 random images."""
    return write_noise_run(tmp_path_factory.mktemp("small"), 3, shape=(24, 28))


@pytest.fixture(scope="module")
def noise_run(tmp_path_factory):
    """A tiny untrained run (ngf 8, 1 block) whose domains hold four 36 x 36 random images."""
    return write_noise_run(tmp_path_factory.mktemp("cli"), 4)


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    root = tmp_path_factory.mktemp("robustness")
    build_corpus(root / "corpus")
    (root / "clean").mkdir()
    for i in range(3):
        noise(40, 40, 10 + i).save(root / "clean" / f"{i}.png")
    (root / "empty").mkdir()
    (root / "no images").mkdir()
    (root / "no images" / "readme.txt").write_text("the photos are elsewhere\n")
    return root


@pytest.fixture(scope="module")
def locked(domains):
    """corpus/locked.png refuses to be read. Tests run as root, where chmod 000 does not
    bite, so the read itself is refused."""
    path = domains / "corpus" / "locked.png"
    os_open = os.open

    def refuse(name, *args, **kwargs):
        if Path(name) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(name))
        return os_open(name, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "open", refuse)
        yield path


@pytest.fixture(scope="module")
def images(noise_run):
    """noise_run's domain A."""
    return noise_run.parent / "A"
