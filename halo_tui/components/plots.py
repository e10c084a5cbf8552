"""Terminal plots (plotext, through textual-plotext) with their axes: a metric per epoch, a
ROC curve. A single point is a point on labelled axes, never a bar filling its box (what a
sparkline of one value did). Imported by the screens that draw plots only: the CLI starts
without plotext."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from textual_plotext import PlotextPlot

# Series of the monitor's two plots: losses (their own scale), and the rates in [0, 1].
LOSSES = ("train_loss", "val_loss")
RATES = ("auroc", "tpr@fpr1e-2", "tpr@fpr1e-3")
LEGEND_ROOM = 0.3  # the part of the y range added above the data per legend line
# one marker per series, so that series differ by shape too (NO_COLOR draws them all grey)
MARKERS = ("dot", "x", "+", "o", "*")


class EpochPlot(PlotextPlot):
    """Metrics per epoch: one line (with markers) per metric, `None` values left out."""

    def __init__(self, title: str, metrics: Sequence[str], unit_range: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.title, self.metrics, self.unit_range = title, tuple(metrics), unit_range
        self.drawn: dict[str, list[tuple[int, float]]] = {}

    def show(self, epochs: list[dict[str, Any]]) -> None:
        """Epochs numbered from 1 (as the log and the table number them); the y range leaves
        room above the data for the legend, which would otherwise cover the first points."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        plt.xlabel("epoch")
        self.drawn = {}
        for n, metric in enumerate(self.metrics):
            points = [
                (int(line["epoch"]) + 1, float(line[metric]))
                for line in epochs
                if isinstance(line.get(metric), int | float) and not isinstance(line.get(metric), bool)
            ]
            if points:
                self.drawn[metric] = points
                xs, ys = zip(*points, strict=True)
                plt.plot(list(xs), list(ys), label=metric, marker=MARKERS[n % len(MARKERS)])
        values = [y for points in self.drawn.values() for _, y in points]
        if self.unit_range:
            low, high = 0.0, 1.0
        elif values:
            low, high = min(values), max(values)
            low, high = (low - 0.5, high + 0.5) if high - low < 1e-9 else (low, high)
        if values or self.unit_range:
            room = LEGEND_ROOM * len(self.drawn) * (high - low)
            plt.ylim(low, high + room)
            # three ticks: more collide on a 12-row plot, and which label plotext keeps then
            # changed with the plot's height as the layout settled
            plt.yticks([low, (low + high) / 2, high])
        if epochs:
            last = max(int(line["epoch"]) for line in epochs) + 1
            plt.xlim(0.5, max(last, 2) + 0.5)
            plt.xticks(list(range(1, last + 1, max(1, last // 8))))
        self.refresh()


class RocPlot(PlotextPlot):
    """ROC curves of evaluated runs against log10 of the FPR (where lens finders work): the
    logarithm is taken here and the ticks named by decade (1e-3), because plotext's own log
    scale takes the log of its tick positions again and fails on narrow plots."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.drawn: dict[str, int] = {}

    def show(self, curves: dict[str, dict[str, list[float]]]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("ROC (test split)")
        plt.xlabel("false-positive rate")
        plt.ylabel("completeness")
        self.drawn = {}
        lowest = 0
        for n, (name, curve) in enumerate(curves.items()):
            pairs = [(math.log10(f), t) for f, t in zip(curve["fpr"], curve["tpr"], strict=True) if f > 0]
            if pairs:
                xs, ys = zip(*pairs, strict=True)
                plt.plot(list(xs), list(ys), label=name, marker=MARKERS[n % len(MARKERS)])
                self.drawn[name] = len(pairs)
                lowest = min(lowest, math.floor(min(xs)))
        decades = list(range(lowest, 1))
        plt.xlim(lowest, 0)
        plt.xticks(decades, ["1" if d == 0 else f"1e{d}" for d in decades])
        plt.ylim(0, 1)
        self.refresh()
