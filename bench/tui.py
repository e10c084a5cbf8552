"""Console figures, each against a baseline measured in the same run:

1. a page of 12 binned stamps rendered as the console renders them (views, binning,
   half-block strips), against decoding the same stamps from a candidates file as `score`
   writes it (median over 20 pages), and one full-size stamp;
2. the last screen of a 1 GB log shown in the console (Textual pilot, from pushing the log
   screen to the tail on screen), against `tail -n 50` on the same file;
3. peak memory while browsing a 1,000,000-row candidates file (paging through it), against
   the memory of the process before the file was opened;
4. CPU used by an idle console over 30 s (a real `halo` in tmux), against the same 30 s
   of wall time;
5. a key press on Candidates, against an unbound key's round trip: a cursor move, one page
   turn and a burst of 10 (a held pgdn), each timed to the page drawn; the burst against
   one press (goal <= 2x: the pages between are skipped).

    python bench/tui.py [--log-gb 1] [--rows 1000000] [--idle 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.colour import sdss_rgb
from core.stamps import arrow_metadata
from halo_tui.components.stamp import strips


def stamp_pages(root: Path, pages: int = 20) -> None:
    """Pages of 12 stamps as the console shows them, from a candidates file written as `score`
    writes it (zstd, row groups of 256): decoding a page's stamps (CandidateTable.stamps,
    the baseline) against rendering them as 2×2-binned half blocks (render_stamps), the
    median over `pages` pages; and one full-size stamp."""
    import gc
    import statistics

    from core.candidates import CandidateTable
    from core.stamps import write_stamps
    from halo_tui.components.stamp import render_rgb, render_stamps

    rng = np.random.default_rng(0)
    n = 12 * pages
    stamps = [rng.normal(0, 0.05, (3, 64, 64)).astype(np.float32).tobytes() for _ in range(n)]
    path = root / "page.parquet"
    ids = {"rank": np.arange(1, n + 1), "brickname": ["1499p022"] * n, "objid": np.arange(n)}
    page_file = pa.table({**ids, "stamp": stamps}).replace_schema_metadata(arrow_metadata((3, 64, 64)))
    write_stamps(page_file, path, "zstd")
    table = CandidateTable(path)
    decode_s, render_s, collected_s = [], [], []
    for page in range(pages):
        start = time.perf_counter()
        page_stamps = table.stamps(list(range(12 * page, 12 * page + 12)))
        decode_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        render_stamps(page_stamps, "grz", 2)
        render_s.append(time.perf_counter() - start)
        start = time.perf_counter()  # the same without holding the collector off
        [strips(render_rgb(stamp, "grz", 2)) for stamp in page_stamps]
        collected_s.append(time.perf_counter() - start)
        gc.collect()
    start = time.perf_counter()
    strips(sdss_rgb(page_stamps[0]))
    full = time.perf_counter() - start
    base, page_time = statistics.median(decode_s), statistics.median(render_s)
    print(
        f"page of 12 binned stamps: {page_time * 1000:.1f} ms to render (median of {pages} pages;"
        f" {statistics.median(collected_s) * 1000:.1f} ms with the garbage collector running);"
        f" decoding them from the candidates file: {base * 1000:.1f} ms (page ratio {page_time / base:.1f}x,"
        f" goal <= 2x); one full-size stamp: {full * 1000:.1f} ms"
    )


def log_tail(root: Path, gigabytes: float) -> None:
    path = root / "big.log"
    line = (
        b"[halo 2026-11-26 00:00:00] train: epoch 3 step 12345 loss 0.0123 812 images/s " + b"x" * 40 + b"\n"
    )
    block = line * (64 * 1024 * 1024 // len(line))
    with path.open("wb") as out:
        for _ in range(int(gigabytes * 1024 / 64)):
            out.write(block)
    start = time.perf_counter()
    subprocess.run(["tail", "-n", "50", str(path)], stdout=subprocess.DEVNULL, check=True)
    base = time.perf_counter() - start

    from core.engine import Engine
    from core.workspace import Workspace
    from halo_tui.app import HaloApp
    from halo_tui.components.logview import LogView
    from halo_tui.screens.log import LogScreen

    async def shown() -> float:
        app = HaloApp(Engine(Workspace(root)))
        async with app.run_test(size=(120, 50)) as pilot:
            await pilot.pause(0.2)
            start = time.perf_counter()
            app.push_screen(LogScreen(path, "big"))
            while True:
                await pilot.pause(0)
                views = app.screen.query(LogView)
                if views and views.first().line_count >= 50:
                    return time.perf_counter() - start

    elapsed = asyncio.run(shown())
    size = path.stat().st_size / 2**30
    print(
        f"last screen of a {size:.2f} GiB log: {elapsed * 1000:.1f} ms in the console; "
        f"tail -n 50: {base * 1000:.1f} ms (ratio {elapsed / base:.1f}x)"
    )
    path.unlink()


def candidates_memory(root: Path, rows: int) -> None:
    path = root / "candidates.parquet"
    zero = np.zeros((3, 64, 64), np.float32).tobytes()
    schema = pa.schema(
        [
            ("rank", pa.int64()),
            ("brickname", pa.string()),
            ("objid", pa.int64()),
            ("ra", pa.float64()),
            ("dec", pa.float64()),
            ("split", pa.string()),
            ("psfsize_r", pa.float64()),
            ("score", pa.float64()),
            ("run", pa.string()),
            ("ok", pa.bool_()),
            ("fail_reason", pa.string()),
            ("stamp", pa.binary()),
        ],
        metadata=arrow_metadata((3, 64, 64)),
    )
    with pq.ParquetWriter(
        path, schema, compression="zstd", use_dictionary=["brickname", "split", "run"]
    ) as out:
        chunk = 1000
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            out.write_table(
                pa.table(
                    {
                        "rank": np.arange(start + 1, start + n + 1),
                        "brickname": [f"{(start // 50000):04d}p022"] * n,
                        "objid": np.arange(n),
                        "ra": np.full(n, 150.0),
                        "dec": np.full(n, 2.0),
                        "split": ["test"] * n,
                        "psfsize_r": np.full(n, 1.2),
                        "score": np.linspace(1, 0, n),
                        "run": ["bench"] * n,
                        "ok": [True] * n,
                        "fail_reason": [None] * n,
                        "stamp": [zero] * n,
                    },
                    schema=schema,
                ),
                row_group_size=256,
            )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    from core.engine import Engine
    from core.workspace import Workspace
    from halo_tui.app import HaloApp
    from halo_tui.screens.candidates import CandidatesScreen

    async def browse() -> None:
        app = HaloApp(Engine(Workspace(root)))
        async with app.run_test(size=(160, 50)) as pilot:
            app.push_screen(CandidatesScreen(path, "bench"))
            for _ in range(40):
                await pilot.pause(0.05)
                await app.workers.wait_for_complete()
            for _ in range(10):
                await pilot.press("pagedown")
                await app.workers.wait_for_complete()
            await pilot.press("f")
            await app.workers.wait_for_complete()

    asyncio.run(browse())
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"browsing {rows:,} candidates ({path.stat().st_size / 2**20:.0f} MiB file): "
        f"peak RSS {after / 1024:.0f} MiB, "
        f"{(after - before) / 1024:.0f} MiB above the {before / 1024:.0f} MiB before opening it"
    )


def key_latency(root: Path) -> None:
    """Key presses on Candidates timed to the result a person sees (Textual pilot, 120×40):
    each key sent as the terminal sends it (no pilot wait). A cursor move, to every widget
    having handled it; a page turn, to the moment its page is placed (`_place`), one press at
    a time onto a page rendered ahead (as after reading a page) and onto one not rendered yet;
    a burst of 10 pgdn sent back to back (a held key), to the moment the page the keys stopped
    on is placed. The baseline: an unbound key (f12), to every widget having handled it."""
    import statistics

    from textual import events

    from core.engine import Engine
    from core.workspace import Workspace
    from halo_tui.app import HaloApp
    from halo_tui.components.stamp_tile import StampTile
    from halo_tui.screens.candidates import CandidatesScreen

    rng = np.random.default_rng(1)
    n = 2400
    path = root / "latency.parquet"
    table = pa.table(
        {
            "rank": np.arange(1, n + 1),
            "brickname": ["1499p022"] * n,
            "objid": np.arange(n),
            "ra": np.linspace(150, 151, n),
            "dec": np.full(n, 2.0),
            "score": np.linspace(1, 0, n),
            "stamp": [rng.normal(0, 0.05, (3, 64, 64)).astype(np.float32).tobytes() for _ in range(n)],
        }
    )
    pq.write_table(table.replace_schema_metadata(arrow_metadata((3, 64, 64))), path, row_group_size=256)

    async def presses() -> dict[str, list[float]]:
        app = HaloApp(Engine(Workspace(root)))
        times: dict[str, list[float]] = {
            "f12": [],
            "right": [],
            "pagedown": [],
            "pagedown, not rendered ahead": [],
            "burst of 10": [],
        }
        async with app.run_test(size=(120, 40)) as pilot:
            app.push_screen(CandidatesScreen(path, "bench"))
            while not (isinstance(app.screen, CandidatesScreen) and app.screen.query(StampTile)):
                await pilot.pause(0.05)
            await app.workers.wait_for_complete()
            screen = app.screen
            placed: list[int] = []
            place = screen._place

            def placing(page: int, *args: object) -> None:
                place(page, *args)
                placed.append(page)

            screen._place = placing

            async def until_placed(page: int) -> None:
                """The page placed, and drawn: every widget has handled what placing it set off."""
                while not placed or placed[-1] != page:
                    await asyncio.sleep(0.0005)
                for _ in range(2):
                    await pilot._wait_for_screen()

            def send(key: str) -> None:
                app._driver.send_message(events.Key(key, None))

            for key in ["f12"] * 30 + ["right"] * 30:  # f12 is bound to nothing: the baseline
                await app.workers.wait_for_complete()
                await pilot.pause()
                before, start = screen.position, time.perf_counter()
                send(key)
                while key == "right" and screen.position != before + 1:
                    await asyncio.sleep(0.0005)
                for _ in range(2):  # every widget has handled what the key set off (and passed on)
                    await pilot._wait_for_screen()
                times[key].append(time.perf_counter() - start)
            for ahead in (True, False):  # the page ahead rendered (as after reading a page), or not
                for _ in range(20):
                    await app.workers.wait_for_complete()
                    await pilot.pause()
                    if not ahead:
                        screen.cache.clear()
                    target, start = screen.page + 1, time.perf_counter()
                    send("pagedown")
                    await until_placed(target)
                    times["pagedown" if ahead else "pagedown, not rendered ahead"].append(
                        time.perf_counter() - start
                    )
            for _ in range(6):
                await app.workers.wait_for_complete()
                await pilot.pause()
                target, start = screen.page + 10, time.perf_counter()
                for _ in range(10):
                    send("pagedown")
                await until_placed(target)
                times["burst of 10"].append(time.perf_counter() - start)
        return times

    times = asyncio.run(presses())
    base = statistics.median(times.pop("f12"))
    medians = {}
    for key, values in times.items():
        values = sorted(values)
        p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
        medians[key] = median = statistics.median(values)
        print(
            f"Candidates, {key}: median {median * 1000:.1f} ms, 95th percentile {p95 * 1000:.1f} ms"
            f" to the screen drawn; an unbound key's round trip {base * 1000:.1f} ms, so the screen's"
            f" own work {(median - base) * 1000:.1f} ms (goal: within 50 ms)"
        )
    burst, fresh = medians["burst of 10"], medians["pagedown, not rendered ahead"]
    print(
        f"a held pgdn (burst of 10) lands its page in {burst * 1000:.0f} ms: "
        f"{burst / medians['pagedown']:.2f}x one pgdn onto a page rendered ahead "
        f"({medians['pagedown'] * 1000:.0f} ms), {burst / fresh:.2f}x one onto a page not rendered "
        f"yet ({fresh * 1000:.0f} ms); goal <= 2x (the pages in between are skipped; drawing every "
        f"page would cost about {10 * fresh * 1000:.0f} ms)"
    )


def idle_cpu(root: Path, seconds: float) -> None:
    if shutil.which("tmux") is None:
        print("idle CPU: tmux is not installed")
        return
    from core.workspace import Workspace

    Workspace(root).store  # noqa: B018 - a workspace already, so the console opens without asking
    session = f"halo-bench-{os.getpid()}"
    halo = str(Path(sys.executable).with_name("halo"))
    env = {**os.environ, "HALO_WORKSPACE": str(root), "TERM": "xterm-256color"}
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40", halo], check=True, env=env
    )
    try:
        time.sleep(5)  # started and settled
        pid = subprocess.run(
            ["tmux", "list-panes", "-t", session, "-F", "#{pane_pid}"], capture_output=True, text=True
        ).stdout.strip()

        def cpu() -> float:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        first, start = cpu(), time.monotonic()
        time.sleep(seconds)
        used, wall = cpu() - first, time.monotonic() - start
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    print(
        f"idle console: {used:.2f} s of CPU in {wall:.0f} s of wall time "
        f"({100 * used / wall:.2f} % of one core)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-gb", type=float, default=1.0)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="halo-bench-tui-"))
    try:
        if args.memory_only:  # in a process of its own, so its peak RSS is its own
            candidates_memory(root, args.rows)
            return
        stamp_pages(root)
        key_latency(root)
        log_tail(root, args.log_gb)
        subprocess.run([sys.executable, __file__, "--memory-only", "--rows", str(args.rows)], check=True)
        idle_cpu(root, args.idle)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
