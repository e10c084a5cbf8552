"""train, eval and score on real injected stamps: a tiny CPU run, resuming, the outputs."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from core.layout import runs_dir, stamps_dir
from core.runs import read_metrics
from jobs.learn import training
from jobs.runtime.stage import StageError
from jobs.stages import eval as eval_stage
from jobs.stages import score, train
from jobs.stats.operating_points import pauc_max_fpr
from jobs.survey.catalogs import read_positions

# its module-scoped fixtures are built once: pytest-xdist runs the file on one worker
pytestmark = pytest.mark.xdist_group("test_train")

ARGS = ["--variant", "v4_sota", "--preset", "test_cpu"]


def _rows(workspace: Path, split: str) -> int:
    """Usable stamp rows of a split (controls are one row per galaxy, so not a round number)."""
    parts = sorted(stamps_dir(workspace, "v4_sota", "grid_sota").glob("part-*.parquet"))
    table = pq.read_table(parts, columns=["split", "ok"])
    return sum(1 for s, ok in zip(*table.to_pydict().values(), strict=True) if s == split and ok)


def _train_argv(workspace: Path, run: str, *extra: str) -> list[str]:
    """`python -m jobs.stages.train` on the test preset, as the engine would launch it."""
    return [
        sys.executable,
        "-m",
        "jobs.stages.train",
        "--workspace",
        str(workspace),
        *ARGS,
        "--run",
        run,
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(stamps_ws: Path) -> Path:
    train.run(stamps_ws, "v4_sota", preset="test_cpu", run="tiny")
    return stamps_ws


def test_a_tiny_cpu_run_lowers_its_loss_and_writes_its_metrics(trained: Path) -> None:
    run_dir = runs_dir(trained) / "tiny"
    lines, bad = read_metrics(run_dir / "metrics.jsonl")
    assert bad == [] and [line["epoch"] for line in lines] == [0, 1, 2]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    for line in lines:
        for key in (
            "train_loss",
            "val_loss",
            "auroc",
            "tpr@fpr1e-2",
            "fpr@tpr0.85",
            "n_pos",
            "n_neg",
            "lr",
            "seconds",
            "images/s",
        ):
            assert key in line
        assert line["tpr@fpr1e-4"] is None and "independent negatives" in line["unmeasured"]["tpr@fpr1e-4"]
        assert line["n_pos"] + line["n_neg"] == _rows(trained, "val")
    assert (run_dir / "checkpoint.pt").exists() and (run_dir / "best.pt").exists()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["preset"] == "test_cpu" and info["preset_values"]["arch"] == "small_cnn"
    assert (
        info["source"]["morphology"] == "sersic" and info["source"]["mode"] == "relative"
    )  # what it learned from
    again = train.run(trained, "v4_sota", preset="test_cpu", run="tiny")
    assert again["skipped"] is True


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_without_duplicate_or_missing_lines(stamps_ws: Path) -> None:
    argv = _train_argv(stamps_ws, "killed", "--epochs", "3")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = runs_dir(stamps_ws) / "killed" / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # epoch 0 is written: the kill lands in epoch 1
    proc.wait()
    with metrics.open("a") as out:
        out.write('{"epoch": 1, "train_loss": 0.5')  # a line torn by the kill
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "use --resume" in refused.stderr and "Traceback" not in refused.stderr
    done = subprocess.run([*argv, "--resume"], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr
    assert "resuming killed after epoch" in done.stdout
    lines, bad = read_metrics(metrics)
    assert bad == [] and [line["epoch"] for line in lines] == [0, 1, 2]


def test_a_corrupt_stamps_file_is_reported_and_training_goes_on(stamps_ws: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(
        stamps_ws, ws, ignore=shutil.ignore_patterns("runs", "candidates", "coadd_cache", "survey")
    )
    (stamps_dir(ws, "v4_sota", "grid_sota") / "part-99999.parquet").write_bytes(b"garbage, not parquet")
    summary = train.run(ws, "v4_sota", preset="test_cpu", run="c", epochs=1)
    assert any(s["file"].endswith("part-99999.parquet") for s in summary["skipped_files"])
    assert summary["epochs"] == 1


def test_eval_reports_what_its_galaxies_can_measure(trained: Path) -> None:
    summary = eval_stage.run(trained, "v4_sota", run="tiny")
    result = json.loads(Path(summary["outputs"][0]).read_text())
    ops = result["operating_points"]
    scores = pq.read_table(summary["outputs"][2]).to_pydict()
    real = [p.startswith("real lens: ") for p in scores["population"]]
    # the split's known lenses are judged apart from the injections (issue 23, part 3)
    assert ops["n_pos"] + ops["n_neg"] + sum(real) == _rows(trained, "test")
    lenses = result["real_lenses"]
    assert sum(real) >= 1 and lenses["tiers"]["all"]["n"] == lenses["n"] >= 1
    assert sum(c["n"] for t, c in lenses["tiers"].items() if t != "all") == lenses["n"]
    assert lenses["n_negatives"] == result["real_galaxies"]["n"]  # thresholds from real galaxies
    # the realism gate names why it has no figure on so few real lenses
    assert result["realism"]["auc"] is None and f"{lenses['n']} real lenses" in result["realism"]["reason"]
    assert ops["n_neg_independent"] == ops["n_neg"]  # a control galaxy serves one task
    assert ops["n_pos_independent"] < ops["n_pos"]  # hosts serve several injections
    # nothing measurable below 1/level independent negatives, anywhere in the report
    for f in ("1e-2", "1e-3", "1e-4", "1e-5"):
        measurable = ops["n_neg_independent"] >= round(1 / float(f))
        assert (ops[f"tpr@fpr{f}"] is not None) == measurable
        cell = result["tables"]["overall"]["completeness_at_fpr"][f"{float(f):.0e}"]
        assert (cell["value"] is not None) == measurable
    assert [t["name"] for t in result["thresholds"]][-1] == "FPR 0"
    assert all(ops["n_neg_independent"] * t["fpr"] >= 1 for t in result["thresholds"] if t["fpr"] > 0)
    # the maps: every positive in exactly one θE × src_dmag cell, counted against a recount
    scored = json.loads(Path(summary["outputs"][0]).read_text())
    top = result["thresholds"][-1]
    grid = scored["completeness"][top["name"]]["theta_e_x_src_dmag"]
    assert sum(c["n"] for row in grid["cells"] for c in row) == ops["n_pos"]
    assert sum(c["k"] for row in grid["cells"] for c in row) == round(ops["tpr@fpr0"] * ops["n_pos"])
    arcs = scored["completeness"][top["name"]]["arc_snr"]
    assert sum(c["n"] for c in arcs.values()) == ops["n_pos"]
    # real galaxies never trained on, each lookalike population, the planted lens
    assert result["real_galaxies"]["n"] > 0
    assert set(result["lookalikes"]) == {"spiral", "ring", "merger", "edge-on disk"}
    planted = [k for k in result["known_lenses"] if k["name"].startswith("mock-")]
    assert planted and all(k["rank"] >= 1 and k["score"] is not None for k in planted)
    assert not [k for k in result["known_lenses"] if not k["name"].startswith("mock-")]  # none here
    assert 0 <= result["calibration"]["ece"] <= 1 and result["purity"]["prevalence"] == 1e-4
    roc = result["roc"]  # the curve the console plots: sklearn's, thinned, from (0, 0) to (1, 1)
    assert roc["fpr"][0] == 0 and roc["fpr"][-1] == roc["tpr"][-1] == 1 and len(roc["fpr"]) <= 256
    text = Path(summary["outputs"][1]).read_text()
    for heading in (
        "## Operating points",
        "θE (″) \\ src_dmag",
        "## False positives on real galaxies",
        "## Known lenses",
    ):
        assert heading in text
    assert "HOLISMOKES" in text and "independent galaxies" in text
    # the per-stamp scores behind it: every figure recomputed from them
    from jobs.stats.operating_points import operating_points

    rows = pq.read_table(summary["outputs"][2]).to_pydict()
    pop, logit = np.array(rows["population"]), np.array(rows["logit"], dtype=float)
    split = np.isin(pop, ["injection", "control"])
    again = operating_points(
        np.array(rows["label"])[split], logit[split], np.array(rows["galaxy"])[split], n_boot=0
    )
    assert (
        again["auroc"] == pytest.approx(ops["auroc"])
        and again["n_neg_independent"] == ops["n_neg_independent"]
    )
    real = (pop == "real galaxy") & np.array(rows["ok"], dtype=bool)
    assert real.sum() == result["real_galaxies"]["n"]
    for t in result["thresholds"]:
        assert int((logit[real] > t["threshold"]).sum()) == result["real_galaxies"][t["name"]]["k"]
    for kind, figures in result["lookalikes"].items():
        assert int(((pop == f"lookalike: {kind}") & np.array(rows["ok"], dtype=bool)).sum()) == figures["n"]
    assert (pop == "known lens").sum() == len(result["known_lenses"])
    # lookalikes measure the FPR only where the model never trained on them
    from core.layout import lookalikes_path, parent_dir

    looks = read_positions(lookalikes_path(trained))
    parent = pq.read_table(parent_dir(trained, "v3_color_relaxed") / "parent.parquet").to_pydict()
    train_split = np.array(parent["split"]) == "train"
    tra, tdec = (
        np.radians(np.array(parent["ra"])[train_split]),
        np.radians(np.array(parent["dec"])[train_split]),
    )
    ra, dec = np.radians(looks["ra"])[:, None], np.radians(looks["dec"])[:, None]
    cos = np.sin(dec) * np.sin(tdec) + np.cos(dec) * np.cos(tdec) * np.cos(ra - tra)
    trained_on = (np.degrees(np.arccos(np.clip(cos, -1, 1))) * 3600 < 1.5).any(axis=1)
    assert trained_on.any()  # the mock's lookalikes include parent galaxies of every split
    # and never with a known lens in their stamp (the planted ones, here)
    lenses = [
        t for t in pq.read_table(trained / "truth" / "planted.parquet").to_pylist() if t["kind"] == "lens"
    ]
    lra, ldec = np.radians([t["ra"] for t in lenses])[None], np.radians([t["dec"] for t in lenses])[None]
    cos = np.sin(dec) * np.sin(ldec) + np.cos(dec) * np.cos(ldec) * np.cos(ra - lra)
    near_lens = (np.degrees(np.arccos(np.clip(cos, -1, 1))) * 3600 < 64 * 0.262 / 2**0.5 + 3).any(axis=1)
    clear = ~trained_on & ~near_lens
    assert sum(v["n"] for v in result["lookalikes"].values()) <= int(clear.sum())
    assert int(np.char.startswith(pop.astype(str), "lookalike").sum()) == int(clear.sum())


def test_score_ranks_every_parent_galaxy_once(trained: Path, capsys) -> None:
    summary = score.run(trained, "v4_sota", run="tiny", hard_negatives=10, keep_stamps=5, force=True)
    top = [line for line in capsys.readouterr().out.splitlines() if line.startswith("score: #")]
    # the top ten printed with rounded scores
    assert len(top) == 10 and all(re.fullmatch(r"score: #\d+ .+ [01]\.\d{4}", line) for line in top)
    assert [Path(o).name for o in summary["outputs"]] == [
        "candidates.parquet",
        "candidates.scores.parquet",
        "hard_negatives.parquet",
        "blinds.parquet",
        "blinds.truth.parquet",
    ]
    table = pq.read_table(summary["outputs"][1])  # every galaxy's score, no stamps
    assert "stamp" not in table.column_names
    parent = pq.read_table(trained / "data/parent/v3_color_relaxed/parent.parquet")
    assert table.num_rows == parent.num_rows
    keys = set(zip(table.column("brickname").to_pylist(), table.column("objid").to_pylist(), strict=True))
    assert keys == set(
        zip(parent.column("brickname").to_pylist(), parent.column("objid").to_pylist(), strict=True)
    )
    ok = np.array(table.column("ok").to_pylist())
    scores = np.array([s for s, good in zip(table.column("score").to_pylist(), ok, strict=True) if good])
    assert np.all(np.diff(scores) <= 0) and ok[: len(scores)].all()  # sorted, flagged rows last
    assert table.column("rank").to_pylist() == list(range(1, table.num_rows + 1))
    hard = pq.read_table(summary["outputs"][2])
    assert hard.num_rows == 10 and np.all(np.diff(hard.column("score").to_numpy()) <= 0)
    # streamed a row group at a time, they are the top 10 of every control galaxy scored at once
    from core.layout import stamps_dir
    from core.schemas import galaxy_keys
    from core.stamps import decode, stamp_meta
    from jobs.learn.models import load_run
    from jobs.learn.scoring import logits_of, sigmoid

    stamps = pq.read_table(sorted(stamps_dir(trained, "v4_sota", "grid_sota").glob("part-*.parquet")))
    stamps = stamps.filter(
        np.array(stamps.column("is_control").to_pylist()) & np.array(stamps.column("ok").to_pylist())
    )
    galaxy = galaxy_keys(stamps.column("brickname").to_pylist(), stamps.column("objid").to_pylist())
    stamps = stamps.take(np.sort(np.unique(galaxy, return_index=True)[1]))
    model, meta_cols = load_run(runs_dir(trained) / "tiny")
    assert meta_cols == []
    every = sigmoid(logits_of(model, decode(stamps.column("stamp"), stamp_meta(stamps.schema))))
    top = np.argsort(-every, kind="stable")[:10]
    assert hard.column("task_id").to_pylist() == stamps.column("task_id").take(top).to_pylist()
    assert np.allclose(hard.column("score").to_numpy(), every[top], rtol=1e-5)
    # the planted lens carries its name and reference, and the summary says where it landed
    named = [
        r for r in table.select(["rank", "known_lens", "known_lens_reference"]).to_pylist() if r["known_lens"]
    ]
    assert named and all(
        r["known_lens"].startswith("mock-") and "planted" in r["known_lens_reference"] for r in named
    )
    listed = [k["name"] for k in summary["known_lenses"]]
    assert sorted(listed) == sorted({r["known_lens"] for r in named})  # each lens once
    lens_keys = {(r["brickname"], r["objid"]) for r in table.to_pylist() if r["known_lens"]}
    assert not lens_keys & set(
        zip(hard.column("brickname").to_pylist(), hard.column("objid").to_pylist(), strict=True)
    )
    # candidates.parquet: the top 5 and every known lens, with the stamps the cutouts stage cut
    candidates = pq.read_table(summary["outputs"][0])
    ranks = candidates.column("rank").to_pylist()
    assert ranks[:5] == [1, 2, 3, 4, 5] and summary["stamps_kept"] == candidates.num_rows
    assert {r["rank"] for r in named} <= set(ranks) and len(ranks) <= 5 + len(named)
    cut = pq.read_table(sorted((trained / "data/cutouts/v3_color_relaxed").glob("part-*.parquet")))
    keys = zip(cut.column("brickname").to_pylist(), cut.column("objid").to_pylist(), strict=True)
    by_key = dict(zip(keys, cut.column("stamp").to_pylist(), strict=True))
    for row in candidates.select(["brickname", "objid", "stamp"]).to_pylist():
        assert row["stamp"] == by_key[(row["brickname"], row["objid"])]


def test_score_writes_blind_items_for_calibrating_inspectors(trained: Path) -> None:
    """Simulated lenses (injected rows, hosts in a fixed pseudo-random order) and known
    non-lenses (controls, drawn to follow the candidates' scores), one per galaxy, none
    shown as a candidate, each scored as the candidates are; the items have the candidates'
    columns and types, in an order that says nothing; their truth is in a file of its own."""
    from core.layout import stamps_dir
    from core.schemas import galaxy_keys, hash_order
    from core.stamps import decode, stamp_meta
    from jobs.learn import blinds as blind_items
    from jobs.learn.models import load_run
    from jobs.learn.scoring import logits_of, sigmoid
    from jobs.survey import known_lenses

    summary = score.run(trained, "v4_sota", run="tiny", keep_stamps=5, blinds=8)
    assert summary["blinds"]["lens"] == 4 and summary["blinds"]["not_lens"] == 4
    drawn = summary["blinds"]["not_lens_from"]
    assert drawn["graded X"] == 0 and sum(drawn.values()) == 4  # nothing graded: controls, lookalikes
    blinds = pq.read_table(summary["outputs"][3])
    candidates = pq.read_table(summary["outputs"][0])
    assert blinds.schema.equals(candidates.schema, check_metadata=True)  # names, types, stamp shape
    assert not {"truth", "arc_snr", "theta_e_arcsec"} & set(blinds.column_names)
    galaxy = galaxy_keys(blinds.column("brickname").to_pylist(), blinds.column("objid").to_pylist())
    assert list(hash_order(galaxy)) == list(range(len(galaxy)))  # ordered by the galaxy, not the score
    truth_table = pq.read_table(summary["outputs"][4])
    assert truth_table.column("brickname").to_pylist() == blinds.column("brickname").to_pylist()
    joined = blinds.select(["brickname", "objid"]).join(truth_table, ["brickname", "objid"])  # they join
    assert joined.num_rows == blinds.num_rows
    truth = truth_table.column("truth").to_pylist()
    shown = set(
        galaxy_keys(candidates.column("brickname").to_pylist(), candidates.column("objid").to_pylist())
    )
    assert len(set(galaxy)) == 8 and not set(galaxy) & shown
    parent = pq.read_table(summary["outputs"][1]).to_pylist()
    by_key = {f"{r['brickname']}:{r['objid']}": r for r in parent}
    for g, row in zip(galaxy, blinds.to_pylist(), strict=True):  # the host's own catalogue fields
        assert all(row[c] == by_key[g][c] for c in ("ra", "dec", "psfsize_r", "mag_r", "mag_z", "type"))
    stamps = pq.read_table(sorted(stamps_dir(trained, "v4_sota", "grid_sota").glob("part-*.parquet")))
    keys = galaxy_keys(stamps.column("brickname").to_pylist(), stamps.column("objid").to_pylist())
    control = np.array(stamps.column("is_control").to_pylist())
    raw = stamps.column("stamp").to_pylist()
    model, _ = load_run(runs_dir(trained) / "tiny")
    images = decode(blinds.column("stamp"), stamp_meta(blinds.schema))
    assert np.allclose(blinds.column("score").to_numpy(), sigmoid(logits_of(model, images)), rtol=1e-5)
    for g, t, stamp in zip(galaxy, truth, blinds.column("stamp").to_pylist(), strict=True):
        rows = np.flatnonzero((keys == g) & (control == (t == "not_lens")))
        assert stamp in [raw[i] for i in rows]  # the galaxy's own injected (or control) stamp
    # the non-lenses: the eligible test controls' draw that follows the candidates' logits
    lenses = known_lenses.load(trained)
    ok = np.array(stamps.column("ok").to_pylist())
    ok &= ~known_lenses.in_stamp(stamps.column("ra").to_numpy(), stamps.column("dec").to_numpy(), lenses, 64)
    sims = {g for g, t in zip(galaxy, truth, strict=True) if t == "lens"}
    eligible, seen = [], set()
    for i in np.flatnonzero(control & ok):
        if keys[i] not in seen and keys[i] not in shown and keys[i] not in sims:
            seen.add(keys[i])
            eligible.append(i)
    pool = logits_of(model, decode(stamps.column("stamp").take(eligible), stamp_meta(stamps.schema)))
    picked, p = blind_items.hard_draw(pool, candidates.column("logit").to_numpy(), 4)
    assert {keys[eligible[i]] for i in picked} == {
        g for g, t in zip(galaxy, truth, strict=True) if t == "not_lens"
    }
    assert summary["blinds"]["not_lens_ks_p"] == pytest.approx(p, abs=1e-4)
    # each item's rank is the one it would have among the run's scored galaxies
    scored = pq.read_table(summary["outputs"][1], columns=["score"]).column("score").drop_null().to_numpy()
    for s, rank in zip(blinds.column("score").to_numpy(), blinds.column("rank").to_pylist(), strict=True):
        assert rank == 1 + int(np.sum(scored > s))


def test_nothing_the_console_offers_but_the_pixels_tells_a_blind_item_from_a_candidate(trained: Path) -> None:
    """Everything an inspector is offered for a stream item except its stamp — the side panel's
    lines, its number, the columns and types of the row loaded for it, whether the viewer is
    offered — fed to a cross-validated classifier (gradient-boosted trees and a logistic
    regression) cannot tell blind items from candidates: AUROC <= 0.6."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from core.candidates import CandidateTable, TriageStream, blinds_path
    from halo_tui.components.candidate_panel import item_lines

    summary = score.run(trained, "v4_sota", run="tiny", keep_stamps=60, blinds=60)
    candidates = CandidateTable(summary["outputs"][0])
    blinds = CandidateTable(blinds_path(Path(summary["outputs"][0])))
    assert blinds.file.schema_arrow.equals(candidates.file.schema_arrow)  # what a file reader sees
    stream = TriageStream(candidates, blinds, rate=0.3, seed="probe")
    assert not stream.scored and stream.n_blind >= 20
    fields: list[dict[str, object]] = []
    for i in range(len(stream)):
        row = stream.row(i)
        shown = {"number": row["rank"], "where": i / len(stream)}
        for line in item_lines(row, blind=not stream.scored):
            key, _, value = line.plain.partition(" ")
            shown[key] = value.strip()
        fields.append(shown)
    names = sorted({k for f in fields for k in f})
    x = np.zeros((len(fields), len(names)))
    for j, name in enumerate(names):  # numbers as numbers, anything else by its code
        values = [f.get(name) for f in fields]
        try:
            x[:, j] = [float(str(v).rstrip('"')) if v is not None else -1.0 for v in values]
        except ValueError:
            codes = {v: k for k, v in enumerate(sorted({str(v) for v in values}))}
            x[:, j] = [codes[str(v)] for v in values]
    y = stream.source == 1
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    for model in (HistGradientBoostingClassifier(max_iter=100), LogisticRegression(max_iter=2000)):
        p = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
        assert roc_auc_score(y, p) <= 0.6, (type(model).__name__, roc_auc_score(y, p), names)


def test_the_hard_draw_follows_the_targets_scores_when_the_pool_can() -> None:
    """The non-lens draw matches the candidates' score distribution where the pool covers it
    (KS p > 0.05, and far from what the top or a random draw would give), shrinks to what the
    pool can match, and says so when it cannot (a pool of low scorers only)."""
    from scipy.stats import ks_2samp

    from jobs.learn.blinds import KS_ALPHA, hard_draw

    rng = np.random.default_rng(3)
    target = np.concatenate([rng.normal(-1.5, 1.0, 800), rng.normal(4.0, 0.8, 200)])  # candidates' logits
    pool = rng.normal(-3.0, 2.5, 3000)  # mostly below them, a tail as high
    picked, p = hard_draw(pool, target, 100)
    assert len(picked) == 100 and len(set(picked)) == 100 and p > KS_ALPHA
    assert ks_2samp(pool[np.argsort(-pool)[:100]], target).pvalue < KS_ALPHA  # the top is not the answer
    assert ks_2samp(rng.choice(pool, 100, replace=False), target).pvalue < KS_ALPHA  # nor is chance
    low = rng.normal(-6.0, 0.5, 300)  # nothing scores like the candidates
    picked, p = hard_draw(low, target, 50)
    assert len(picked) == 50 and p <= KS_ALPHA


def test_galaxies_graded_x_elsewhere_become_hard_non_lens_blinds_and_leave_the_candidates(
    trained: Path,
) -> None:
    """Candidates of another run graded X by two inspectors are known non-lenses: score draws
    them (they score as the candidates do), and the triage stream shows each once, as a blind
    item, never also as a candidate."""
    from core import grades
    from core.candidates import CandidateTable, TriageStream, blinds_path
    from core.workspace import Workspace

    first = score.run(trained, "v4_sota", run="tiny", keep_stamps=40, blinds=8)
    ranked = pq.read_table(first["outputs"][1]).to_pylist()[:30]  # the top: what people looked at
    store = Workspace(trained).store
    for row in ranked:
        for who in ("ann", "bob"):
            grades.grade(store, "earlier", row["brickname"], int(row["objid"]), who, "X")
    try:
        summary = score.run(trained, "v4_sota", run="tiny", keep_stamps=40, blinds=8)
        assert first["blinds"]["not_lens_from"]["graded X"] == 0  # nothing graded yet
        assert summary["blinds"]["not_lens_from"]["graded X"] >= 3  # high scorers: most of the draw
        truth = pq.read_table(summary["outputs"][4]).to_pylist()
        rejected = {(r["brickname"], int(r["objid"])) for r in ranked}
        from_graded = {(t["brickname"], t["objid"]) for t in truth if t["source"] == "graded X"}
        assert from_graded <= rejected and all(
            t["truth"] == "not_lens" for t in truth if t["source"] == "graded X"
        )
        candidates = CandidateTable(summary["outputs"][0])
        stream = TriageStream(candidates, CandidateTable(blinds_path(Path(summary["outputs"][0]))), 0.2, "s")
        items = [stream.row(i) for i in range(len(stream))]
        seen = [(r["brickname"], r["objid"]) for r in items]
        assert len(seen) == len(set(seen))  # no galaxy twice
        blind = {(r["brickname"], r["objid"]) for r in items if r["blind"]}
        assert stream.n_blind == 8 and from_graded <= blind  # every item at this rate
        assert len(stream) == len(candidates) + 8 - len(from_graded)  # they left the candidates
    finally:
        store.db.execute("DELETE FROM grades WHERE run = 'earlier'")
        store.db.commit()


def test_a_lookalike_catalogue_gives_a_first_round_hard_non_lens_blinds(
    trained: Path, tmp_path: Path
) -> None:
    """With nothing graded yet, the galaxies a lookalike catalogue names (within 1.5″) are known
    non-lenses that score as the candidates do: score draws them, says where each came from,
    and the stream shows each once, as a blind item; a changed catalogue is a changed input."""
    from core.candidates import CandidateTable, TriageStream, blinds_path
    from core.layout import candidates_dir

    ranked = pq.read_table(candidates_dir(trained, "tiny") / "candidates.scores.parquet").to_pylist()
    named = [r for r in ranked if r["known_lens"] is None][:30]  # the high scorers a catalogue names
    looks = tmp_path / "rings.csv"
    looks.write_text(
        "ra,dec,population\n"
        + "".join(f"{r['ra'] + 0.5 / 3600:.7f},{r['dec']:.7f},ring\n" for r in named)  # 0.5″ off
    )
    summary = score.run(trained, "v4_sota", run="tiny", keep_stamps=40, blinds=8, lookalikes=str(looks))
    assert not summary.get("skipped")
    drawn = summary["blinds"]["not_lens_from"]
    assert drawn["graded X"] == 0 and drawn["catalogued lookalike"] >= 3  # most of the draw
    truth = pq.read_table(summary["outputs"][4]).to_pylist()
    catalogued = {(t["brickname"], t["objid"]) for t in truth if t["source"] == "catalogued lookalike"}
    assert catalogued <= {(r["brickname"], int(r["objid"])) for r in named}
    assert all(t["truth"] == "not_lens" for t in truth if t["source"] == "catalogued lookalike")
    candidates = CandidateTable(summary["outputs"][0])
    stream = TriageStream(candidates, CandidateTable(blinds_path(Path(summary["outputs"][0]))), 0.2, "s")
    seen = [(r["brickname"], r["objid"]) for r in map(stream.row, range(len(stream)))]
    assert len(seen) == len(set(seen)) and len(stream) == len(candidates) + 8 - len(catalogued)
    again = score.run(trained, "v4_sota", run="tiny", keep_stamps=40, blinds=8, lookalikes=str(looks))
    assert again.get("skipped")
    looks.write_text("ra,dec,population\n")  # the catalogue changed: the blinds are redrawn
    redrawn = score.run(trained, "v4_sota", run="tiny", keep_stamps=40, blinds=8, lookalikes=str(looks))
    assert not redrawn.get("skipped") and redrawn["blinds"]["not_lens_from"]["catalogued lookalike"] == 0


def test_no_negative_has_a_known_lens_in_its_stamp(trained: Path) -> None:
    """A known lens 10″ from a galaxy is inside its 64-pixel stamp: that galaxy is never a
    non-lens blind, a hard negative or a lookalike measuring the FPR (3″ let it be one)."""
    from core.layout import known_lenses_path, lookalikes_path
    from jobs.survey.catalogs import write_csv

    stamps = pq.read_table(
        sorted(stamps_dir(trained, "v4_sota", "grid_sota").glob("part-*.parquet")),
        columns=["brickname", "objid", "ra", "dec", "is_control", "split"],
    ).to_pydict()
    controls = {
        (b, o): (r, d)
        for b, o, r, d, c in zip(
            *(stamps[k] for k in ("brickname", "objid", "ra", "dec", "is_control")), strict=True
        )
        if c
    }
    looks = read_positions(lookalikes_path(trained))
    near = [*controls.values(), *zip(looks["ra"], looks["dec"], strict=True)]
    rows = [
        [f"L{i}", r + 10 / 3600 / np.cos(np.radians(d)), d, "confident", "test"]
        for i, (r, d) in enumerate(near)
    ]
    path = known_lenses_path(trained)
    kept = path.read_bytes() if path.exists() else None
    write_csv(path, ["name", "ra", "dec", "grade", "reference"], rows)
    try:
        summary = score.run(trained, "v4_sota", run="tiny", keep_stamps=5, blinds=8, hard_negatives=5)
        assert summary["blinds"]["not_lens"] == 0 and summary["hard_negatives"] == 0
        report = eval_stage.run(trained, "v4_sota", run="tiny", real_galaxies=50, force=True)
        assert json.loads(Path(report["outputs"][0]).read_text())["lookalikes"] == {}
    finally:
        path.write_bytes(kept) if kept is not None else path.unlink()
    summary = score.run(trained, "v4_sota", run="tiny", keep_stamps=5, blinds=8, hard_negatives=5)
    assert summary["blinds"]["not_lens"] == 4 and summary["hard_negatives"] == 5  # without them


def _service_cutout(survey: Path, ra: float, dec: float, size: int = 80) -> tuple[np.ndarray, object, list]:
    """A (g, r, z) cube of `size` pixels around (ra, dec) cut from the mock survey's coadds,
    its WCS header and inverse variance, as the viewer's fits-cutout service makes them."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from jobs.survey.layout import brick_at, coadd_path

    brick = brick_at(ra, dec).name
    planes, invvar, header = [], [], None
    for band in "grz":
        with fits.open(survey / coadd_path(brick, "image", band)) as hdus:
            hdu = next(h for h in hdus if h.data is not None)
            wcs = WCS(hdu.header)
            x, y = (int(round(float(v))) for v in wcs.all_world2pix([[ra, dec]], 0)[0])
            y0, x0 = y - size // 2, x - size // 2
            planes.append(hdu.data[y0 : y0 + size, x0 : x0 + size].astype(np.float32))
            header = wcs[y0 : y0 + size, x0 : x0 + size].to_header()
        with fits.open(survey / coadd_path(brick, "invvar", band)) as hdus:
            hdu = next(h for h in hdus if h.data is not None)
            invvar.append(hdu.data[y0 : y0 + size, x0 : x0 + size].astype(np.float32))
    return np.stack(planes), header, np.stack(invvar)


def test_score_reads_fits_cutouts_as_the_viewer_writes_them(trained: Path, tmp_path: Path, capsys) -> None:
    """Issue 23, part 5: `score --cutouts DIR` scores the viewer's fits-cutout files (bands
    named 'grz', 'g,r,z' or BAND0.., any order; WCS or RA/DEC; an invvar extension or not),
    cropped to the stamp; a file that is not such a cutout is one line and a flagged row."""
    from astropy.io import fits

    from core.layout import parent_dir
    from jobs.learn.models import load_run
    from jobs.learn.scoring import logits_of

    parent = pq.read_table(parent_dir(trained, "v3_color_relaxed") / "parent.parquet").to_pydict()
    folder = tmp_path / "paper_candidates"
    folder.mkdir()
    expected = {}
    cuts = (
        _service_cutout(trained / "survey", float(r), float(d)) + (r, d)
        for r, d in zip(parent["ra"], parent["dec"], strict=True)
    )
    inside = [c for c, _ in zip((c for c in cuts if c[0].shape == (3, 80, 80)), range(3), strict=False)]
    for i, (cube, header, invvar, ra, dec) in enumerate(inside):
        if i == 0:  # BANDS = 'grz', a WCS
            hdus = [fits.PrimaryHDU(cube, header=header)]
            hdus[0].header["BANDS"] = "grz"
        elif i == 1:  # 'g,r,z' and the inverse variance as the service's invvar option adds it
            hdus = [fits.PrimaryHDU(cube, header=header), fits.ImageHDU(invvar)]
            hdus[0].header["BANDS"] = "g,r,z"
        else:  # planes z r g named BAND0..2, the position in RA/DEC keywords only
            hdus = [fits.PrimaryHDU(cube[::-1])]
            hdus[0].header.update(BAND0="z", BAND1="r", BAND2="g", RA=float(ra), DEC=float(dec))
        fits.HDUList(hdus).writeto(folder / f"cand{i}.fits")
        expected[f"cand{i}.fits"] = (cube[:, 8:72, 8:72], float(ra), float(dec))
    (folder / "junk.fits").write_text("not a FITS file")
    fits.PrimaryHDU(np.zeros((80, 80), np.float32)).writeto(folder / "one_plane.fits")
    coarse = header.copy()
    for key in ("CDELT1", "CDELT2", "CD1_1", "CD2_2"):  # twice the pixel: a pixscale=0.524 cutout
        if key in coarse:
            coarse[key] *= 2
    wide = fits.PrimaryHDU(cube, header=coarse)
    wide.header["BANDS"] = "grz"
    wide.writeto(folder / "wrong_scale.fits")

    summary = score.run(trained, "v4_sota", run="tiny", cutouts=str(folder))
    out = capsys.readouterr().out
    assert "junk.fits: not a readable FITS file" in out and "one_plane.fits: a single plane" in out
    assert "wrong_scale.fits: pixel scale 0.524″, not 0.262″" in out, out
    assert "3 of 6 FITS file(s)" in out
    table = pq.read_table(summary["outputs"][1]).to_pydict()  # every file, ranked
    assert Path(summary["outputs"][0]).name == "cutouts-paper_candidates.parquet"
    rows = {n: i for i, n in enumerate(table["name"])}
    assert set(rows) == {*expected, "junk.fits", "one_plane.fits", "wrong_scale.fits"}
    model, _ = load_run(runs_dir(trained) / "tiny")
    for name, (stamp, ra, dec) in expected.items():
        i = rows[name]
        # the stamp's centre, within a pixel of the galaxy (the cutout was cut on whole pixels)
        assert table["ok"][i] and abs(table["ra"][i] - ra) < 0.262 / 3600 / np.cos(np.radians(dec))
        assert abs(table["dec"][i] - dec) < 0.262 / 3600
        assert table["logit"][i] == pytest.approx(float(logits_of(model, stamp[None])[0]), rel=1e-4, abs=1e-4)
    assert (
        table["noise_from"][rows["cand1.fits"]] == "invvar"
        and table["noise_from"][rows["cand0.fits"]] == "sky MAD"
    )
    assert (
        not table["ok"][rows["junk.fits"]]
        and "not a readable FITS file" in table["fail_reason"][rows["junk.fits"]]
    )
    # keyed for grading in the console by the folder and each file's name, whatever the order
    import zlib

    from core.candidates import CandidateTable, scored_files

    assert set(table["brickname"]) == {"cutouts-paper_candidates"}
    assert {n: o for n, o in zip(table["name"], table["objid"], strict=True)} == {
        n: zlib.crc32(n.encode()) & 0x7FFFFFFF for n in table["name"]
    }
    paged = CandidateTable(summary["outputs"][0])
    assert len(paged) >= 3 and Path(summary["outputs"][0]) in scored_files(trained, "tiny")
    again = score.run(trained, "v4_sota", run="tiny", cutouts=str(folder))
    assert again.get("skipped")
    with pytest.raises(StageError, match="not a folder of FITS cutouts"):
        score.run(trained, "v4_sota", run="tiny", cutouts=str(tmp_path / "none"))


def test_eval_judges_labelled_cutout_files_at_the_real_galaxy_thresholds(
    trained: Path, tmp_path: Path, capsys
) -> None:
    """Issue 23, part 5: `eval --cutouts DIR --labels CSV` scores the files, then gives the
    labelled lenses' recall (per tier) and the non-lenses' FPR at the split's real-galaxy
    thresholds; bad label rows, labels naming no file and unlabelled files are counted."""
    from astropy.io import fits

    from core.layout import parent_dir
    from jobs.learn.models import load_run
    from jobs.learn.scoring import logits_of
    from jobs.survey.catalogs import write_csv

    parent = pq.read_table(parent_dir(trained, "v3_color_relaxed") / "parent.parquet").to_pydict()
    folder = tmp_path / "paper"
    folder.mkdir()
    stamps = {}
    for r, d in zip(parent["ra"], parent["dec"], strict=True):
        cube, header, _ = _service_cutout(trained / "survey", float(r), float(d))
        if cube.shape != (3, 80, 80):
            continue
        name = f"obj{len(stamps)}.fits"
        hdu = fits.PrimaryHDU(cube, header=header)
        hdu.header["BANDS"] = "grz"
        hdu.writeto(folder / name)
        stamps[name] = cube[:, 8:72, 8:72]
        if len(stamps) == 7:
            break
    rows = [
        ["obj0.fits", "lens", "confident"],
        ["obj1.fits", "1", "probable"],
        ["obj2.fits", "yes", "confident"],
        ["obj3.fits", "not_lens", ""],
        ["obj4.fits", "0", ""],
        ["obj5.fits", "maybe", ""],  # a bad label: one line, left out
        ["gone.fits", "lens", ""],  # names no file
    ]  # obj6.fits: unlabelled
    labels = tmp_path / "labels.csv"
    write_csv(labels, ["name", "label", "grade"], rows)
    summary = eval_stage.run(trained, "v4_sota", run="tiny", cutouts=str(folder), labels=str(labels))
    said = capsys.readouterr().out
    assert "row 7: label 'maybe' is not lens or not_lens" in said and "gone.fits is not a file" in said
    out = json.loads(Path(summary["outputs"][-2]).read_text())
    assert Path(summary["outputs"][-2]).name == "eval-test-cutouts-paper.json"
    assert (out["lenses"], out["non_lenses"], out["unlabelled"], out["labels_without_file"]) == (3, 2, 2, 1)
    model, _ = load_run(runs_dir(trained) / "tiny")
    logit = {n: float(logits_of(model, s[None])[0]) for n, s in stamps.items()}
    for t in out["thresholds"]:  # the split's real-galaxy thresholds, as eval set them
        above = [logit[n] > t["threshold"] for n in ("obj0.fits", "obj1.fits", "obj2.fits")]
        assert out["recall"]["all"][t["name"]]["k"] == sum(above)
        assert out["recall"]["confirmed"][t["name"]]["k"] == above[0] + above[2]
        assert out["fpr"][t["name"]]["k"] == sum(
            logit[n] > t["threshold"] for n in ("obj3.fits", "obj4.fits")
        )
    evaluation = json.loads(Path(summary["outputs"][0]).read_text())
    assert out["thresholds"] == evaluation["real_lenses"]["thresholds"]
    assert out["operating_points"]["n_pos"] == 3 and out["operating_points"]["n_neg"] == 2
    with pytest.raises(StageError, match="--cutouts and --labels go together"):
        eval_stage.run(trained, "v4_sota", run="tiny", cutouts=str(folder))
    with pytest.raises(StageError, match="no such labels file"):  # before the evaluation runs
        eval_stage.run(trained, "v4_sota", run="tiny", cutouts=str(folder), labels=str(tmp_path / "no.csv"))


def test_a_variants_own_known_lenses_are_never_eval_negatives(trained: Path, tmp_path: Path) -> None:
    """A lens from the variant's `[training] catalogues` keeps its galaxy (and its stamp's
    neighbours) out of the real galaxies that set eval's thresholds, as the shipped and the
    workspace's lenses do."""
    from core.layout import parent_dir
    from jobs.survey.catalogs import write_csv

    ws = tmp_path / "ws"
    shutil.copytree(trained, ws, ignore=shutil.ignore_patterns("candidates", "cutouts"))
    parent = pq.read_table(parent_dir(ws, "v3_color_relaxed") / "parent.parquet").to_pydict()
    held = [i for i, s in enumerate(parent["split"]) if s != "train"]
    pick = held[len(held) // 2]
    key = f"{parent['brickname'][pick]}:{parent['objid'][pick]}"
    before = pq.read_table(eval_stage.run(ws, "v4_sota", run="tiny")["outputs"][2]).to_pydict()
    assert key in {
        g for g, p in zip(before["galaxy"], before["population"], strict=True) if p == "real galaxy"
    }
    write_csv(
        ws / "paper.csv",
        ["name", "ra", "dec", "grade", "reference"],
        [["paper-1", parent["ra"][pick], parent["dec"][pick], "confident", "a paper"]],
    )
    with (ws / "halo.toml").open("a") as out:
        out.write('\n[variants.v4_sota.training]\ncatalogues = ["paper.csv"]\n')
    after = pq.read_table(eval_stage.run(ws, "v4_sota", run="tiny")["outputs"][2]).to_pydict()
    negatives = {g for g, p in zip(after["galaxy"], after["population"], strict=True) if p == "real galaxy"}
    assert key not in negatives and len(negatives) < len(
        {g for g, p in zip(before["galaxy"], before["population"], strict=True) if p == "real galaxy"}
    )


def test_score_takes_any_catalogue_of_positions(trained: Path, tmp_path: Path, capsys) -> None:
    from core.layout import lookalikes_path

    before = score.run(trained, "v4_sota", run="tiny", hard_negatives=3)
    summary = score.run(trained, "v4_sota", run="tiny", catalog=str(lookalikes_path(trained)))
    table = pq.read_table(summary["outputs"][0])
    assert Path(summary["outputs"][0]).name == "catalog-lookalikes.parquet"
    assert table.num_rows == len(read_positions(lookalikes_path(trained))["ra"])
    assert set(table.column("population").to_pylist()) == {"spiral", "ring", "merger", "edge-on disk"}
    assert all(table.column("ok").to_pylist()) and Path(before["outputs"][0]).exists()  # kept
    known = read_positions(lookalikes_path(trained))
    twins = tmp_path / "twins.csv"  # two rows of one name: told apart, and said
    twins.write_text(
        "name,ra,dec\n" + "".join(f"twin,{known['ra'][i]},{known['dec'][i]}\n" for i in range(2))
    )
    capsys.readouterr()
    keyed = pq.read_table(score.run(trained, "v4_sota", run="tiny", catalog=str(twins))["outputs"][1])
    assert len(set(keyed.column("objid").to_pylist())) == 2
    assert "1 row(s) of catalog-twins share their key with a row ranked above" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("name,ra,dec\nx,12.5,95\n")
    with pytest.raises(StageError, match=r"bad.csv: row 1: dec 95 is outside \[-90, 90\]"):
        score.run(trained, "v4_sota", run="tiny", catalog=str(bad))


def test_eval_and_score_skip_unchanged_work_and_say_so(trained: Path, capsys) -> None:
    """A rerun with the same inputs does nothing and says so; `--force`, another option or a
    changed input (the model) redoes it; a catalogue scored beside the candidates keeps them
    up to date."""
    from core.layout import lookalikes_path, run_checkpoint, runs_dir

    first = eval_stage.run(trained, "v4_sota", run="tiny", real_galaxies=50)
    report = Path(first["outputs"][0])
    written = report.stat().st_mtime_ns
    capsys.readouterr()
    again = eval_stage.run(trained, "v4_sota", run="tiny", real_galaxies=50)
    assert "up to date: the inputs have not changed (--force redoes the work)" in capsys.readouterr().out
    assert report.stat().st_mtime_ns == written and again == {**first, "skipped": True}
    assert eval_stage.run(trained, "v4_sota", run="tiny", real_galaxies=50, force=True) == first
    assert report.stat().st_mtime_ns != written  # redone, the same figures

    scored = score.run(trained, "v4_sota", run="tiny", hard_negatives=4, keep_stamps=6)
    candidates = Path(scored["outputs"][0])
    written = candidates.stat().st_mtime_ns
    score.run(trained, "v4_sota", run="tiny", catalog=str(lookalikes_path(trained)))
    capsys.readouterr()
    again = score.run(trained, "v4_sota", run="tiny", hard_negatives=4, keep_stamps=6)
    assert again["skipped"] and "up to date" in capsys.readouterr().out
    assert candidates.stat().st_mtime_ns == written and again["top"] == scored["top"]
    assert not score.run(trained, "v4_sota", run="tiny", hard_negatives=4, keep_stamps=7).get("skipped")
    import torch

    checkpoint = run_checkpoint(runs_dir(trained) / "tiny")  # the model changed: redo both
    state = torch.load(checkpoint, weights_only=True)
    first = next(iter(state["model"]))
    state["model"][first] = state["model"][first] + 1e-4
    torch.save(state, checkpoint)
    assert not score.run(trained, "v4_sota", run="tiny", hard_negatives=4, keep_stamps=7).get("skipped")
    capsys.readouterr()
    eval_stage.run(trained, "v4_sota", run="tiny", real_galaxies=50)
    assert "up to date" not in capsys.readouterr().out


def test_runs_compare_through_the_cli(trained: Path, halo) -> None:
    out = subprocess.run(
        [halo.executable, "runs", "compare", "tiny", "--workspace", str(trained)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and " auroc " in out.stdout and "> 0.99" in out.stdout
    assert "|" not in out.stdout  # a table for people, not raw Markdown
    pasted = subprocess.run(
        [halo.executable, "runs", "compare", "tiny", "--markdown", "--workspace", str(trained)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "| auroc |" in pasted.stdout
    table = json.loads(
        subprocess.run(
            [halo.executable, "runs", "compare", "tiny", "--json", "-w", str(trained)],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    )
    assert table["runs"] == ["tiny"] and any(r["metric"] == "tpr@fpr1e-4" for r in table["rows"])
    # real-lens recall and the realism probe beside the injection figures (issue 23, parts 3-4)
    rows = {r["metric"]: r for r in table["rows"]}
    evaluation = json.loads((trained / "data/runs/tiny/eval/eval-test.json").read_text())
    real = evaluation["real_lenses"]["tiers"]["all"]
    if "FPR 1e-02" in real:
        assert rows["real_recall@fpr1e-2"]["values"] == [real["FPR 1e-02"]["value"]]
    assert rows["realism_auc"]["values"] == [None]  # a few real lenses: the probe says why, no figure
    assert "n/m" in out.stdout.split("realism_auc")[1].splitlines()[0]
    assert rows["real lenses held out"]["values"] == [evaluation["real_lenses"]["n"]]
    missing = subprocess.run(
        [halo.executable, "runs", "compare", "nope", "-w", str(trained)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "no run 'nope'" in missing.stderr


def _uneven_row_groups(ws: Path) -> list[int]:
    """Rewrite the workspace's stamps as one part of two row groups: all but 17 rows, then
    17 (dealing whole row groups gave one rank nearly everything); returns their sizes."""
    from core.layout import stamps_dir

    folder = stamps_dir(ws, "v4_sota", "grid_sota")
    parts = sorted(folder.glob("part-*.parquet"))
    table = pq.read_table(parts)
    for part in parts:
        part.unlink()
    with pq.ParquetWriter(folder / "part-00000.parquet", table.schema) as writer:
        writer.write_table(table.slice(0, table.num_rows - 17), row_group_size=table.num_rows)
        writer.write_table(table.slice(table.num_rows - 17), row_group_size=table.num_rows)
    meta = pq.ParquetFile(folder / "part-00000.parquet").metadata
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_gets_equal_shares_and_validates_on_the_whole_split(
    stamps_ws: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(stamps_ws, ws, ignore=shutil.ignore_patterns("runs", ".halo"))
    groups = _uneven_row_groups(ws)
    argv = _train_argv(ws, "ddp", "--epochs", "1", "--nproc", "2")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=400)
    errors = [ln for ln in done.stderr.splitlines() if "rror" in ln or "what()" in ln or "Abort" in ln]
    assert done.returncode == 0, "\n".join(errors[:30]) + "\n...\n" + done.stderr[-1500:]
    lines, bad = read_metrics(runs_dir(ws) / "ddp" / "metrics.jsonl")
    assert bad == [] and [line["epoch"] for line in lines] == [0]
    assert lines[0]["n_pos"] + lines[0]["n_neg"] == _rows(ws, "val")  # both ranks' shards
    assert lines[0]["train_rows"] == _rows(ws, "train")  # all-reduced: both ranks' rows
    shares = lines[0]["train_rows_per_rank"]
    assert len(shares) == 2 and sum(shares) == lines[0]["train_rows"]
    assert max(shares) - min(shares) <= 1, shares  # equal runs per rank, however uneven the groups
    print(f"DDP: row groups {groups}; train rows per rank {shares} of {lines[0]['train_rows']}")
    assert json.loads((runs_dir(ws) / "ddp" / "run.json").read_text())["world_size"] == 2
    assert done.stdout.count('"run": "ddp"') == 1  # one summary, from rank 0


def test_runs_and_candidates_on_s3(trained: Path, s3_env: str, halo) -> None:

    import boto3

    from core.candidates import CandidateTable
    from core.runs import load

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="halo-runs")
    run_dir = runs_dir(trained) / "tiny"
    for name in ("run.json", "metrics.jsonl"):
        s3.upload_file(str(run_dir / name), "halo-runs", f"team/runs/tiny/{name}")
    run = load(trained, "s3://halo-runs/team/runs/tiny")
    assert run.name == "tiny" and [e["epoch"] for e in run.epochs] == [0, 1, 2]
    out = subprocess.run(
        [halo.executable, "runs", "compare", "s3://halo-runs/team/runs/tiny", "--json", "-w", str(trained)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert out.returncode == 0 and json.loads(out.stdout)["runs"] == ["tiny"]
    missing = subprocess.run(
        [halo.executable, "runs", "compare", "s3://halo-runs/nothing/here", "-w", str(trained)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert missing.returncode == 2 and "no run at s3://halo-runs/nothing/here" in missing.stderr
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.stages.score",
            "--workspace",
            str(trained),
            "--variant",
            "v4_sota",
            "--run",
            "tiny",
            "--hard-negatives",
            "5",
            "--mirror",
            "s3://halo-runs/team",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr
    uri = "s3://halo-runs/team/data/candidates/tiny/candidates.parquet"
    assert uri in done.stdout
    table = CandidateTable(uri)
    local = CandidateTable(trained / "data/candidates/tiny/candidates.parquet")
    assert len(table) == len(local) and table.row(0) == local.row(0)
    assert np.array_equal(table.stamps([0, len(table) - 1]), local.stamps([0, len(local) - 1]))


def test_resume_with_more_epochs_follows_the_new_schedule_and_keeps_the_settings(
    stamps_ws: Path, tmp_path: Path
) -> None:
    """The review's finding: resuming a 2-epoch run with --epochs 3 ran epoch 2 at lr 0.0."""
    ws = tmp_path / "ws"
    shutil.copytree(stamps_ws, ws, ignore=shutil.ignore_patterns("runs", "candidates", "survey"))
    train.run(ws, "v4_sota", preset="test_cpu", run="longer", epochs=2)
    train.run(ws, "v4_sota", preset="test_cpu", run="longer", epochs=3, resume=True)
    lines, _ = read_metrics(runs_dir(ws) / "longer" / "metrics.jsonl")
    base = 3e-3  # the test_cpu preset's
    assert [line["epoch"] for line in lines] == [0, 1, 2]
    assert lines[1]["lr"] == pytest.approx(training.cosine_lr(base, 1, 2))  # trained as a 2-epoch run
    assert lines[2]["lr"] == pytest.approx(training.cosine_lr(base, 2, 3)) and lines[2]["lr"] > 0.0
    info = json.loads((runs_dir(ws) / "longer" / "run.json").read_text())
    assert info["epochs"] == 3
    assert [(h["epochs"], h["resume"]) for h in info["history"]] == [(2, False), (3, True)]


def test_validation_is_float32_and_counts_galaxies(trained: Path) -> None:
    import torch

    from core.config import load

    preset = load(trained, environ={}).presets["test_cpu"]
    run_dir = runs_dir(trained) / "tiny"
    trainer = training.Trainer(run_dir, stamps_dir(trained, "v4_sota", "grid_sota"), preset, 0, 1, 1)
    trainer.load(run_dir / "checkpoint.pt")
    plain = trainer.validate()
    trainer.amp = torch.bfloat16  # as on a GPU with the bf16 presets: training only
    again = trainer.validate()
    assert np.array_equal(plain[0], again[0])  # same float32 scores, no bf16 ties
    line = read_metrics(run_dir / "metrics.jsonl")[0][-1]
    assert line["n_neg_independent"] <= line["n_neg"] and line["n_pos_independent"] < line["n_pos"]
    assert line["pauc_max_fpr"] == pytest.approx(pauc_max_fpr(line["n_neg_independent"]))
    assert line["pauc"] is not None and "auroc" in line["intervals"]


def test_best_is_chosen_on_partial_auroc_then_auroc() -> None:
    history = [{"pauc": 0.7, "auroc": 0.95}, {"pauc": 0.8, "auroc": 0.90}]
    assert training._is_best(history[1], history)
    history.append({"pauc": 0.8, "auroc": 0.92})  # a tie on pauc: AUROC decides
    assert training._is_best(history[2], history)
    history.append({"pauc": 0.75, "auroc": 0.99})
    assert not training._is_best(history[3], history)
    assert pauc_max_fpr(80) == pytest.approx(3 / 80) and pauc_max_fpr(10**6) == 1e-3


def test_a_gpu_preset_on_the_cpu_warns_and_says_how_long(stamps_ws: Path, capsys, monkeypatch) -> None:
    """Issue 15: an fp16 preset on a CPU ran at a few images/s with no warning and no ETA, and
    torch warned about more DataLoader workers than CPUs."""
    import warnings

    monkeypatch.setattr(training, "PROGRESS_EVERY_S", 0.0)  # every step says where it is
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the project's own runs raise none
        train.run(stamps_ws, "v4_sota", preset="test_gpu_on_cpu", run="gpu-on-cpu")
    said = capsys.readouterr().out
    assert "train: warning: this preset asks for fp16 on a GPU; there is none here" in said
    assert f"asks for 512 loader workers per process; this machine has {training.cpus_here()} CPU(s)" in said
    progress = [line for line in said.splitlines() if line.startswith("train: epoch 1/1 step")]
    assert progress and all(line.endswith("of training left") for line in progress)
    assert (
        training.time_left(45) == "45 s"
        and training.time_left(600) == "10 min"
        and training.time_left(7200) == "2.0 h"
    )


def test_independent_units_are_counted_not_galaxies(trained: Path, tmp_path: Path) -> None:
    """Issue 23: objects closer than 1.5″ are one unit. Stamps carry the manifest's `unit`,
    and eval's and train's counts of independent galaxies count units: two hosts made one
    unit count once."""
    import pyarrow as pa

    from jobs.learn.dataset import task_galaxies
    from jobs.learn.models import load_run
    from jobs.learn.scoring import score_split

    parts = sorted(stamps_dir(trained, "v4_sota", "grid_sota").glob("part-*.parquet"))
    table = pq.read_table(parts)
    assert "unit" in table.column_names  # carried from the manifest by inject
    test = np.array(table.column("split").to_pylist()) == "test"
    hosts = np.array(table.column("is_control").to_pylist()) == False  # noqa: E712
    keys = [
        f"{b}:{o}"
        for b, o in zip(table.column("brickname").to_pylist(), table.column("objid").to_pylist(), strict=True)
    ]
    a, b = sorted({keys[i] for i in np.flatnonzero(test & hosts)})[:2]
    units = [a if k == b else u for k, u in zip(keys, table.column("unit").to_pylist(), strict=True)]
    merged = tmp_path / "stamps"
    merged.mkdir()
    out = table.set_column(table.column_names.index("unit"), "unit", pa.array(units, pa.string()))
    pq.write_table(out.replace_schema_metadata(table.schema.metadata), merged / "part-00000.parquet")
    model, meta_cols = load_run(runs_dir(trained) / "tiny")
    before = score_split(model, meta_cols, stamps_dir(trained, "v4_sota", "grid_sota"), "test")
    after = score_split(model, meta_cols, merged, "test")
    n_before = np.unique(before["galaxy"][before["label"]]).size
    assert np.unique(after["galaxy"][after["label"]]).size == n_before - 1
    lookup = task_galaxies([str(merged / "part-00000.parquet")], "test")
    ids = np.array(table.column("task_id").to_pylist())
    codes = lookup(ids[[keys.index(a), keys.index(b)]])
    assert codes[0] == codes[1]
