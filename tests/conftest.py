from __future__ import annotations

import logging
from pathlib import Path

import pytest

logging.getLogger("libp2p").setLevel(logging.CRITICAL)


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """The real Gemma 3 270M Q4_K_M file (assembled from its PyPI package once)."""
    from libp2pia import default_model_path

    return default_model_path()
