"""The checkout's .gitignore keeps what the commands write in the current folder out of git."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout")
def test_command_outputs_are_ignored_and_sources_are_not():
    # studies/ (`tfcyclegan study`'s default) was missing: a study's answers showed as untracked files.
    outputs = ["runs/demo/config.json", "saved_models/demo/savedmodel/saved_model.pb", "studies/demo/answers.jsonl"]
    sources = ["tfcyclegan/runs/rundir.py", "saved_models/README.md", "tfcyclegan/study/server.py"]
    result = subprocess.run(["git", "check-ignore", "--no-index", *outputs, *sources], cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert result.stdout.splitlines() == outputs
