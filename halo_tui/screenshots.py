"""The README's screenshots, taken from a real workspace (the demo's) as a person would see it:
the jobs table, the training monitor of its run and the candidates, as SVG through Textual's
own screenshot, reached with the console's keys (`2` `enter`, `esc`, `3`). Read-only, so
nothing in the workspace changes; the model's scores shown (blind rate 0).

    python -m halo_tui.screenshots [-w halo-demo] [--out docs/screenshots]   (make screenshots)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from core import layout
from core.errors import EXIT_USAGE, HaloError, UsageError

SIZE = (120, 34)
SHOTS = ("jobs", "monitor", "candidates")


async def _settle(pilot: Any) -> None:
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.3)


async def shoot(workspace: Path, out: Path) -> list[Path]:
    """Save the three screens of `workspace` as `out/<screen>.svg`; return their paths."""
    from core.engine import Engine
    from core.workspace import Workspace
    from halo_tui.app import HaloApp

    ws = Workspace(workspace)
    if not ws.has_store:
        raise UsageError(ws.not_yet())
    app = HaloApp(Engine(ws), readonly=True, blind_rate=0.0)
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    async with app.run_test(size=SIZE) as pilot:
        for name, keys in zip(SHOTS, ((), ("2", "enter"), ("escape", "3")), strict=True):
            for key in keys:
                await pilot.press(key)
                await _settle(pilot)
            await _settle(pilot)
            tmp = out / f".{name}.svg.tmp"
            app.save_screenshot(filename=tmp.name, path=str(out))
            saved.append(tmp.replace(out / f"{name}.svg"))
    return saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m halo_tui.screenshots", description=__doc__.splitlines()[0])
    p.add_argument("-w", "--workspace", type=Path, default=Path(layout.DEMO_DIR))
    p.add_argument("--out", type=Path, default=Path("docs") / "screenshots")
    args = p.parse_args(argv)
    try:
        saved = asyncio.run(shoot(args.workspace.resolve(), args.out))
    except HaloError as err:
        print(f"screenshots: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
