"""The console's tests see a truecolor terminal, whatever the machine's TERM and COLORTERM:
what a screen draws depends on the terminal's colours (core.colour.neutral_sky), and the
snapshots must not."""

import pytest


@pytest.fixture(autouse=True)
def truecolor_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLORTERM", "truecolor")
