"""Fixtures of the fault tests that drive the console (the root conftest.py keeps what every
package's tests share)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def log_screen_rows():
    """An async function: what the console's log screen shows of a file's first rows."""
    return _log_screen_rows


async def _log_screen_rows(engine, path: Path, rows: int) -> list[str]:
    """Open `path` in the console's log screen (80-ish columns) and return what its first
    `rows` rows show, once that many lines are there (waiting on state, not a fixed pause)."""
    from halo_tui.app import HaloApp
    from halo_tui.components.logview import LogView
    from halo_tui.screens.log import LogScreen

    app = HaloApp(engine)
    async with app.run_test(size=(100, 20)) as pilot:
        await app.workers.wait_for_complete()
        app.push_screen(LogScreen(path, path.name))
        for _ in range(200):
            views = app.screen.query(LogView)
            if views and views.first().line_count >= rows:
                break
            await pilot.pause(0.05)
        view = app.screen.query_one(LogView)
        return ["".join(seg.text for seg in view.render_line(y)) for y in range(rows)]
