"""The console's tests: a truecolor terminal whatever the machine's TERM and COLORTERM (what
a screen draws depends on the terminal's colours, core.colour.neutral_sky, and the snapshots
must not), and a candidates file (tests/conftest.py's make_candidates)."""

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def truecolor_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLORTERM", "truecolor")


@pytest.fixture
def candidates(tmp_path: Path, make_candidates) -> Path:
    return make_candidates(tmp_path / "candidates.parquet", 30)
