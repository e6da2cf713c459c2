"""Shared fixtures."""

import os
from pathlib import Path

import pytest

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
