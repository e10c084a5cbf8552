"""Issue 22: what the review of a grading session found, one test each (items by number)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from console_pilot import grading, open_candidates, open_launch, settle, until
from textual.widgets import DataTable

from core import grades
from halo_tui.app import HaloApp
from halo_tui.components.stamp_tile import StampTile
from halo_tui.screens.candidates import CandidatesScreen
from halo_tui.screens.jobs import JobsScreen


def _toasts(app) -> list[str]:
    return [str(t.render()) for t in app.screen.query("Toast")]


async def test_1_the_viewer_link_is_a_toast_not_a_crash(engine, candidates: Path) -> None:
    """`o` passed a Rich Text to notify: the toast's markup parser crashed the console."""
    async with grading(engine, candidates, size=(120, 40), notifications=True) as (app, pilot, screen):
        await pilot.press("o")
        await until(pilot, lambda: any("legacysurvey.org/viewer" in t for t in _toasts(app)))
        assert app._exception is None


async def test_2_no_color_draws_the_candidates(engine, candidates: Path, monkeypatch) -> None:
    """NO_COLOR=1: Textual's monochrome filter failed on the stamps' unstyled segments."""
    monkeypatch.setenv("NO_COLOR", "1")
    async with grading(engine, candidates, size=(120, 40)) as (app, pilot, screen):
        await pilot.press("v", "v", "v", "v", "z")  # every view, the padding strips too
        await settle(app, pilot)
        svg = app.export_screenshot()
        assert "graded 0/30" in svg.replace("&#160;", " ") and screen.zoomed
        assert app._exception is None


def _unreadable(app) -> list[str]:
    """Text on the screen as the terminal gets it whose grey is too near its background's."""
    from textual.color import Color

    from halo_tui.components.textual_fixes import LEGIBLE

    base = app.screen.background_colors[1].monochrome
    out = []
    for y, strip in enumerate(app.screen._compositor.render_strips()):
        for text, style, _ in strip:
            if not any(ch.isalnum() for ch in text) or style is None:
                continue
            fg = Color.from_rich_color(style.color) if style.color else Color(255, 255, 255)
            bg = Color.from_rich_color(style.bgcolor) if style.bgcolor else base
            if abs(fg.brightness - bg.brightness) < LEGIBLE:
                out.append(f"row {y}: {text.strip()!r} {style}")
    return out


async def test_2_no_color_text_is_readable_and_misses_are_marked(
    engine, candidates: Path, make_evaluation, monkeypatch
) -> None:
    """NO_COLOR turned hues into one grey: a missed target's red was grey 237 on 234, a grade
    badge's letter the grey of its badge. Text keeps its contrast; a miss is underlined too."""
    from halo_tui.screens.compare import CompareScreen

    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("USER", "alice")
    root = engine.workspace.root
    for name, level in (("gen1", 0.1), ("gen2", 1.2)):
        (root / "data" / "runs" / name / "eval").mkdir(parents=True)
        (root / "data" / "runs" / name / "run.json").write_text(json.dumps({"run": name}))
        (root / "data" / "runs" / name / "eval" / "eval-test.json").write_text(
            json.dumps(make_evaluation(level))
        )
    async with grading(engine, candidates, size=(200, 50)) as (app, pilot, screen):
        await pilot.press(*"abcxu")
        await until(pilot, lambda: len(grades.current(engine.store, "demo")) == 5)
        await settle(app, pilot)
        assert _unreadable(app) == []
        app.push_screen(CompareScreen(["gen1", "gen2"]))
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.query(DataTable))
        await settle(app, pilot)
        assert _unreadable(app) == []
        table = app.screen.query_one(DataTable)
        styles = [
            str(c.style)
            for row in range(table.row_count)
            for c in table.get_row_at(row)
            if hasattr(c, "style")
        ]
        assert any("red" in s for s in styles)  # gen1 misses targets
        assert all("underline" in s for s in styles if "red" in s)


async def test_2_plot_series_differ_by_shape_not_only_colour(engine, tmp_path: Path, monkeypatch) -> None:
    """From a new user's walk: in NO_COLOR the monitor's two loss series were both `•` in
    greys 243 and 250. Each series has its own marker."""
    from halo_tui.screens.monitor import MonitorScreen

    monkeypatch.setenv("NO_COLOR", "1")
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"epochs": 3}))
    lines = [{"epoch": e, "train_loss": 0.9 - 0.2 * e, "val_loss": 0.5 + 0.1 * e} for e in range(3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    app = HaloApp(engine)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(app, pilot)
        app.push_screen(MonitorScreen(run))
        await until(pilot, lambda: isinstance(app.screen, MonitorScreen) and app.screen.query("EpochPlot"))
        await settle(app, pilot)
        plot = app.screen.query("EpochPlot").first()
        drawn = "".join(s.text for y in range(plot.region.height) for s in plot.render_line(y))
        assert "•" in drawn and "x" in drawn.replace("epoch", "")


async def test_3_compare_at_80x24_plots_scrolls_and_has_a_footer(engine, make_evaluation) -> None:
    """Compare at 80×24: the ROC plot took log10 of logarithms (math domain error), the
    completeness maps were cut after 2 of 7 rows with no way to scroll, and no footer."""
    from halo_tui.screens.compare import CompareScreen

    root = engine.workspace.root
    for name, level in (("gen1", 0.3), ("gen2", 1.2)):
        (root / "data" / "runs" / name / "eval").mkdir(parents=True)
        (root / "data" / "runs" / name / "run.json").write_text(json.dumps({"run": name}))
        evaluation = json.dumps(make_evaluation(level))
        (root / "data" / "runs" / name / "eval" / "eval-test.json").write_text(evaluation)
    app = HaloApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.push_screen(CompareScreen(["gen1", "gen2"]))
        await until(pilot, lambda: isinstance(app.screen, CompareScreen))
        await settle(app, pilot)
        screen = app.screen
        assert screen.has_class("-narrow") and screen.query_one("Footer").region.y == 23
        body = screen.query_one("#body")
        assert body.max_scroll_y > 0  # the maps are below the table, reachable
        for _ in range(40):
            await pilot.press("pagedown")
        await settle(app, pilot)
        assert body.scroll_y == body.max_scroll_y
        await pilot.press("escape")
        await settle(app, pilot)
        assert app._exception is None


async def test_4_a_burst_of_keys_at_200x50_leaves_it_answering(engine, candidates: Path, monkeypatch) -> None:
    """Once, at 200×50 on Candidates, `e`, `#`, `q` with a stray `o` in the burst left the
    console deaf at 50–90 % CPU (the crash of item 1 rendering its locals). The burst, sent
    as fast as a terminal sends it, then a key that must still be answered."""
    from textual import events

    monkeypatch.setenv("USER", "alice")
    async with grading(engine, candidates, size=(200, 50), notifications=True) as (app, pilot, screen):
        for key in ("e", "number_sign", "q", "o", "escape", "o", "e", "pagedown", "o"):
            app._driver.send_message(events.Key(key, None))
        await until(pilot, lambda: isinstance(app.screen, CandidatesScreen) and screen.page == 1)
        await settle(app, pilot)
        await pilot.press("g")
        await until(pilot, lambda: screen.position == 0)
        assert app._exception is None and app.is_running


async def test_6_grading_the_last_stamp_of_a_page_moves_to_the_next(
    engine, candidates: Path, monkeypatch
) -> None:
    """A fast grader at the page's end overwrote the last stamp's grade again and again."""
    monkeypatch.setenv("USER", "alice")
    async with grading(engine, candidates, size=(200, 50)) as (app, pilot, screen):
        per_page = screen.per_page
        keys = ["a", "b", "c", "x", "u"] * 3
        await pilot.press(*keys[: per_page + 2])
        await until(pilot, lambda: not app.writes.pending)
        await settle(app, pilot)
        assert screen.page == 1 and screen.position == per_page + 2
    mine = grades.current(engine.store, "demo")
    assert len(mine) == per_page + 2  # one grade per candidate, none overwritten
    wanted = {objid: keys[objid].upper().replace("U", "unsure") for (_, objid) in mine}
    assert {objid: c.grades["alice"] for (_, objid), c in mine.items()} == wanted


async def test_7_a_note_on_an_ungraded_candidate_is_no_grade(engine, candidates: Path, monkeypatch) -> None:
    monkeypatch.setenv("USER", "alice")
    async with grading(engine, candidates, size=(120, 40), notifications=True) as (app, pilot, screen):
        await pilot.press("t")
        await until(pilot, lambda: app.screen.query("#note"))
        await pilot.press(*"odd", "enter")
        await until(pilot, lambda: "alice: odd" in str(screen.query_one("#meta").render()))
        assert str(screen.query_one("#cand-progress").render()).startswith("graded 0/30")
        await pilot.press("U")
        await until(pilot, lambda: any("undid the note 'odd' on #1 (" in t for t in _toasts(app)))
    assert grades.current(engine.store, "demo") == {}


async def test_8_jobs_sort_by_value_both_ways_with_a_visible_arrow(engine) -> None:
    """Elapsed sorted as text (14m23s before 1m39s); no arrow on narrow columns; no reverse."""
    for seconds in ("0.5", "0.05", "1.2"):
        engine.wait(engine.launch("sleepy", params={"seconds": seconds}, force=True).id)
    app = HaloApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        screen, table = app.screen, app.screen.query_one(DataTable)
        while screen.sort_column != 4:  # elapsed
            await pilot.press("s")
            await settle(app, pilot)
        elapsed = [screen.jobs[table.get_row_at(i)[0]].elapsed for i in range(table.row_count)]
        assert elapsed == sorted(elapsed)
        await pilot.press("S")
        await settle(app, pilot)
        reversed_ = [screen.jobs[table.get_row_at(i)[0]].elapsed for i in range(table.row_count)]
        assert reversed_ == sorted(elapsed, reverse=True)
        labels = [str(c.label) for c in table.columns.values()]
        assert labels[4] == "elapsed ▼"
        assert all(c.width >= len(str(c.label)) for c in table.columns.values())  # the arrow shows
        await pilot.press("s", "s")  # exit, then started: ids and times as numbers too
        await settle(app, pilot)


def test_9_the_monitor_says_where_a_running_epoch_is(tmp_path: Path) -> None:
    """The monitor showed `0 epoch(s) of 6` and a stale ETA while the log said step 15/21."""
    from core.logs import progress
    from halo_tui.screens.monitor import MonitorScreen

    log = tmp_path / "6.log"
    log.write_text(
        "[halo 2026-12-03 16:39:37] start: python -m jobs.stages.train\n"
        "train: epoch 2/6 step 15/21 loss 0.2531 120 images/s · about 4 min of training left\n"
    )
    assert progress(log) == ("epoch 2/6 · step 15/21", "4 min")
    (tmp_path / "run.json").write_text(json.dumps({"epochs": 6}))
    monitor = MonitorScreen(tmp_path)
    monitor.live = progress(log)
    status = monitor._status([{"epoch": 0, "seconds": 20.0}], [])
    assert status == "1 of 6 epoch(s) done · now epoch 2/6 · step 15/21 · about 4 min left (the log's rate)"


async def test_10_the_footer_leads_with_help_and_the_palette_lists_every_action(engine) -> None:
    app = HaloApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.screen.query("FooterKey"))
        keys = [k for k in app.screen.query("FooterKey") if k.region.right <= 80 and k.region.width]
        shown = " ".join(str(k.render()) for k in keys)
        assert shown.split()[:2] == ["?", "Help"] and "Quit" in shown and "123" in shown.replace(" ", "")
        await pilot.press("ctrl+p")
        await until(pilot, lambda: app.screen.query("CommandList"))
        listed = app.screen.query_one("CommandList")
        await until(pilot, lambda: listed.option_count > 0)
        prompts = [str(listed.get_option_at_index(i).prompt) for i in range(listed.option_count)]
        assert any(p.startswith("Cancel (c)") for p in prompts) and any("Help (?)" in p for p in prompts)


async def test_11_jobs_at_80_columns_show_elapsed_and_started(engine) -> None:
    engine.wait(engine.launch("sleepy", params={"seconds": "0.1"}).id)
    app = HaloApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(DataTable)
        widths, right = {}, 0
        for column in table.columns.values():
            right += column.get_render_width(table)
            widths[str(column.label).split()[0]] = right
        assert widths["elapsed"] <= 80 and widths["started"] <= 80 and widths["exit"] <= 80


async def test_12_the_smaller_things(engine, candidates: Path, monkeypatch) -> None:
    """After a launch the cursor is on the new job; `f` keeps the cursor on its candidate;
    the side-by-side bands are named; help lists j/k and ctrl+d/u of the log."""
    from halo_tui.screens.help import HelpScreen
    from halo_tui.screens.log import LogScreen

    monkeypatch.setenv("USER", "alice")
    engine.wait(engine.launch("sleepy", params={"seconds": "0.1"}).id)
    engine.wait(engine.launch("sleepy", params={"seconds": "0.2"}).id)
    app = HaloApp(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=1)
        app.screen._launch("sleepy", None, {"seconds": "0.3"}, "local")  # as the launch form does
        await until(pilot, lambda: table.row_count == 3)
        await settle(app, pilot)
        assert app.screen.selected_id() == str(max(j.id for j in engine.store.list()))
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        listed = str(app.screen.query_one("#help Static").render())
        assert "log.down" in listed and "log.half_up" in listed and "^d" in listed
        await pilot.press("escape", "escape")
        await settle(app, pilot)
        assert isinstance(app.screen, JobsScreen)
        screen = await open_candidates(app, pilot, candidates)
        await pilot.press("a", "a", "a")  # #1 to #3 graded, the cursor on #4
        await until(pilot, lambda: not app.writes.pending)
        await pilot.press("right")  # on #5, ungraded
        await settle(app, pilot)
        assert screen._current()["rank"] == 5
        await pilot.press("f")  # ungraded: #5 is still listed, the cursor stays on it
        await settle(app, pilot)
        assert screen.filter == "ungraded" and screen._current()["rank"] == 5
        await pilot.press("f", "f")  # through disagreements (none listed) back to all: still #5
        await settle(app, pilot)
        assert screen.filter == "all" and screen._current()["rank"] == 5
        await pilot.press("v", "v", "v", "v")
        await settle(app, pilot)
        first = screen.query(StampTile).first()
        names = "".join(seg.text for seg in first.lines[0])
        assert names.split() == ["grz", "g", "r", "z"]


async def test_12_enter_is_named_for_what_it_opens(engine) -> None:
    """`?` on Jobs listed the table's generic "enter Select", not "Details" (which it does)."""
    from halo_tui.screens.help import HelpScreen
    from halo_tui.screens.job_details import DetailsScreen

    engine.wait(engine.launch("sleepy", params={"seconds": "0.1"}).id)
    app = HaloApp(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        listed = str(app.screen.query_one("#help Static").render())
        assert "jobs.details" in listed and "Select" not in listed
        await pilot.press("escape", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailsScreen))


async def test_the_selected_stamp_is_highlighted_and_follows_the_cursor(engine, candidates: Path) -> None:
    """From a new user's walk: no stamp's caption had any style (Text.render drops a Text's
    own style), so nothing on the grid said which stamp a grade would go to."""

    def highlighted(app) -> list[str]:
        rows = app.screen._compositor.render_strips()
        out = []
        for y in sorted({t.region.y + t.region.height - 1 for t in app.screen.query(StampTile)}):
            for text, style, _ in rows[y]:
                if text.strip().startswith("#") and style is not None and style.bgcolor is not None:
                    out.append(text.strip().split()[0])
        return out

    async with grading(engine, candidates, size=(120, 40)) as (app, pilot, screen):
        assert highlighted(app) == ["#1"]
        await pilot.press("right", "right")
        await until(pilot, lambda: highlighted(app) == ["#3"])


async def test_12_a_refused_launch_at_80x24_keeps_its_button_and_says_why(engine) -> None:
    """The launch form's reason for refusing went under the button and pushed it off the
    dialog at 80×24."""
    from textual.widgets import Button

    from halo_tui.screens.launch import LaunchScreen

    app = HaloApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        box = await open_launch(app, pilot, "sleepy")
        box.value = "--" + "no-such-option-" * 12 + " 1"  # a reason four lines long
        box.focus()
        await pilot.press("enter")
        error = app.screen.query_one("#launch-error")
        await until(pilot, lambda: str(error.render()).strip() != "")
        await settle(app, pilot)
        dialog, button = (
            app.screen.query_one("#dialog").region,
            app.screen.query_one("#launch-go", Button).region,
        )
        assert (
            button.height >= 3
            and dialog.contains_region(button)
            and app.screen.region.contains_region(dialog)
        )
        assert error.region.height >= 1 and dialog.contains_region(error.region)
        assert isinstance(app.screen, LaunchScreen) and engine.store.list() == []


async def test_14_a_held_pgdn_draws_only_the_page_it_stops_on(
    engine, make_candidates, tmp_path: Path
) -> None:
    path = make_candidates(tmp_path / "many.parquet", 240)
    app = HaloApp(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        screen = await open_candidates(app, pilot, path)
        placed = []
        place = screen._place
        screen._place = lambda page, *args: (placed.append(page), place(page, *args))
        from textual import events

        for _ in range(8):  # as a held key sends them: all queued before the first is handled
            app._driver.send_message(events.Key("pagedown", None))
        await until(pilot, lambda: placed and placed[-1] == 8)
        await settle(app, pilot)
        assert screen.page == 8 and len(placed) <= 3, placed  # not every page between


async def test_a_crash_is_one_line_and_keeps_the_grades(engine, candidates: Path, monkeypatch) -> None:
    """An unexpected exception: its traceback (no locals) in .halo/logs/console-<date>.log,
    one line for the terminal, the grades pressed before it in the store."""
    monkeypatch.setenv("USER", "alice")

    def broken(self) -> None:  # noqa: ANN001
        secret = "a local that must not be printed"  # noqa: F841
        raise RuntimeError("the export broke")

    monkeypatch.setattr(CandidatesScreen, "action_export", broken)
    app = HaloApp(engine)
    with pytest.raises(RuntimeError):
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            await open_candidates(app, pilot, candidates)
            await pilot.press("a", "b", "e")
            await pilot.pause(0.5)
    app.flush_writes()  # as the CLI does on the way out
    assert app.crash.startswith("RuntimeError: the export broke in test_console_review.py:")
    assert "(the traceback is in " in app.crash
    logged = next((engine.workspace.logs_dir).glob("console-*.log")).read_text()
    assert "RuntimeError: the export broke" in logged and "a local that must not" not in logged
    kept = {k[1]: c.grades["alice"] for k, c in grades.current(engine.store, "demo").items()}
    assert kept == {0: "A", 1: "B"}
