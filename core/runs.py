"""Training runs as the console and `halo runs` see them: `data/runs/<run>/` with `run.json`,
`metrics.jsonl` (one JSON line per epoch) and, after `eval`, `eval/eval-<split>.json`.
Reading only: the training stage writes them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import layout, storage
from core.errors import UsageError
from core.figures import figure
from core.intervals import binomial
from core.names import check_name, check_path

COMPARED = (
    "real_recall@fpr1e-2",  # held-out known lenses, thresholds on real galaxies (eval only)
    "real_recall@fpr1e-3",
    "realism_auc",  # the realism probe on the finder's features (0.5: injections look real to it)
    "realism_auc_pixels",  # ... on pixel statistics (0.5: no difference the probe can find at all)
    "lookalike_fpr@fpr1e-2",  # the lookalikes (all populations) above the controls' FPR 1e-2 threshold
    "auroc",
    "tpr@fpr1e-4",
    "tpr@fpr1e-3",
    "tpr@fpr1e-2",
    "tpr@fpr0",
    "fpr@tpr0.85",
    "fpr@tpr0.90",
)
REAL_FPRS = (1e-2, 1e-3)  # the real-galaxy thresholds real-lens recall is quoted at
# Metrics where lower is better: false-positive rates at a completeness, and every loss
# (train_loss, val_loss), matched by name, not by prefix alone.
LOWER_IS_BETTER = ("fpr@", "realism_", "lookalike_fpr")


def runs_root(workspace: Path) -> Path:
    return layout.runs_dir(workspace)


@dataclass
class Run:
    name: str
    path: Path | str  # a local folder or an s3:// URI
    info: dict[str, Any]
    epochs: list[dict[str, Any]]
    bad_lines: list[int] = field(default_factory=list)  # malformed metric lines, 1-based
    evaluation: dict[str, Any] | None = None

    @property
    def final(self) -> dict[str, Any]:
        """The figures a comparison shows: the test evaluation if there is one, else the last epoch."""
        if self.evaluation is not None:
            return {**self.evaluation["operating_points"], **real_recall(self.evaluation)}
        return self.epochs[-1] if self.epochs else {}


def real_recall(evaluation: dict[str, Any]) -> dict[str, Any]:
    """An evaluation's real-lens headline: recall of the split's held-out known lenses over all
    tiers at each real-galaxy threshold (None where unmeasured), how many lenses, the
    lookalikes' false-positive rate at the controls' FPR 1e-2 threshold, and the realism
    probes' AUCs with their 95 % intervals (jobs/learn/realism.py)."""
    real = evaluation.get("real_lenses") or {}
    cells = (real.get("tiers") or {}).get("all") or {}
    out: dict[str, Any] = {"real_lenses": real.get("n", 0)}
    for f in REAL_FPRS:
        cell = cells.get(f"FPR {f:.0e}")
        name = f"real_recall@fpr{f:.0e}".replace("e-0", "e-")
        out[name] = None if cell is None else cell["value"]
        out[f"{name}_found"] = None if cell is None else cell["k"]
    looks = [cells.get("FPR 1e-02") or {} for cells in (evaluation.get("lookalikes") or {}).values()]
    k, n = sum(c.get("k", 0) for c in looks), sum(c.get("n", 0) for c in looks)
    cell = binomial(k, n)  # each lookalike its own galaxy
    out["lookalike_fpr@fpr1e-2"] = cell["value"]
    out["lookalike_fpr@fpr1e-2_interval"] = (cell["lo"], cell["hi"]) if n else None
    gate = evaluation.get("realism") or {}
    for probe, name in (("finder", "realism_auc"), ("pixels", "realism_auc_pixels")):
        cell = gate.get(probe) or {}
        out[name] = cell.get("auc")
        out[f"{name}_interval"] = (cell["lo"], cell["hi"]) if "lo" in cell and "hi" in cell else None
    return out


def read_metrics(path: Path | str) -> tuple[list[dict[str, Any]], list[int]]:
    """The epoch lines of a metrics.jsonl (local or s3://); malformed or truncated lines are
    skipped and their numbers returned, so a half-written last line never hides the others."""
    epochs, bad = [], []
    text = storage.read_text(path) or ""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("epoch"), int):
                raise ValueError
        except ValueError:
            bad.append(number)
            continue
        epochs.append(row)
    return epochs, bad


def load(workspace: Path, name: str) -> Run:
    """A run by name (in the workspace) or by its folder's `s3://` URI."""
    if storage.is_s3(name):
        check_path("run", name)
        base: str = name.rstrip("/")
        name = check_name("run", base.rsplit("/", 1)[-1])
        if (
            storage.read_text(f"{base}/run.json") is None
            and storage.read_text(f"{base}/metrics.jsonl") is None
        ):
            raise UsageError(f"no run at {base} (no run.json or metrics.jsonl there)")
    else:
        check_name("run", name)
        path = runs_root(workspace) / name
        if not path.is_dir():
            known = ", ".join(list_names(workspace)) or "none yet"
            raise UsageError(f"no run {name!r} in {runs_root(workspace)}; runs: {known}")
        base = str(path)
    epochs, bad = read_metrics(f"{base}/metrics.jsonl")
    return Run(
        name,
        Path(base) if not storage.is_s3(base) else base,
        _json(f"{base}/run.json") or {},
        epochs,
        bad,
        _json(f"{base}/eval/{layout.eval_report('test')}"),
    )


def _json(uri: str) -> dict[str, Any] | None:
    try:
        return json.loads(storage.read_text(uri) or "null")
    except ValueError:
        return None


def list_names(workspace: Path) -> list[str]:
    """The runs: folders of the runs root named as a run can be (never a staging folder that
    an interrupted `train --force` left, `.demo.tmp-<pid>`)."""
    from core.names import is_name

    root = runs_root(workspace)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if is_name(p.name) and p.is_dir())


def lower_is_better(metric: str) -> bool:
    return metric.startswith(LOWER_IS_BETTER) or metric == "loss" or metric.endswith("_loss")


def better(metric: str, a: float, b: float) -> bool:
    """Whether `a` is a better value of `metric` than `b`."""
    return a < b if lower_is_better(metric) else a > b


def compare(runs: list[Run], targets: dict[str, Any]) -> dict[str, Any]:
    """The seed's comparison table: one row per metric, one column per run, the target, and
    which run is best on each row."""
    rows: list[dict[str, Any]] = []
    for metric in COMPARED:
        values = [r.final.get(metric) for r in runs]
        bounds = [(r.final.get("fpr_upper_bounds") or {}).get(metric) for r in runs]
        present = [(v, i) for i, v in enumerate(values) if v is not None]
        best = None
        if present:
            top, best = present[0]
            for v, i in present[1:]:
                if better(metric, v, top):
                    top, best = v, i
            if sum(v == top for v, _ in present) > 1:  # a tie: no run is better
                best = None
        target = targets.get(metric)
        rows.append(
            {
                "metric": metric,
                "values": values,
                "upper_bounds": bounds,
                "intervals": [r.final.get(f"{metric}_interval") for r in runs],
                "negatives": [r.final.get("n_neg_independent") for r in runs],
                "best": None if best is None else runs[best].name,
                "target": None if target is None else f"{target.op} {target.value:g}",
                # per run: True/False against the target, None where unmeasured or none set
                "met": [None if target is None or v is None else target.met(v) for v in values],
            }
        )
    setup: list[dict[str, Any]] = []
    for key in ("variant", "grid", "preset"):
        setup.append({"metric": key, "values": [r.info.get(key) for r in runs], "best": None, "target": None})
    sources = [source_model(r.info.get("source")) for r in runs]
    setup.append({"metric": "source model", "values": sources, "best": None, "target": None})
    arch = [(r.info.get("preset_values") or {}).get("arch") for r in runs]
    setup.append({"metric": "arch", "values": arch, "best": None, "target": None})
    setup.append({"metric": "epochs", "values": [len(r.epochs) for r in runs], "best": None, "target": None})
    counted = [_counts(r.final) for r in runs]
    setup.append(
        {"metric": "positives (galaxies)", "values": [c[0] for c in counted], "best": None, "target": None}
    )
    setup.append(
        {"metric": "negatives (galaxies)", "values": [c[1] for c in counted], "best": None, "target": None}
    )
    setup.append(
        {
            "metric": "real lenses held out",
            "values": [r.final.get("real_lenses", "-") if r.evaluation else "-" for r in runs],
            "best": None,
            "target": None,
        }
    )
    source = ["eval (test)" if r.evaluation else "last epoch (val)" for r in runs]
    setup.append({"metric": "figures from", "values": source, "best": None, "target": None})
    return {"runs": [r.name for r in runs], "rows": setup + rows}


def markdown(table: dict[str, Any]) -> str:
    runs = table["runs"]
    lines = ["| Metric | " + " | ".join(runs) + " | Target |", "|---" * (len(runs) + 2) + "|"]
    for row in table["rows"]:
        cells = [f"**{text}**" if best else text for text, best, _ in row_cells(table, row)]
        lines.append(f"| {row['metric']} | " + " | ".join(cells) + f" | {row['target'] or ''} |")
    return "\n".join(lines) + "\n"


def row_cells(table: dict[str, Any], row: dict[str, Any]) -> list[tuple[str, bool, bool | None]]:
    """Each run's cell of a `compare` row: its figure's text, whether it is the better run's
    (with more than one run), and whether it meets the target (None: unmeasured or none)."""
    n = len(table["runs"])
    bounds, negatives = row.get("upper_bounds") or [None] * n, row.get("negatives") or [None] * n
    met, intervals = row.get("met") or [None] * n, row.get("intervals") or [None] * n
    return [
        (
            figure(row["metric"], value, bound, negs) + ("" if not ci else f" [{ci[0]:.3f}, {ci[1]:.3f}]"),
            row["best"] == name and n > 1,
            ok,
        )
        for name, value, bound, negs, ok, ci in zip(
            table["runs"], row["values"], bounds, negatives, met, intervals, strict=True
        )
    ]


def source_model(source: dict[str, Any] | None) -> str:
    """How a run's injected sources were made (run.json's `source`, the grid's `[source]`)."""
    if not source:
        return "-"
    if source.get("mode") == "catalogue":  # an image's own shape: no morphology of ours
        return "real galaxies, catalogue"
    return f"{source.get('morphology', 'sersic')}, {source.get('mode', 'relative')}"


def _counts(figures: dict[str, Any]) -> tuple[str, str]:
    """ "rows (galaxies)" for the positives and negatives behind a run's figures."""
    out = []
    for kind in ("pos", "neg"):
        rows, galaxies = figures.get(f"n_{kind}"), figures.get(f"n_{kind}_independent")
        out.append("-" if rows is None else f"{rows} ({galaxies if galaxies is not None else '?'})")
    return out[0], out[1]


# val (last epoch), test (eval); and their column headers in `halo runs list` and the Runs screen
OVERVIEW = ("auroc", "tpr@fpr1e-3", "test_auroc", "test_tpr@fpr1e-3", "test_real_recall@fpr1e-2")
OVERVIEW_HEADERS = ("val auroc", "val tpr@fpr1e-3", "test auroc", "test tpr@fpr1e-3", "real recall@fpr1e-2")
# the same, two lines each, for a table that must fit 80 columns (the Runs screen)
OVERVIEW_HEADERS_2 = ("val\nauroc", "val\ntpr@1e-3", "test\nauroc", "test\ntpr@1e-3", "real\nrecall@1e-2")


def overview(workspace: Path, name: str) -> dict[str, Any]:
    """A run in one row: its epochs, the last epoch's validation AUROC and tpr@fpr1e-3 and,
    once evaluated, the test split's; `_unmeasured` names the figures that could not be
    measured (too few independent negatives), as opposed to missing."""
    run = load(workspace, name)
    last = run.epochs[-1] if run.epochs else {}
    tested = (run.evaluation or {}).get("operating_points", {})
    from core.rounds import lineage_parent

    return {
        "run": name,
        "parent": lineage_parent(workspace, name),  # the run whose grades trained it, if a round
        "epochs": len(run.epochs),
        "auroc": last.get("auroc"),
        "tpr@fpr1e-3": last.get("tpr@fpr1e-3"),
        "evaluated": run.evaluation is not None,
        "test_auroc": tested.get("auroc"),
        "test_tpr@fpr1e-3": tested.get("tpr@fpr1e-3"),
        "test_real_recall@fpr1e-2": real_recall(run.evaluation or {})["real_recall@fpr1e-2"],
        "real_found": real_recall(run.evaluation or {})["real_recall@fpr1e-2_found"],
        "real_lenses": real_recall(run.evaluation or {})["real_lenses"],
        "_unmeasured": {*last.get("unmeasured", {}), *(f"test_{k}" for k in tested.get("unmeasured", {}))},
    }


def lineage_line(workspace: Path, name: str) -> str:
    """A run's lineage in a line: the round it was trained in (its parent, the labels it took
    from the parent's grades), or "" for a run trained on injections and known lenses alone."""
    from core.rounds import lineage as round_of

    lineage = round_of(workspace, name)
    if lineage is None:
        return ""
    used = lineage.get("used") or {}
    aside = (lineage.get("set_aside") or {}).get("evaluation split", 0)
    return (
        f"{name} <- {lineage['parent']}: trained on its grades ({used.get('positives', 0)} lenses,"
        f" {used.get('negatives', 0)} non-lenses; {aside} set aside in the test split),"
        f" from {'its weights' if lineage.get('init') == 'parent' else 'scratch'}"
    )


def overview_cell(row: dict[str, Any], key: str) -> str:
    """A figure of `overview`'s row: `-` where there is none, `n/m` where not measurable."""
    if row[key] is None:
        return (
            "n/m"
            if key in row["_unmeasured"] or (key.startswith("test_real") and row.get("real_lenses"))
            else "-"
        )
    if key.startswith("test_real"):  # a share of a few held-out lenses: found of how many
        return f"{row[key] * 100:.0f}% {row['real_found']}/{row['real_lenses']}"
    return figure(key.removeprefix("test_"), row[key])
