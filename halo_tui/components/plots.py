"""Terminal plots (plotext, through textual-plotext) with their axes: a metric per epoch, a
ROC curve. A single point is a point on labelled axes, never a bar filling its box (what a
sparkline of one value did). Imported by the screens that draw plots only: the CLI starts
without plotext."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual_plotext import PlotextPlot

# Series of the monitor's two plots: losses (their own scale), and the rates in [0, 1].
LOSSES = ("train_loss", "val_loss")
RATES = ("auroc", "tpr@fpr1e-2", "tpr@fpr1e-3")


class EpochPlot(PlotextPlot):
    """Metrics per epoch: one line (with markers) per metric, `None` values left out."""

    def __init__(self, title: str, metrics: Sequence[str], unit_range: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.title, self.metrics, self.unit_range = title, tuple(metrics), unit_range
        self.drawn: dict[str, list[tuple[int, float]]] = {}

    def show(self, epochs: list[dict[str, Any]]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        plt.xlabel("epoch")
        self.drawn = {}
        for metric in self.metrics:
            points = [
                (int(line["epoch"]), float(line[metric]))
                for line in epochs
                if isinstance(line.get(metric), int | float) and not isinstance(line.get(metric), bool)
            ]
            if points:
                self.drawn[metric] = points
                xs, ys = zip(*points, strict=True)
                plt.plot(list(xs), list(ys), label=metric, marker="dot")
        if self.unit_range:
            plt.ylim(0, 1)
        if epochs:
            last = max(int(line["epoch"]) for line in epochs)
            plt.xlim(-0.5, max(last, 1) + 0.5)
            plt.xticks(list(range(0, last + 1, max(1, (last + 1) // 8))))
        self.refresh()


class RocPlot(PlotextPlot):
    """ROC curves of evaluated runs, the FPR axis logarithmic (where lens finders work)."""

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
        plt.xscale("log")
        self.drawn = {}
        for name, curve in curves.items():
            pairs = [(f, t) for f, t in zip(curve["fpr"], curve["tpr"], strict=True) if f > 0]
            if pairs:
                xs, ys = zip(*pairs, strict=True)
                plt.plot(list(xs), list(ys), label=name)
                self.drawn[name] = len(pairs)
        plt.ylim(0, 1)
        self.refresh()
