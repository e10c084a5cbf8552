"""The console's tests: a truecolor terminal whatever the machine's TERM and COLORTERM (what
a screen draws depends on the terminal's colours, core.colour.neutral_sky, and the snapshots
must not), and candidates files as `score` writes them."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.stamps import arrow_metadata


@pytest.fixture(autouse=True)
def truecolor_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLORTERM", "truecolor")


def _write_candidates(path: Path, n: int, **extra: list) -> Path:
    """A candidates parquet as the score stage writes it, with `extra` columns."""
    rng = np.random.default_rng(3)
    table = pa.table(
        {
            "rank": np.arange(1, n + 1),
            "brickname": ["1499p022"] * n,
            "objid": np.arange(n),
            "ra": np.linspace(150, 151, n),
            "dec": np.full(n, 2.0),
            "split": ["test"] * n,
            "psfsize_r": np.full(n, 1.2),
            "score": np.linspace(1, 0, n),
            "run": ["demo"] * n,
            "ok": [True] * n,
            "fail_reason": [None] * n,
            **extra,
            "stamp": [rng.normal(0, 0.05, (3, 64, 64)).astype(np.float32).tobytes() for _ in range(n)],
        }
    ).replace_schema_metadata(arrow_metadata((3, 64, 64)))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=8)
    return path


@pytest.fixture
def make_candidates() -> Callable[..., Path]:
    """`make(path, n, **extra_columns)`: a candidates file of `n` ranked stamps."""
    return _write_candidates


@pytest.fixture
def candidates(tmp_path: Path, make_candidates) -> Path:
    return make_candidates(tmp_path / "candidates.parquet", 30)
