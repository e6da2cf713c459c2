"""docs/architecture.md matches the tree, and the packages keep their layering.

The document names every module of the library in backticks (`core/networks.py`, the
packages as `inference/`), so the tree and its description cannot drift apart unnoticed.
"""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "tfcyclegan"
DOC = REPO / "docs" / "architecture.md"

# Lowest first: a module may import its own package and those below it, never one above.
LAYERS = ("util", "core", "data", "runs", "models", "training", "inference", "quality", "export", "study")


def _modules():
    return {p.relative_to(LIBRARY).as_posix() for p in LIBRARY.rglob("*.py") if p.name != "__init__.py"}


def _named_in_doc():
    """The library modules the document names (not the command line's or the tests')."""
    named = set(re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.py)`", DOC.read_text()))
    return {name for name in named if not name.startswith(("cli/", "tests/"))}


def test_every_module_the_document_names_exists():
    assert sorted(_named_in_doc() - _modules()) == []
    commands = set(re.findall(r"`(cli/[a-z_]+\.py)`", DOC.read_text()))
    assert sorted(name for name in commands if not (REPO / name).is_file()) == []


def test_every_module_is_in_the_document():
    assert sorted(_modules() - _named_in_doc()) == []


def test_every_package_is_a_layer_of_the_document():
    packages = {p.name for p in LIBRARY.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(LAYERS)
    assert " < ".join(LAYERS) in DOC.read_text()


def _imported_packages(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfcyclegan"):
            dotted = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            dotted = [a.name for a in node.names]
        else:
            continue
        for name in dotted:
            parts = name.split(".")
            if parts[0] == "tfcyclegan" and len(parts) > 1 and parts[1] in LAYERS:
                yield node.lineno, parts[1]


def test_no_package_imports_one_above_it():
    upward = []
    for path in sorted(LIBRARY.rglob("*.py")):
        package = path.relative_to(LIBRARY).parts[0]
        if package not in LAYERS:
            continue  # the top-level facade (__init__.py) and version.py
        for line, imported in _imported_packages(path):
            if LAYERS.index(imported) > LAYERS.index(package):
                upward.append(f"{path.relative_to(REPO)}:{line} imports tfcyclegan.{imported}")
    assert upward == []


def test_the_library_never_imports_the_command_line():
    for path in LIBRARY.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            assert not any(name.split(".")[0] == "tfcyclegan_cli" for name in names), path
