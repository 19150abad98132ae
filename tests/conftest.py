"""Shared fixtures: the real-data root (``MMSIM_DATA_ROOT``, default ``../shared/data``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def data_root_path() -> Path:
    """Return the data root: ``$MMSIM_DATA_ROOT`` or ``<repo>/../shared/data``."""
    env = os.environ.get("MMSIM_DATA_ROOT")
    root = Path(env) if env else Path(__file__).parents[1] / "../shared/data"
    return root.resolve()


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real exchange data folder; skips when missing, but fails under ``CI``."""
    root = data_root_path()
    if not root.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real data folder {root} is missing (CI is set; set MMSIM_DATA_ROOT)")
        pytest.skip(f"real data folder {root} is missing; set MMSIM_DATA_ROOT")
    return root
