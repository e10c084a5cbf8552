"""The completeness map as a coloured heatmap: θE down, src_dmag across, each cell the
completeness at one operating threshold (red 0 % … green 100 %), with the number of injections
behind it, '-' where a cell holds none. Read from a run's `eval/eval-test.json`."""

from __future__ import annotations

from typing import Any

from rich.color import Color
from rich.style import Style
from rich.text import Text

CELL = 6  # characters per cell: " 87% " or "100% "


def _colour(value: float) -> Color:
    """Red (0) through yellow (0.5) to green (1)."""
    value = min(max(value, 0.0), 1.0)
    if value < 0.5:
        return Color.from_rgb(200, int(60 + 280 * value), 60)
    return Color.from_rgb(int(200 - 300 * (value - 0.5)), 200, 60)


def thresholds(evaluation: dict[str, Any] | None) -> list[str]:
    """The operating thresholds an evaluation holds maps for, strictest last."""
    return list((evaluation or {}).get("completeness", {}))


def heatmap(evaluation: dict[str, Any] | None, threshold: str | None = None, title: str = "") -> Text:
    """The θE × src_dmag completeness map at `threshold` (the first one by default)."""
    names = thresholds(evaluation)
    if not names:
        return Text(f"{title}\nno completeness map: run `halo stage eval` (this run has none yet)")
    name = threshold if threshold in names else names[0]
    grid = evaluation["completeness"][name]["theta_e_x_src_dmag"]  # type: ignore[index]
    text = Text()
    text.append(f"{title}\n" if title else "", style="bold")
    text.append(f"completeness at {name} (θE ″ down, src_dmag across)\n")
    text.append(" " * 6 + "".join(f"{d:>{CELL}}" for d in grid["src_dmag"]) + "\n")
    for theta, row in zip(grid["theta_e"], grid["cells"], strict=True):
        text.append(f"{theta:>5} ")
        for cell in row:
            if not cell.get("n"):
                text.append(f"{'-':>{CELL - 1}} ")
                continue
            value = cell["value"] or 0.0
            style = Style(color="black", bgcolor=_colour(value))
            text.append(f"{value * 100:>{CELL - 2}.0f}% ", style=style)
        text.append("\n")
    counts = [c["n"] for row in grid["cells"] for c in row if c.get("n")]
    if counts:
        text.append(f"{min(counts)}-{max(counts)} injections a cell; the report has the intervals")
    return text
