"""The console's first screen, driven by Textual's pilot."""

from textual.widgets import DataTable

from halo_tui.app import HaloApp


async def test_console_lists_jobs_and_picks_up_new_ones(engine) -> None:
    done = engine.wait(engine.launch("sleepy", params={"code": "3"}).id)
    app = HaloApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.query_one(DataTable)
        assert table.row_count == 1
        assert table.get_row(str(done.id))[4] == "failed"
        engine.wait(engine.launch("sleepy").id)
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert table.row_count == 2
        assert table.get_row_at(0)[1:5] == ["sleepy", "-", "local", "succeeded"]
        await pilot.press("q")
    assert app.return_code in (0, None)


async def test_an_idle_console_does_not_rebuild_its_table(engine) -> None:
    engine.wait(engine.launch("sleepy").id)
    app = HaloApp(engine)
    async with app.run_test() as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.query_one(DataTable)
        rebuilt = []
        table.clear = lambda *a, **k: rebuilt.append(1)  # type: ignore[method-assign]
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert rebuilt == []
