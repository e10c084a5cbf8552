"""Mock surveys shared by the stage tests (made once per session: rendering takes seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.mock_survey import MockConfig, run

SMALL = MockConfig(bricks=3, seed=7, brick_px=400)


@pytest.fixture(scope="session")
def mock_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with a 3-brick mock survey, images included."""
    root = tmp_path_factory.mktemp("mock")
    run(SMALL, root)
    return root


@pytest.fixture(scope="session")
def big_catalog_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Catalogues only, with well over 2,000 LRGs passing the cuts."""
    root = tmp_path_factory.mktemp("bigcat")
    run(MockConfig(bricks=16, seed=3, images=False, lrgs_per_brick=200), root)
    (root / "halo.toml").write_text("[grids.grid_sota]\nn_total_per_split = 6000\n")
    return root
