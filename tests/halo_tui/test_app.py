"""The console, driven by Textual's pilot: every screen and action."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from console_pilot import grading, open_candidates, open_runs, settle, until
from textual.widgets import DataTable

from core import grades
from core.errors import UsageError
from halo_tui.app import HaloApp
from halo_tui.components.logview import LogView
from halo_tui.components.stamp_tile import StampTile
from halo_tui.screens.candidates import CandidatesScreen
from halo_tui.screens.confirm import ConfirmScreen
from halo_tui.screens.help import HelpScreen
from halo_tui.screens.job_details import DetailsScreen
from halo_tui.screens.jobs import JobsScreen
from halo_tui.screens.launch import LaunchScreen
from halo_tui.screens.log import LogScreen
from halo_tui.screens.monitor import MonitorScreen


async def test_jobs_table_lists_jobs_and_picks_up_new_ones(engine) -> None:
    done = engine.wait(engine.launch("sleepy", params={"code": "3"}).id)
    app = HaloApp(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(DataTable)
        assert isinstance(app.screen, JobsScreen) and table.row_count == 1
        assert str(table.get_row(str(done.id))[2]) == "failed"
        engine.wait(engine.launch("sleepy").id)
        app.screen.load()
        await settle(app, pilot)
        assert table.row_count == 2
        await pilot.press("enter")
        assert isinstance(app.screen, DetailsScreen)
        await pilot.press("escape")
        await pilot.press("l")
        assert isinstance(app.screen, LogScreen)


async def test_the_jobs_table_shows_training_progress_exit_codes_and_its_sort(engine) -> None:
    """Bug 13 of issue 14: a training run showed `…` as progress throughout; each sort press
    stacked a toast and the header showed no sort."""
    from halo_tui.screens.jobs import COLUMNS, progress

    failed = engine.wait(engine.launch("sleepy", params={"code": "3"}).id)
    app = HaloApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(DataTable)
        assert str(table.get_row(str(failed.id))[COLUMNS.index("exit")]) == "3"
        labels = lambda: [str(c.label) for c in table.columns.values()]  # noqa: E731
        assert labels()[0] == "id ▼"
        await pilot.press("s", "s")
        await until(pilot, lambda: labels()[2] == "state ▲" and labels()[0] == "id  ")
        assert len(app._notifications) == 0  # no toast per press
    log = engine.workspace.root / "train.log"
    log.write_text("train: epoch 2/6 step 23/31 loss 0.4123 812 images/s\n")
    running = type("Job", (), {"state": failed.state.__class__("running"), "log_path": str(log)})
    assert progress(running) == "epoch 2/6 · step 23/31"
    log.write_text("coadds: brick 3/16 written\n")
    assert progress(running) == "brick 3/16"
    log.write_text("inject: partition 4 written (2000 rows, 0 flagged) [5/10]\n")
    assert progress(running) == "5/10"
    log.write_text("train: loading the stamps\n")
    assert progress(running) == "started"


async def test_candidates_are_3_from_anywhere(engine, candidates: Path) -> None:
    """Part 5 of issue 14: Candidates were reachable only from Runs with `g`."""
    import shutil

    from core.layout import candidates_file

    run = engine.workspace.root / "data" / "runs" / "demo"
    run.mkdir(parents=True)
    (run / "run.json").write_text("{}")
    target = candidates_file(engine.workspace.root, "demo")
    target.parent.mkdir(parents=True)
    shutil.copy(candidates, target)
    app = HaloApp(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, CandidatesScreen))
        assert app.screen.run == "demo"
        await pilot.press("1", "3")  # back to jobs, and to the same candidates again
        await until(pilot, lambda: isinstance(app.screen, CandidatesScreen))
        assert sum(isinstance(s, CandidatesScreen) for s in app.screen_stack) == 1


async def test_an_idle_console_does_not_rebuild_its_table(engine) -> None:
    engine.wait(engine.launch("sleepy").id)
    app = HaloApp(engine)
    async with app.run_test() as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(DataTable)
        rebuilt = []
        table.clear = lambda *a, **k: rebuilt.append(1)  # type: ignore[method-assign]
        app.screen.load()
        await settle(app, pilot)
        assert rebuilt == []


async def test_launch_cancel_and_relaunch_from_the_keyboard(engine) -> None:
    app = HaloApp(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("n")
        assert isinstance(app.screen, LaunchScreen)
        app.screen.query_one("#launch-stage").value = "sleepy"
        await pilot.click("#launch-options")
        await pilot.press(*"--seconds 30", "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, JobsScreen)
        (job,) = engine.store.list()
        assert job.stage == "sleepy" and job.params == {"seconds": 30.0} and job.state.value == "running"
        app.screen.load()
        await settle(app, pilot)
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(app, pilot)
        assert engine.store.get(job.id).state.value == "cancelled"
        await pilot.press("r")
        await settle(app, pilot)
        assert [j.state.value for j in engine.store.list()] == ["running", "cancelled"]


async def test_the_launch_button_launches_the_options_just_typed(engine, monkeypatch) -> None:
    """Bug 5 of issue 14: a launch ran with none of the typed options. The options box and
    the button have their own message queues: a button press handled before the box had
    processed its last keys read an older value. Here the box is slow (each key takes 20 ms,
    as on a loaded machine) and the click comes while it still has keys queued."""
    import asyncio

    from textual import events
    from textual.widgets import Button, Input

    handle_key = Input._on_key

    async def slow_key(self, event) -> None:  # noqa: ANN001
        await asyncio.sleep(0.02)
        await handle_key(self, event)

    monkeypatch.setattr(Input, "_on_key", slow_key)
    app = HaloApp(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, LaunchScreen))
        app.screen.query_one("#launch-stage").value = "sleepy"
        box = app.screen.query_one("#launch-options", Input)
        box.focus()
        await pilot.pause()
        for ch in "--seconds 30":  # queued in the box, not yet processed
            box.post_message(events.Key(ch, ch))
        app.screen.query_one("#launch-go", Button).press()  # the click, while they wait
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        await settle(app, pilot)
    (job,) = engine.store.list()
    assert job.params == {"seconds": 30.0}, job.params
    engine.cancel(job.id)


async def test_m_on_a_train_job_without_run_opens_the_run_it_writes(engine) -> None:
    """Bug 4 of issue 14: `m` opened `runs/v4_sota--` for a train job launched without --run."""
    job = engine.store.create("train", "v4_sota", {"force": False, "resume": False}, "local")
    app = HaloApp(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 1)
        assert str(table.get_row(str(job.id))[1]) == "train"
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MonitorScreen))
        assert app.screen.run_dir.name == "v4_sota-grid_sota-convnext_v4sota"


async def test_the_launch_form_refuses_bad_options(engine) -> None:
    app = HaloApp(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("n")
        app.screen.query_one("#launch-stage").value = "sleepy"
        await pilot.click("#launch-options")
        await pilot.press(*"--out ../../etc", "enter")
        assert isinstance(app.screen, LaunchScreen)
        assert "not an acceptable path" in str(app.screen.query_one("#launch-error").render())
        assert engine.store.list() == []


async def test_readonly_hides_every_action_that_changes_state(engine, candidates: Path) -> None:
    job = engine.launch("sleepy", params={"seconds": "30"})
    app = HaloApp(engine, readonly=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        for key in ("n", "c", "r"):  # launch, cancel, relaunch: each would change the store
            await pilot.press(key)
            await settle(app, pilot)
            assert isinstance(app.screen, JobsScreen)
        assert [j.id for j in engine.store.list()] == [job.id]  # nothing launched or relaunched
        assert engine.store.get(job.id).state.value == "running"  # nothing cancelled
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help Static").render())
        assert "read-only" in text and "jobs.log" in text
        for changing in ("jobs.launch", "jobs.cancel", "jobs.relaunch"):
            assert changing not in text
        await pilot.press("escape")
        await open_candidates(app, pilot, candidates)
        await pilot.press("a", "t", "U", "e")  # grade, note, undo, export: refused
        await settle(app, pilot)
        assert grades.current(engine.store, "demo") == {}
        assert not candidates.with_name("grades-demo.csv").exists()  # bug 7: `e` still exported


async def test_the_palette_lists_the_current_screens_actions(engine, candidates: Path) -> None:
    """Bug 2: the provider read `app.screen`, the palette itself, so no screen action showed."""
    from textual.command import CommandPalette
    from textual.widgets import OptionList

    app = HaloApp(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)

        async def found(query: str) -> list[str]:
            await pilot.press("ctrl+p")
            await until(pilot, lambda: isinstance(app.screen, CommandPalette))
            await pilot.press(*query)
            options = app.screen.query_one(OptionList)
            await until(pilot, lambda: options.option_count > 0)
            prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, CommandPalette))
            return prompts

        assert any("Log (l)" in p for p in await found("log"))  # on Jobs
        app.push_screen(CandidatesScreen(candidates, "demo"))
        await until(pilot, lambda: isinstance(app.screen, CandidatesScreen))
        assert any("Export CSV (e)" in p for p in await found("export"))


async def test_help_shows_key_names_and_scrolls_and_runs_is_one_screen(engine, candidates: Path) -> None:
    """Bugs 9 and 13: help printed `question_mark`, `slash`; it could not scroll at 80x24;
    `esc` did nothing on Runs and each `2` stacked another Runs screen."""
    from halo_tui.screens.runs import RunsScreen

    app = HaloApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("2", "2", "2")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert sum(isinstance(s, RunsScreen) for s in app.screen_stack) == 1
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        app.push_screen(CandidatesScreen(candidates, "demo"))
        await until(pilot, lambda: isinstance(app.screen, CandidatesScreen))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = str(app.screen.query_one("#help Static").render())
        assert "?" in text and "question_mark" not in text and "pagedown" not in text
        assert "cand.export" in text  # listed, if below the fold
        scroller = app.screen.query_one("#help")
        await until(pilot, lambda: scroller.max_scroll_y > 0)  # more keys than 24 rows: it scrolls
        await pilot.press("end")
        await until(pilot, lambda: scroller.scroll_y == scroller.max_scroll_y)


async def test_following_a_growing_log(engine, tmp_path: Path) -> None:
    log = tmp_path / "growing.log"
    log.write_text("".join(f"line {i}\n" for i in range(500)))
    app = HaloApp(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        app.push_screen(LogScreen(log, "test log"))
        await until(pilot, lambda: bool(app.screen.query(LogView)))
        view = app.screen.query_one(LogView)
        at_end = lambda n: view.line_count == n and view.scroll_offset.y == view.max_scroll_y  # noqa: E731
        await until(pilot, lambda: at_end(500))
        assert view.follow
        with log.open("a") as out:
            out.write("".join(f"line {i}\n" for i in range(500, 600)) + "ERROR here\n")
        await until(pilot, lambda: at_end(601))
        await pilot.press("g")
        await pilot.pause(0.1)
        assert not view.follow and view.scroll_offset.y == 0
        await pilot.press("slash", *"error", "enter")
        await pilot.pause(0.1)
        assert view.current == 600
        await pilot.press("G")
        assert view.follow


async def test_a_log_bigger_than_one_polls_index_budget_is_indexed_whole(
    engine, tmp_path: Path, monkeypatch
) -> None:
    """Bug 1: past the first poll's budget (64 MiB) the index never grew again: the next
    poll was a 0 s timer, which Textual's timer divides by. Here the budget is 64 KiB."""
    from halo_tui.screens import log

    monkeypatch.setattr(log, "INDEX_BUDGET", 64 << 10)
    log = tmp_path / "big.log"
    log.write_text("".join(f"line {i:07d} " + "x" * 60 + "\n" for i in range(20_000)))  # 1.4 MB
    app = HaloApp(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        app.push_screen(LogScreen(log, "big log"))
        await until(pilot, lambda: bool(app.screen.query(LogView)))
        view = app.screen.query_one(LogView)
        await until(pilot, lambda: view.index.complete and view.line_count == 20_000, timeout=20)
        await pilot.press("g")
        await pilot.pause(0.1)
        assert "line 0000000" in "".join(seg.text for seg in view.render_line(0))
        await pilot.press("slash", *"line 0019999", "enter")
        await until(pilot, lambda: view.current == 19_999)


async def test_a_metrics_line_appended_while_the_monitor_is_open_shows_up(engine, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"epochs": 3}))
    line = {
        "epoch": 0,
        "train_loss": 0.3,
        "val_loss": 0.2,
        "auroc": 0.98,
        "tpr@fpr1e-3": 0.5,
        "tpr@fpr1e-4": None,
        "seconds": 10.0,
        "n_neg": 1000,
    }
    (run / "metrics.jsonl").write_text(json.dumps(line) + "\n" + '{"epoch": 1, "tra')  # a torn last line
    app = HaloApp(engine)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(app, pilot)
        app.push_screen(MonitorScreen(run))
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, MonitorScreen)
                and any(t.row_count for t in app.screen.query(DataTable))
            ),
        )
        table = app.screen.query_one(DataTable)
        assert table.row_count == 1
        assert "malformed" in str(app.screen.query_one("#monitor-status").render())
        from halo_tui.components.plots import EpochPlot

        loss = app.screen.query_one("#plot-loss", EpochPlot)  # part 4 of issue 14: axes, not a bar
        assert loss.drawn == {"train_loss": [(1, 0.3)], "val_loss": [(1, 0.2)]}  # epochs from 1
        (run / "metrics.jsonl").write_text(
            json.dumps(line)
            + "\n"
            + json.dumps({**line, "epoch": 1, "auroc": 0.995, "train_loss": 0.1})
            + "\n"
        )
        await until(pilot, lambda: table.row_count == 2)  # within a second, or so on a loaded machine
        auroc = table.get_row("1")[3]
        assert str(auroc) == "0.9950" and "green" in str(auroc.style) and "bold" in str(auroc.style)
        # bug 3: the lower loss is the best one (the worse was bolded)
        column = [str(c.label) for c in table.columns.values()].index("train_loss")
        assert "bold" in str(table.get_row("1")[column].style)
        assert "bold" not in str(table.get_row("0")[column].style)
        assert str(table.get_row("0")[6]) == "n/m"  # tpr@fpr1e-4 not measured
        assert table.fixed_columns == 1  # part 5 of issue 14: the epoch stays while scrolling right
        await until(pilot, lambda: loss.drawn["train_loss"] == [(1, 0.3), (2, 0.1)])
        rates = app.screen.query_one("#plot-rates", EpochPlot)
        assert rates.drawn["auroc"] == [(1, 0.98), (2, 0.995)] and "tpr@fpr1e-2" not in rates.drawn
        assert "epoch" in "".join(seg.text for seg in loss.render_line(loss.size.height - 1))
        assert "ETA" in str(app.screen.query_one("#monitor-status").render())


async def test_grading_candidates_survives_a_restart(engine, candidates: Path, monkeypatch) -> None:
    monkeypatch.setenv("USER", "alice")
    app = HaloApp(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.push_screen(CandidatesScreen(candidates, "demo"))
        await pilot.pause(0.5)
        await settle(app, pilot)
        assert len(app.screen.query(StampTile)) >= 4
        await pilot.press("a", "x", "c")
        await pilot.press("U")  # undo the C
        await pilot.press("pagedown")
        await settle(app, pilot)
        assert app.screen.page == 1
    current = grades.current(engine.store, "demo")
    assert {k[1]: c.grades["alice"] for k, c in current.items()} == {0: "A", 1: "X"}
    app = HaloApp(engine)  # a new session sees them
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.push_screen(CandidatesScreen(candidates, "demo"))
        await pilot.pause(0.5)
        await settle(app, pilot)
        await pilot.press("f")  # ungraded
        await settle(app, pilot)
        assert 0 not in app.screen.rows and 1 not in app.screen.rows and len(app.screen.rows) == 28
        await pilot.press("e")
        exported = (candidates.parent / "grades-demo.csv").read_text().splitlines()
        assert exported[0].startswith("run,rank,brickname,objid") and len(exported) == 3
        assert exported[0].endswith(",alice,notes") and exported[1].startswith("demo,1,")
        row = dict(zip(exported[0].split(","), exported[1].split(","), strict=True))
        # issue 15: rounded for people, as scores read everywhere else (ra, dec to 1e-6 degrees)
        assert re.fullmatch(r"[01]\.\d{6}", row["score"]) and re.fullmatch(r"\d+\.\d{6}", row["ra"])


async def test_notes_show_and_undo_goes_to_what_it_undid(engine, candidates: Path, monkeypatch) -> None:
    """Bug 8 of issue 14: notes were write-only; undo after a note said "undid A" and the A
    stayed; a second undo changed another candidate while the cursor stayed put."""
    monkeypatch.setenv("USER", "alice")
    async with grading(engine, candidates, size=(120, 40)) as (app, pilot, screen):
        meta = lambda: str(screen.query_one("#meta").render())  # noqa: E731
        await pilot.press("a", "b")  # A on #1, B on #2; the cursor advances to #3
        await pilot.press("left", "left", "t")
        await until(pilot, lambda: app.screen.query("#note"))
        await pilot.press(*"arc to the NE", "enter")
        await until(pilot, lambda: "note   alice: arc to the NE" in meta())
        await pilot.press("right", "right", "right", "U")  # undo the note: back on #1
        await until(pilot, lambda: screen.cursor == 0 and "arc to the NE" not in meta())
        assert "grades alice:A" in meta()
        await pilot.press("U")  # undo the B on #2: the cursor follows
        await until(pilot, lambda: screen.cursor == 1)
        assert "grades" not in meta()
    assert {k[1]: c.grades for k, c in grades.current(engine.store, "demo").items()} == {0: {"alice": "A"}}


async def test_zoom_at_80x24_shows_the_whole_width_centred_and_pans(engine, candidates: Path) -> None:
    """Bug 10 of issue 14: zoomed at 80×24 the stamp showed 52×44 of its 64×64 pixels with
    the galaxy at the bottom edge, and nothing moved the view."""
    async with grading(engine, candidates, size=(80, 24)) as (app, pilot, screen):
        await pilot.press("z")
        await until(pilot, lambda: len(screen.query(StampTile)) == 1 and screen.zoomed)
        tile = screen.query_one(StampTile)
        assert tile.cells == 64 and not screen.query_one("#meta").display  # every column
        x0, cols, y0, rows = screen.zoom_window()
        assert (x0, cols) == (0, 64) and rows == 20 and y0 <= 16 < y0 + rows  # the centre row shows
        assert len(tile.lines) == rows
        first = tile.lines[0]
        await pilot.press(*["down"] * 10)  # pan to the bottom edge, and no further
        await until(pilot, lambda: screen.zoom_window()[2] == 32 - rows)
        assert screen.query_one(StampTile).lines[0] != first
        await pilot.press("z")
        await until(pilot, lambda: not screen.zoomed and screen.query_one("#meta").display)


async def test_keyboard_triage_moves_jumps_and_links(engine, candidates: Path, monkeypatch) -> None:
    """Part 2 of issue 14: a progress line, n next ungraded, j/k/h/l, g/G, # rank, o viewer."""
    monkeypatch.setenv("USER", "alice")
    async with grading(engine, candidates, size=(120, 40)) as (app, pilot, screen):
        progress = lambda: str(screen.query_one("#cand-progress").render())  # noqa: E731
        assert progress() == "graded 0/30 · 0 disagree · 0 known"
        await pilot.press("a", "a", "a")  # #1-#3 graded; the cursor on #4
        await until(pilot, lambda: progress().startswith("graded 3/30"))
        first = screen.query(StampTile).first()
        assert first.badge == "A" and any("green" in str(span.style) for span in first.caption.spans)
        await pilot.press("g", "n")  # from the top, the next one you have not graded: #4
        await until(pilot, lambda: screen.position == 3)
        await pilot.press("l", "l", "h", "j")
        await until(pilot, lambda: screen.position == 4 + screen.geometry()[1])
        await pilot.press("G")
        await until(pilot, lambda: screen.position == 29)
        first_row = screen.page_rows(screen.page)[0]  # the page's tiles, reused, show its stamps
        await until(pilot, lambda: screen.query(StampTile).first().label.startswith(f"#{first_row + 1} "))
        tiles = list(screen.query(StampTile))
        cached = screen.cache.strips[first_row, (screen.view, screen.stretch), screen.geometry()[0]]
        assert len(tiles) == len(screen.page_rows(screen.page)) and tiles[0].lines == cached
        await pilot.press("number_sign")
        await until(pilot, lambda: app.screen.query("#note"))
        await pilot.press("1", "2", "enter")
        await until(pilot, lambda: screen.position == 11 and screen._current()["rank"] == 12)
        lines_before = [seg.text for seg in screen.query(StampTile).first().lines[5]]
        styles_before = [seg.style for seg in screen.query(StampTile).first().lines[5]]
        await pilot.press("plus")  # a harder stretch: the same stamp drawn brighter
        await until(
            pilot, lambda: screen.stretch == 40 and "stretch 40" in str(screen.query_one("#meta").render())
        )
        await until(
            pilot, lambda: [s.style for s in screen.query(StampTile).first().lines[5]] != styles_before
        )
        assert [seg.text for seg in screen.query(StampTile).first().lines[5]] == lines_before
        await pilot.press("minus", "minus", "minus", "minus", "minus")
        await until(pilot, lambda: screen.stretch == 5)  # and no lower
        await pilot.press("o")
        await until(pilot, lambda: "legacysurvey.org/viewer" in app.clipboard)
        info = screen._current()
        assert f"ra={info['ra']:.6f}&dec={info['dec']:.6f}&layer=ls-dr10" in app.clipboard
        assert f"mark={info['ra']:.6f},{info['dec']:.6f}" in app.clipboard


async def test_two_consoles_grading_at_once_lose_nothing(engine, candidates: Path, monkeypatch) -> None:
    """Both consoles open at the same time on one workspace, their grades interleaved."""
    from core.engine import Engine
    from core.workspace import Workspace

    other = Engine(Workspace(engine.workspace.root))
    alice_app, bob_app = HaloApp(engine), HaloApp(other)
    async with alice_app.run_test(size=(120, 40)) as alice, bob_app.run_test(size=(120, 40)) as bob:
        for who, app, pilot in (("alice", alice_app, alice), ("bob", bob_app, bob)):
            await settle(app, pilot)
            monkeypatch.setenv("USER", who)  # each screen takes its inspector when it opens
            app.push_screen(CandidatesScreen(candidates, "demo"))
            await until(
                pilot,
                lambda app=app: isinstance(app.screen, CandidatesScreen) and app.screen.query(StampTile),
            )
        for _ in range(2):  # interleaved: alice grades, bob grades, on the same candidates
            await alice.press("a")
            await bob.press("x")
        await settle(alice_app, alice)
        await settle(bob_app, bob)
    current = grades.current(engine.store, "demo")
    for objid in (0, 1):
        assert current[("1499p022", objid)].grades == {"alice": "A", "bob": "X"}
        assert current[("1499p022", objid)].disagreement


async def test_the_disagreements_filter_follows_another_inspectors_grades(
    engine, candidates: Path, monkeypatch
) -> None:
    """Bug 11 of issue 14: the filter showed another console's grades only once `f` was cycled."""
    from core.engine import Engine
    from core.workspace import Workspace

    monkeypatch.setenv("USER", "alice")
    async with grading(engine, candidates, size=(120, 40)) as (app, pilot, screen):
        await pilot.press("a", "a", "f", "f")  # A on #1 and #2, then the disagreements filter
        await until(pilot, lambda: screen.filter == "disagreements" and len(screen.rows) == 0)
        other = Engine(Workspace(engine.workspace.root)).store  # bob, in another console
        for objid in (0, 1):
            grades.grade(other, "demo", "1499p022", objid, "bob", "X")
        await until(pilot, lambda: len(screen.rows) == 2 and len(screen.query(StampTile)) == 2)
        assert "disagree" in str(screen.query_one("#meta").render())


async def test_bindings_are_remapped_by_id_from_halo_toml(engine) -> None:
    (engine.workspace.root / "halo.toml").write_text(
        (engine.workspace.root / "halo.toml").read_text() + '\n[keys]\n"jobs.log" = "o"\n'
    )
    from core.engine import Engine
    from core.workspace import Workspace

    engine.wait(engine.launch("sleepy").id)
    app = HaloApp(Engine(Workspace(engine.workspace.root)))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("l")
        assert isinstance(app.screen, JobsScreen)  # no longer bound
        await pilot.press("o")
        assert isinstance(app.screen, LogScreen)


async def test_compare_shows_each_runs_completeness_map_as_a_heatmap(engine, make_evaluation) -> None:
    from textual.widgets import Static

    from halo_tui.screens.compare import CompareScreen

    root = engine.workspace.root
    for name, level in (("gen1", 0.3), ("gen2", 1.2)):
        run = root / "data" / "runs" / name
        (run / "eval").mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"run": name, "variant": "v4_sota"}))
        (run / "eval" / "eval-test.json").write_text(json.dumps(make_evaluation(level)))
    app = HaloApp(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        app.push_screen(CompareScreen(["gen1", "gen2"]))
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.query("#heatmaps"))
        await until(pilot, lambda: "gen2" in str(app.screen.query_one("#heatmaps", Static).content))
        text = app.screen.query_one("#heatmaps", Static).content
        plain = str(text)
        assert "gen1" in plain and "gen2" in plain and "completeness at FPR 1e-02" in plain
        assert "src_dmag" in plain and "0.5" in plain
        coloured = {str(span.style) for span in text.spans if "on #" in str(span.style)}
        assert len(coloured) > 3  # cells coloured by their completeness
        table = app.screen.query_one(DataTable)
        assert any("negatives (galaxies)" in str(table.get_row_at(i)[0]) for i in range(table.row_count))
        # green meets the target, red misses it (not "the better run"); ▲ marks the better run
        targets, judged = engine.workspace.config.targets, 0
        for i in range(table.row_count):
            metric, *cells, target = table.get_row_at(i)
            if str(metric) not in targets or not target:
                continue
            for cell in cells:
                if str(cell).startswith(("n/m", "<")):  # not measured: no verdict either way
                    assert not {"green", "red"} & set(str(cell.style).split())
                    continue
                value = float(str(cell).split()[0].rstrip("%")) / (100 if "%" in str(cell) else 1)
                met = targets[str(metric)].met(value)
                assert str(cell.style).split()[0] == ("green" if met else "red"), (metric, cell)
                judged += 1
            assert sum("▲" in str(cell) for cell in cells) <= 1
        assert judged >= 4
        await pilot.press("t")  # the next threshold: FPR 0
        assert "completeness at FPR 0" in str(app.screen.query_one("#heatmaps", Static).content)
        roc = app.screen.query_one("#roc")  # part 4 of issue 14: the runs' ROC curves, plotted
        assert roc.display and set(roc.drawn) == {"gen1", "gen2"} and min(roc.drawn.values()) > 10


async def test_a_known_lens_is_named_on_its_candidate_and_hostile_text_stays_text(
    engine, tmp_path: Path, monkeypatch, make_candidates
) -> None:
    monkeypatch.setenv("USER", "[/evil]")
    path = make_candidates(
        tmp_path / "candidates.parquet",
        4,
        known_lens=["SLACS J0912+0029 [bold]x[/]", None, None, None],
        known_lens_grade=["confident", None, None, None],
        known_lens_reference=["Bolton et al. (2008) \x1b]0;pwn\x07", None, None, None],
    )
    app = HaloApp(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await open_candidates(app, pilot, path)
        meta = str(app.screen.query_one("#meta").content)
        assert "known lens SLACS J0912+0029 [bold]x[/]" in meta  # shown as typed, not as markup
        assert "\x1b" not in meta and "\\x1b]0;pwn\\x07" in meta
        assert "you    [/evil]" in meta


async def test_blind_items_look_like_candidates_and_measure_the_inspector(
    engine, candidates: Path, make_candidates, monkeypatch
) -> None:
    """Issue 14 part 3: simulated lenses and known non-lenses in the stream, told apart by
    nothing on screen; their grades give each inspector's completeness and FPR, never the CSV."""
    import csv
    import re

    from core.candidates import blinds_path
    from halo_tui.screens.inspectors import InspectorsScreen

    monkeypatch.setenv("USER", "alice")
    truth = ["lens"] * 5 + ["not_lens"] * 5
    make_candidates(blinds_path(candidates), 10, brickname=["0001p000"] * 10, truth=truth)
    app = HaloApp(engine, blind_rate=0.25)  # 30 candidates: 10 blind items make a quarter
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await open_candidates(app, pilot, candidates)
        screen = app.screen
        stream = screen.table
        assert len(stream) == 40 and stream.n_blind == 10
        meta = lambda: str(screen.query_one("#meta").render())  # noqa: E731
        fields = lambda: [line.split()[0] for line in meta().splitlines()[1:] if line.strip()]  # noqa: E731
        assert all(re.fullmatch(r"#\d+", tile.label) for tile in screen.query(StampTile))  # no score
        candidate = int(np.flatnonzero(stream.source == 0)[0])
        screen._go(candidate)
        await until(pilot, lambda: screen.position == candidate)
        seen = fields()
        assert "hidden while blind items are in the stream" in meta() and "split" not in seen
        await pilot.press("o")  # the viewer would show DR10's sky: a simulated lens without its arc
        await until(pilot, lambda: any("viewer is off" in n.message for n in app._notifications))
        for blind in np.flatnonzero(stream.source == 1)[:4]:  # 4 blind items graded A
            screen._go(int(blind))
            await until(pilot, lambda b=blind: screen.position == b and fields() == seen)  # the same fields
            await pilot.press("a")
        screen._go(candidate)
        await pilot.press("x")
        await until(pilot, lambda: grades.current(engine.store, "demo"))
        figures = grades.calibration(engine.store, "demo")["alice"]
        picked = [stream.truth[int(stream.index[b])] for b in np.flatnonzero(stream.source == 1)[:4]]
        assert (figures.sims, figures.found) == (picked.count("lens"),) * 2
        assert (figures.duds, figures.false) == (picked.count("not_lens"),) * 2
        assert f"graded 5/{len(stream)}" in str(screen.query_one("#cand-progress").render())
        grades.grade(engine.store, "demo", "0001p000", 1, "bob", "A", blind="lens")  # a colleague
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, InspectorsScreen))
        dialog = str(app.screen.query_one("#dialog").render())
        assert figures.line() not in dialog and "alice: your own figures are hidden" in dialog  # no tell
        assert grades.calibration(engine.store, "demo")["bob"].line() in dialog
        await pilot.press("escape", "e")
        target = candidates.with_name("grades-demo.csv")
        await until(pilot, lambda: grades.calibration_path(target).exists())
    rows = list(csv.DictReader(target.open()))
    assert [(r["brickname"], r["alice"]) for r in rows] == [("1499p022", "X")]  # no blind item in it
    inspectors = list(csv.DictReader(grades.calibration_path(target).open()))
    assert [(r["inspector"], r["found"]) for r in inspectors] == [("alice", str(figures.found)), ("bob", "1")]


async def test_grading_writes_off_the_ui_thread_in_the_order_pressed(
    engine, candidates: Path, monkeypatch
) -> None:
    """Issue 14 part 7: a slow store does not hold the keyboard up; a grade then an undo
    pressed while the first write waits still land in that order."""
    import threading

    monkeypatch.setenv("USER", "alice")
    release, threads = threading.Event(), []
    real_grade = grades.grade

    def slow_grade(*args, **kwargs) -> None:
        threads.append(threading.current_thread())
        assert release.wait(10)
        real_grade(*args, **kwargs)

    monkeypatch.setattr(grades, "grade", slow_grade)
    async with grading(engine, candidates, size=(120, 40)) as (app, pilot, screen):
        await pilot.press("a")  # the write waits; the cursor moves on at once
        assert screen.cursor == 1 and grades.current(engine.store, "demo") == {}
        await pilot.press("b", "U")
        assert screen.cursor == 2 and len(app.writes) == 3
        release.set()
        await until(pilot, lambda: not app.writes.pending)
        await until(pilot, lambda: screen.cursor == 1)  # the undo took back the B on #2
        assert threads and threading.main_thread() not in threads
    assert {k[1]: c.grades for k, c in grades.current(engine.store, "demo").items()} == {0: {"alice": "A"}}


async def test_the_bands_and_the_composite_side_by_side(engine, candidates: Path) -> None:
    """Issue 14 part 2: `v` to `all` shows the grz composite and g, r, z side by side; at
    80×24 the side panel gives them its width."""
    from core.candidates import CandidateTable
    from halo_tui.components.stamp import render_rgb

    stamp = CandidateTable(candidates).stamps([0])[0]
    for size, meta in (((200, 50), True), ((80, 24), False)):
        async with grading(engine, candidates, size=size) as (app, pilot, screen):
            await pilot.press("v", "v", "v", "v")
            await until(pilot, lambda s=screen: s.view == "all" and s.query(StampTile).first().cells > 64)
            await settle(app, pilot)
            factor = screen.geometry()[0]
            side = 64 // factor
            tile = screen.query(StampTile).first()
            assert tile.cells == 4 * side + 3 and screen.query_one("#meta").display == meta
            assert "".join(seg.text for seg in tile.lines[0]).split() == ["grz", "g", "r", "z"]  # named
            top = [seg.style for seg in tile.lines[1]]
            for i, band in enumerate(("grz", "g", "r", "z")):  # each panel is that view, a gap between
                rgb = render_rgb(stamp, band, factor)
                expected = [tuple(rgb[0, x]) for x in range(side)]
                drawn = [tuple(st.color.triplet) for st in top[i * (side + 1) : i * (side + 1) + side]]
                assert drawn == expected, band


async def test_zoom_shows_real_pixels_where_the_terminal_draws_images(
    engine, candidates: Path, monkeypatch
) -> None:
    """Issue 14 part 2: Sixel or Kitty's protocol for the zoomed stamp where the terminal has
    one (textual-image), the stamp's own pixels whole; half blocks elsewhere."""
    from textual_image.widget import SixelImage

    from core.candidates import CandidateTable
    from halo_tui.components import pixels
    from halo_tui.components.stamp import render_rgb

    monkeypatch.setattr(pixels, "_chosen", None)  # put back whatever happens
    assert pixels.detect({"HALO_PIXELS": "off"}) is None
    assert pixels.detect({"HALO_PIXELS": "sixel"}) == "sixel" == pixels.protocol()
    async with grading(engine, candidates, size=(100, 30)) as (app, pilot, screen):
        await pilot.press("z")
        await until(pilot, lambda: app.screen.query(SixelImage))
        await settle(app, pilot)
        drawn = app.screen.query_one(SixelImage)
        expected = render_rgb(CandidateTable(candidates).stamps([0])[0], "grz", 1)
        assert np.array_equal(np.asarray(drawn.image), expected)
        assert not app.screen.query_one("#tiles").display
        await pilot.press("z")  # back to the grid of half blocks
        grid = app.screen.query_one("#tiles")
        await until(pilot, lambda: grid.display and not app.screen.query(SixelImage))
    assert pixels.detect({}) is None  # not a terminal: half blocks
    with pytest.raises(UsageError, match="HALO_PIXELS"):
        pixels.detect({"HALO_PIXELS": "png"})


async def test_runs_shows_val_and_test_figures_and_tells_none_from_unmeasurable(engine) -> None:
    """Issue 15: `n/m` also stood for "no data"; val figures showed without saying which."""

    root = engine.workspace.root
    for name, line in (
        ("gen1", {"epoch": 0, "auroc": 0.91}),
        ("gen2", {"epoch": 0, "auroc": 0.99, "tpr@fpr1e-3": None, "unmeasured": {"tpr@fpr1e-3": "few"}}),
    ):
        (root / "data" / "runs" / name).mkdir(parents=True)
        (root / "data" / "runs" / name / "metrics.jsonl").write_text(json.dumps(line) + "\n")
    # an evaluated run: real-lens recall beside the injection figures (issue 23, part 3)
    (root / "data" / "runs" / "gen3" / "eval").mkdir(parents=True)
    (root / "data" / "runs" / "gen3" / "metrics.jsonl").write_text(
        json.dumps({"epoch": 0, "auroc": 0.95}) + "\n"
    )
    cell = {"value": 25 / 44, "k": 25, "n": 44}
    (root / "data" / "runs" / "gen3" / "eval" / "eval-test.json").write_text(
        json.dumps(
            {
                "operating_points": {
                    "auroc": 0.97,
                    "tpr@fpr1e-3": None,
                    "unmeasured": {"tpr@fpr1e-3": "few"},
                },
                "real_lenses": {"n": 44, "tiers": {"all": {"n": 44, "FPR 1e-02": cell}}},
            }
        )
    )
    app = HaloApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await open_runs(app, pilot, 3)
        assert [str(c) for c in table.get_row("gen3")[5:8]] == ["0.9700", "n/m", "57% 25/44"]
        labels = [str(c.label) for c in table.columns.values()]
        assert labels[3:8] == [
            "val\nauroc",
            "val\ntpr@1e-3",
            "test\nauroc",
            "test\ntpr@1e-3",
            "real\nrecall@1e-2",
        ]
        assert [str(c) for c in table.get_row("gen1")[3:7]] == ["0.9100", "-", "-", "-"]
        assert [str(c) for c in table.get_row("gen2")[3:7]] == ["0.9900", "n/m", "-", "-"]
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= 80  # no scrolling


async def test_F_pages_the_runs_other_scored_files_and_grades_them_apart(
    engine, make_candidates, monkeypatch
) -> None:
    """Issue 23, part 5: `score --cutouts DIR` (and `--catalog`) results page in the console:
    `F` goes to the run's next scored file; a grade there is keyed by the file's own keys."""
    from core.layout import candidates_file
    from halo_tui.screens.candidates import CandidatesScreen

    monkeypatch.setenv("USER", "alice")
    root = engine.workspace.root
    main = make_candidates(candidates_file(root, "demo"), 12)
    folder = make_candidates(
        main.with_name("cutouts-paper.parquet"),
        5,
        brickname=["cutouts-paper"] * 5,
        name=[f"cand{i}.fits" for i in range(5)],
    )
    main.with_name("cutouts-paper.scores.parquet").write_bytes(b"not paged")  # the ranking, no stamps
    app = HaloApp(engine)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(app, pilot)
        await open_candidates(app, pilot, main)
        depth = len(app.screen_stack)
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, CandidatesScreen) and app.screen.path == folder)
        await until(pilot, lambda: app.screen.table is not None)
        await settle(app, pilot)
        assert "cutouts-paper.parquet" in app.screen.progress_line()
        await pilot.press("a")
        await settle(app, pilot)
        await until(pilot, lambda: not app.writes.pending)
        await pilot.press("F")  # and round to the candidates again
        await until(pilot, lambda: isinstance(app.screen, CandidatesScreen) and app.screen.path == main)
        assert len(app.screen_stack) == depth  # replaced in place, not stacked
    graded = grades.current(engine.store, "demo")
    assert [k for k, c in graded.items() if "alice" in c.grades] == [("cutouts-paper", 0)]
    folder.unlink()  # one file left: F says so and stays
    app = HaloApp(engine)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(app, pilot)
        await open_candidates(app, pilot, main)
        await pilot.press("F")
        await settle(app, pilot)
        assert app.screen.path == main
        assert any("only candidates.parquet is scored" in str(n.message) for n in app._notifications)


async def test_marking_a_run_keeps_the_cursor_on_it(engine) -> None:
    """Marking reloads the runs table: the cursor stays on the run it marked, so `space`,
    `down`, `space`, `c` compares the two runs however fast they are typed."""
    from halo_tui.screens.compare import CompareScreen

    root = engine.workspace.root
    for name in ("gen1", "gen2", "gen3"):
        (root / "data" / "runs" / name).mkdir(parents=True)
        (root / "data" / "runs" / name / "metrics.jsonl").write_text(
            json.dumps({"epoch": 0, "auroc": 0.9}) + "\n"
        )
    app = HaloApp(engine)
    async with app.run_test(size=(100, 30)) as pilot:
        table = await open_runs(app, pilot, 3)
        await pilot.press("down", "space")
        await settle(app, pilot)
        await until(pilot, lambda: str(table.get_row("gen2")[0]) == "*")
        assert app.screen._selected() == "gen2"  # not sent back to the first row
        await pilot.press("down", "space")
        await settle(app, pilot)
        assert app.screen.marked == {"gen2", "gen3"} and app.screen._selected() == "gen3"
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert sorted(
            app.screen.runs_names if hasattr(app.screen, "runs_names") else [r.name for r in app.screen.runs]
        ) == ["gen2", "gen3"]


async def test_a_search_that_is_no_regular_expression_finds_the_text_as_typed(engine, tmp_path) -> None:
    """`/` then `f(x` (an unbalanced parenthesis): the log searches for the text itself and
    says so as a warning, not an error."""
    from halo_tui.components.logview import LogView
    from halo_tui.screens.log import LogScreen

    log = tmp_path / "job.log"
    log.write_text("".join(f"line {i}\n" for i in range(50)) + "call f(x then more\n" + "tail\n" * 20)
    app = HaloApp(engine)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(app, pilot)
        app.push_screen(LogScreen(log, log.name))
        await until(
            pilot, lambda: app.screen.query(LogView) and app.screen.query_one(LogView).line_count >= 70
        )
        await pilot.press("slash", "f", "left_parenthesis", "x", "enter")
        await settle(app, pilot)
        view = app.screen.query_one(LogView)
        await until(pilot, lambda: view.pattern is not None and view.pattern.pattern == re.escape("f(x"))
        said = [(n.severity, str(n.message)) for n in app._notifications]
        assert any(s == "warning" and "searching for the text as typed" in m for s, m in said)
        assert not [m for s, m in said if s == "error"]


async def test_runs_shows_a_runs_lineage_and_r_launches_a_round_or_says_why_not(engine) -> None:
    """Issue 25 part 3: a child run's line under the table names its parent and what it learned
    from the parent's grades; `r` asks for the child's name and launches `retrain`, refused in
    one line where the round could only fail (here: the parent has no grades)."""
    root = engine.workspace.root
    for name, lineage in (
        ("gen1", None),
        (
            "gen2",
            {
                "parent": "gen1",
                "used": {"positives": 9, "negatives": 24},
                "init": "parent",
                "set_aside": {"evaluation split": 8},
            },
        ),
    ):
        run = root / "data" / "runs" / name
        run.mkdir(parents=True)
        (run / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "auroc": 0.9}) + "\n")
        (run / "best.pt").write_bytes(b"")  # trained, as far as a launch's check can tell
        (run / "run.json").write_text(json.dumps({"run": name, **({"lineage": lineage} if lineage else {})}))
    app = HaloApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        table = await open_runs(app, pilot, 2)
        hint = lambda: str(app.screen.query_one("#runs-hint").render())  # noqa: E731
        table.move_cursor(row=table.get_row_index("gen2"))
        await until(pilot, lambda: "gen2 <- gen1" in hint() and "9 lenses, 24 non-lenses" in hint())
        table.move_cursor(row=table.get_row_index("gen1"))
        await until(pilot, lambda: "r retrains" in hint())
        await pilot.press("r")
        await until(pilot, lambda: app.screen.query("#note"))
        await pilot.press(*"gen1-r2", "enter")
        await until(pilot, lambda: any("run 'gen1' has no grades" in n.message for n in app._notifications))
    assert engine.store.count() == 0  # nothing launched
    app = HaloApp(engine, readonly=True)  # a shared session: no round launched from it
    async with app.run_test(size=(120, 30)) as pilot:
        await open_runs(app, pilot, 2)
        assert not app.screen.check_action("retrain", ()) and "r retrains" not in hint()
        await pilot.press("r")
        await pilot.pause()
        assert not app.screen.query("#note")
