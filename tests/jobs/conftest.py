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


@pytest.fixture(scope="session")
def inject_ws(mock_ws: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with the 3-brick mock survey, a small v4_sota manifest and cached coadds."""
    import shutil

    from jobs import coadds, manifest, select

    root = tmp_path_factory.mktemp("inject")
    shutil.copytree(mock_ws / "survey", root / "survey")
    (root / "halo.toml").write_text("[grids.grid_sota]\nn_total_per_split = 120\n")
    select.run(root, "v4_sota")
    manifest.run(root, "v4_sota", "grid_sota")
    coadds.run(root, "v4_sota", "grid_sota")
    return root


@pytest.fixture
def rice():
    """Compress an image as fpack does (astropy's RICE_1) and read it back: the decoded pixels
    and the lattice jobs.quantization reads from the compressed table."""
    import io

    import numpy as np
    from astropy.io import fits

    from jobs.quantization import TileLattice

    def compress(data: np.ndarray, method: int, tile: tuple[int, int] | None = None, seed: int = 4321):
        buf = io.BytesIO()
        hdu = fits.CompImageHDU(
            data=data, compression_type="RICE_1", quantize_method=method, dither_seed=seed, tile_shape=tile
        )
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
        buf.seek(0)
        decoded = np.asarray(fits.open(buf)[1].data)
        buf.seek(0)
        table = fits.open(buf, disable_image_compression=True)[1]
        return decoded, TileLattice.from_table(table.header, table.data)

    return compress


TRAIN_TOML = """
[grids.grid_sota]
n_total_per_split = 240

[presets.test_cpu]
arch = "small_cnn"
lr = 3e-3
weight_decay = 1e-4
batch_size = 32
epochs = 3
precision = "fp32"
augment = true
num_workers = 0
shuffle_buffer = 64
"""


@pytest.fixture(scope="session")
def stamps_ws(mock_ws: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with injected stamps (720 rows) and a tiny CPU training preset."""
    import shutil

    from jobs import coadds, inject, manifest, select

    root = tmp_path_factory.mktemp("stamps")
    shutil.copytree(mock_ws / "survey", root / "survey")
    shutil.copytree(mock_ws / "truth", root / "truth")
    shutil.copytree(mock_ws / "catalogs", root / "catalogs")
    (root / "halo.toml").write_text(TRAIN_TOML)
    select.run(root, "v4_sota")
    manifest.run(root, "v4_sota", "grid_sota")
    coadds.run(root, "v4_sota", "grid_sota")
    inject.run(root, "v4_sota", "grid_sota", workers=2, rows_per_part=200)
    return root
