"""The project installs the way the README says: as a wheel, and editable with a stock pip.

Each case builds in a copy of the source tree (so the working tree gets no build/ or
egg-info churn) and installs into a fresh `python -m venv` whose bundled pip is kept as
it is. The fresh environments get no TensorFlow, so `tfcyclegan --help` working there
also shows that the command's help does not import it. pip reaches the package registry
for the build backend (setuptools) and for click.
"""

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

_NOT_SOURCE_ANYWHERE = shutil.ignore_patterns("*.egg-info", "__pycache__", ".*_cache")
# Outputs and environments at the top of the checkout only: tfcyclegan/runs/ is a package.
_NOT_SOURCE_AT_TOP = {".git", ".venv", "runs", "saved_models", "studies", "build", "dist"}


def _not_source(folder, names):
    ignored = _NOT_SOURCE_ANYWHERE(folder, names)
    if Path(folder) == REPO:
        ignored |= _NOT_SOURCE_AT_TOP & set(names)
    return ignored


def _run(*command, cwd=None, quiet=False):
    """stdout of `command`, which must succeed; `quiet`: and print no Python warning (a
    setuptools BuildBackendWarning, a deprecation) on either stream."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    if quiet:
        # "Warning" as Python's categories spell it; pip's own "WARNING: ..." lines (this
        # machine's index configuration) are not the project's.
        assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result.stdout


def _source_copy(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=_not_source)
    return source


def _fresh_venv(path):
    venv.EnvBuilder(with_pip=True).create(path)
    return path / "bin"


def _assert_help_works(bin_dir):
    out = _run(bin_dir / "tfcyclegan", "--help")
    for command in ("fit", "translate", "export", "evaluate", "check-data", "download"):
        assert command in out
    assert _run(bin_dir / "python", "-c", "import importlib.util as u; print(u.find_spec('tensorflow'))") == "None\n"


def test_wheel_installs_with_click_only_and_ships_the_package_data(tmp_path):
    source = _source_copy(tmp_path)
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, source, quiet=True)
    (wheel,) = wheels.glob("tfcyclegan-*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())
    # Every module of the library, subpackages included, and of the command line.
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "tfcyclegan").rglob("*.py")}
    modules |= {f"tfcyclegan_cli/{p.name}" for p in (REPO / "cli").glob("*.py")}
    assert modules <= names, f"modules missing from the wheel: {sorted(modules - names)}"
    study_page = REPO / "tfcyclegan" / "study" / "page"
    data = {
        p.relative_to(REPO).as_posix()
        for p in study_page.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py"
    }
    assert data, f"no package data found under {study_page}"
    assert data <= names, f"package data missing from the wheel: {sorted(data - names)}"

    bin_dir = _fresh_venv(tmp_path / "env")
    _run(bin_dir / "pip", "install", "-q", "--no-deps", wheel)
    _run(bin_dir / "pip", "install", "-q", "click")
    _assert_help_works(bin_dir)


def test_editable_install_with_the_venvs_own_pip(tmp_path):
    # With setup.py alone and `wheel` installed, pip 23.2 fell back to `setup.py develop`,
    # which cannot map cli/ to tfcyclegan_cli: the command died with
    # "ModuleNotFoundError: No module named 'tfcyclegan_cli'". pyproject.toml makes pip
    # take the PEP 660 route whatever is installed.
    source = _source_copy(tmp_path)
    bin_dir = _fresh_venv(tmp_path / "env")
    _run(bin_dir / "pip", "install", "-q", "wheel", "click")
    _run(bin_dir / "pip", "install", "-q", "--no-deps", "-e", source)
    _assert_help_works(bin_dir)
    where = _run(bin_dir / "python", "-c", "import tfcyclegan_cli.main as m; print(m.__file__)")
    assert Path(where.strip()) == source / "cli" / "main.py"


def test_make_install_prints_no_warning(tmp_path):
    # setuptools said `project.license` as a TOML table is deprecated, that package
    # tfcyclegan.study_page was absent from the packages configuration, and announced its
    # editable strategy, each a BuildBackendWarning, on a user's first `make demo`.
    source = _source_copy(tmp_path)
    _run("make", "-C", source, "install", f"VENV={tmp_path / 'venv'}", quiet=True)
    where = _run(tmp_path / "venv" / "bin" / "python", "-c", "import tfcyclegan_cli.main as m; print(m.__file__)")
    assert Path(where.strip()) == source / "cli" / "main.py"
