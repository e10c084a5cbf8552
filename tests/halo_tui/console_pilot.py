"""What the console's Pilot tests share: waiting on state (never on a fixed sleep), opening the
candidates screen and the launch form."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any


async def until(pilot: Any, condition: Any, timeout: float = 10.0) -> None:
    """Wait for what the console does on its own timers (slow machines take longer)."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    assert condition()


async def settle(app: Any, pilot: Any) -> None:
    """Every worker done, and one more turn of the loop to show what they posted."""
    await app.workers.wait_for_complete()
    await pilot.pause(0.05)


async def open_candidates(app: Any, pilot: Any, path: Path) -> Any:
    """The candidates screen of run `demo` over `path`, once its first stamps show."""
    from halo_tui.components.stamp_tile import StampTile
    from halo_tui.screens.candidates import CandidatesScreen

    app.push_screen(CandidatesScreen(path, "demo"))
    await until(pilot, lambda: isinstance(app.screen, CandidatesScreen) and app.screen.query(StampTile))
    await settle(app, pilot)
    return app.screen


@contextlib.asynccontextmanager
async def grading(engine: Any, path: Path, **run_test: Any) -> AsyncIterator[tuple[Any, Any, Any]]:
    """The console (`run_test`'s size and options) on the candidates screen of run `demo` over
    `path`: (app, pilot, screen)."""
    from halo_tui.app import HaloApp

    app = HaloApp(engine)
    async with app.run_test(**run_test) as pilot:
        await settle(app, pilot)
        yield app, pilot, await open_candidates(app, pilot, path)


async def open_launch(app: Any, pilot: Any, stage: str) -> Any:
    """The launch form (`n` on Jobs) with `stage` chosen; its options box."""
    from textual.widgets import Input

    from halo_tui.screens.launch import LaunchScreen

    await pilot.press("n")
    await until(pilot, lambda: isinstance(app.screen, LaunchScreen))
    app.screen.query_one("#launch-stage").value = stage
    return app.screen.query_one("#launch-options", Input)


async def open_runs(app: Any, pilot: Any, rows: int) -> Any:
    """The Runs screen (`2`), once its table holds `rows` runs; the table."""
    from textual.widgets import DataTable

    from halo_tui.screens.runs import RunsScreen

    await settle(app, pilot)
    await pilot.press("2")
    await until(pilot, lambda: isinstance(app.screen, RunsScreen))
    table = app.screen.query_one(DataTable)
    await until(pilot, lambda: table.row_count == rows)
    return table
