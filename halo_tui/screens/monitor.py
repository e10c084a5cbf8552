"""The training monitor: a run's per-epoch metrics from metrics.jsonl, live.

The table shows every epoch; each metric is coloured against the configured targets, the best
value so far is bold, a figure that could not be measured shows as "n/m", one bounded above
only (no negative passed) as "< bound"; the validation negatives are counted in galaxies
(`neg gal.`), the unit every figure's measurability rests on, and `pauc` is the partial AUROC
best.pt is chosen on. Two plots follow the losses and the rates (AUROC, tpr@fpr) per epoch on
labelled axes. Epochs are numbered from 1, as train's log and the jobs table number them.
While the run's train job runs, the status line says which epoch and step it is on and the
time left as the log says it (the rate of the epoch under way); otherwise the ETA is the mean
epoch time times the epochs left."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Static

from core.figures import figure
from core.layout import run_name_of
from core.logs import progress
from core.runs import better, read_metrics
from core.states import JobState
from halo_tui.format import TARGET_STYLES, duration, visible
from halo_tui.messages import MetricsRead
from halo_tui.screens.base import HaloScreen

POLL_S = 0.5
SHOWN = (
    "train_loss",
    "val_loss",
    "auroc",
    "tpr@fpr1e-2",
    "tpr@fpr1e-3",
    "tpr@fpr1e-4",
    "tpr@fpr0",
    "fpr@tpr0.85",
    "pauc",
    "n_neg_independent",
    "seconds",
)
LABELS = {"n_neg_independent": "neg gal."}


def cell(
    metric: str, value: Any, best: bool, target: Any, bound: float | None = None, negatives: int | None = None
) -> Text:
    text = figure(metric, value, bound, negatives)
    if value is None:
        return Text(text, style="dim")
    if isinstance(value, int) or metric == "seconds":
        return Text(text)
    style = TARGET_STYLES[None if target is None else target.met(value)]
    return Text(text, style=f"{style} bold" if best else style)


class MonitorScreen(HaloScreen):
    CSS = """
    MonitorScreen #plots { height: 12; }
    MonitorScreen #plots > * { width: 1fr; }
    """
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="monitor.back")]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.mtime: float | None = None
        self.epochs: list[dict[str, Any]] = []
        self.bad: list[int] = []
        self.live: tuple[str | None, str | None] = (None, None)  # (progress, time left) from the log

    def compose(self) -> ComposeResult:
        yield Static(Text(visible(f"run {self.run_dir.name}")), id="monitor-title")
        yield DataTable(id="metrics", zebra_stripes=True, fixed_columns=1)  # epoch stays in view
        from halo_tui.components.plots import LOSSES, RATES, EpochPlot

        with Horizontal(id="plots"):
            yield EpochPlot("loss", LOSSES, id="plot-loss")
            yield EpochPlot("rates", RATES, unit_range=True, id="plot-rates")
        yield Static("", id="monitor-status", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("epoch", *(LABELS.get(m, m) for m in SHOWN))
        self.poll()

    @work(thread=True, exclusive=True, group="monitor")
    def poll(self) -> None:
        path = self.run_dir / "metrics.jsonl"
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        log = self._train_log()
        live = progress(log) if log is not None else (None, None)
        if mtime != self.mtime:  # re-read only when the file changed
            self.post_message(MetricsRead(mtime, *read_metrics(path), live=live))
        else:
            self.post_message(MetricsRead(mtime, None, [], live=live))

    def _train_log(self) -> Path | None:
        """The log of the running train job that writes this run, if one does."""
        engine = self.app.engine
        config = engine.workspace.config
        for job in engine.store.list(states=[JobState.RUNNING], stage="train", limit=20):
            if job.log_path and run_name_of(config, job.variant, job.params) == self.run_dir.name:
                return Path(job.log_path)
        return None

    def on_metrics_read(self, message: MetricsRead) -> None:
        if message.epochs is not None:
            self._show(message.mtime, message.epochs, message.bad)
        if message.live != self.live or message.epochs is not None:
            self.live = message.live
            self.query_one("#monitor-status", Static).update(self._status(self.epochs, self.bad))
        self.set_timer(POLL_S, self.poll)

    def _show(self, mtime: float | None, epochs: list[dict[str, Any]], bad: list[int]) -> None:
        self.mtime, self.epochs, self.bad = mtime, epochs, bad
        targets = self.app.engine.workspace.config.targets
        table = self.query_one(DataTable)
        table.clear()
        best: dict[str, Any] = {}
        for line in epochs:
            for m in SHOWN:
                v = line.get(m)
                if isinstance(v, float) and (m not in best or better(m, v, best[m])):
                    best[m] = v
        for line in epochs:
            table.add_row(
                str(line["epoch"] + 1),  # 1-based, as the log and the jobs table count
                *(
                    cell(
                        m,
                        line.get(m),
                        line.get(m) == best.get(m),
                        targets.get(m),
                        (line.get("fpr_upper_bounds") or {}).get(m),
                        line.get("n_neg_independent"),
                    )
                    for m in SHOWN
                ),
                key=str(line["epoch"]),
            )
        for plot in self.query("#plots > *"):
            plot.show(epochs)

    def _status(self, epochs: list[dict[str, Any]], bad: list[int]) -> str:
        """`2 of 6 epochs done · epoch 3/6 · step 15/21 · about 4 min left`."""
        try:
            total = json.loads((self.run_dir / "run.json").read_text()).get("epochs")
        except (OSError, ValueError, AttributeError):
            total = None
        parts = [f"{len(epochs)}" + (f" of {total}" if total else "") + " epoch(s) done"]
        now, left = self.live
        if now:
            parts.append(f"now {now}")
        times = [line["seconds"] for line in epochs if isinstance(line.get("seconds"), (int, float))]
        if left:
            parts.append(f"about {left} left (the log's rate)")
        elif total and times and len(epochs) < total:
            parts.append(f"ETA {duration(sum(times) / len(times) * (total - len(epochs)))}")
        if bad:
            parts.append(f"skipped malformed line(s) {bad}")
        return " · ".join(parts)
