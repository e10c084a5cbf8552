"""`score` (inference): a trained run over real galaxies -> the ranking and the candidates.

Every galaxy of the parent sample is cut out of the coadds (no injection), normalised as in
training and scored by the run's best model (float32), then ranked by a partitioned sort
(jobs/learn/ranking.py: a few numbers a galaxy in memory). `candidates.scores.parquet` holds
one row per galaxy, sorted by score (highest first; galaxies that could not be cut out last,
with `ok = false` and the reason): rank, ids, ra, dec, brick, split, psfsize_r, score (the
sigmoid of the logit), logit, run and — for a galaxy within 3″ of a known lens (the shipped
lenscat table or the workspace's catalogs/known_lenses.csv) — the lens's name, grade and
reference. `candidates.parquet` holds the same columns and the stamp for the top
`--keep-stamps` and every known lens: what the console shows. The summary lists every known
lens with its rank ("known-lens recovery"). `hard_negatives.parquet` lists the top-scoring
injection controls (galaxies known to hold no injected arc, none with a known lens in its
stamp) for hard-negative mining. `blinds.parquet` holds `--blinds` items for calibrating the
inspectors (jobs/learn/blinds.py): simulated lenses and known non-lenses as hard as the
candidates (graded X in other runs, named by the `--lookalikes` catalogue, or injection
controls), with the candidates' columns, that the console mixes into triage;
`blinds.truth.parquet` says which is which.

`--catalog FILE` scores any list of positions instead (CSV, parquet or FITS with ra, dec and
optionally name, population), cut from the cached coadds, into
`data/candidates/<run>/catalog-<file stem>.parquet` (and its `.scores.parquet`,
`.summary.json`): a lookalike sample, a DR10 user's own targets. `--cutouts DIR` scores FITS
cutout files instead (jobs/survey/fits_cutouts.py), into `cutouts-<folder>.parquet`.

    python -m jobs.stages.score --workspace DIR --variant V [options]   (--help lists them)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core import figures
from core import stamps as stamp_contract
from core.layout import (
    BLINDS_FILE,
    BLINDS_TRUTH_FILE,
    CANDIDATES_FILE,
    HARD_NEGATIVES_FILE,
    candidates_dir,
    scores_file,
)
from core.stamps import write_stamps
from jobs.learn import ranking
from jobs.runtime import stage as stage_runtime
from jobs.runtime.allocator import release_freed_memory

PARENT_COLUMNS = ("brickname", "objid", "ra", "dec", "split", "psfsize_r", "mag_r", "mag_z", "type")
CATALOG_COLUMNS = ("name", "population", "ra", "dec", "noise_from", "noise_g", "noise_r", "noise_z")
# candidates.parquet keeps the stamps of the top K and of every known lens
KEEP_STAMPS = stage_runtime.declared_default("score", "keep_stamps")
HARD_NEGATIVES = stage_runtime.declared_default("score", "hard_negatives")
BLINDS = stage_runtime.declared_default("score", "blinds")
KNOWN_COLUMNS = ("known_lens", "known_lens_grade", "known_lens_reference", "known_lens_sep_arcsec")
TOP_SHOWN = 10  # the top candidates the summary lists and the log prints
# row groups read between two returns of freed memory to the OS: Arrow's allocator keeps what a
# row group's read freed, and over thousands of them that grew with the sample (+220 MB at 100k)
RELEASE_EVERY = 64


def recovery(table: Any, n: int) -> list[dict[str, Any]]:
    """The known lenses among ranked rows (`table`: every known lens's of the `n` ranked), each
    once (by its nearest galaxy: a neighbour within 3″ carries the name too): name, rank,
    score, grade, reference."""
    named = table.filter(pc.is_valid(table.column("known_lens")))  # Python rows for these only
    rows = [r for r in named.select(["rank", "score", "ok", *KNOWN_COLUMNS]).to_pylist() if r["known_lens"]]
    nearest: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["known_lens_sep_arcsec"]):
        nearest.setdefault(r["known_lens"], r)
    return [
        {
            "name": r["known_lens"],
            "rank": r["rank"] if r["ok"] else None,
            "of": n,
            "score": r["score"],
            "grade": r["known_lens_grade"],
            "reference": r["known_lens_reference"],
            "separation_arcsec": r["known_lens_sep_arcsec"],
        }
        for r in sorted(nearest.values(), key=lambda r: r["rank"])
    ]


def run(
    workspace: Path,
    variant: str,
    *,
    grid: str | None = None,
    run: str | None = None,
    hard_negatives: int = HARD_NEGATIVES,
    cache: str | None = None,
    catalog: str | None = None,
    keep_stamps: int = KEEP_STAMPS,
    device: str | None = None,
    loader_workers: int | None = None,
    blinds: int = BLINDS,
    force: bool = False,
    cutouts: str | None = None,
    lookalikes: str | None = None,
) -> dict[str, Any]:
    """Score every galaxy of the parent sample (or `catalog`, or the FITS cutout files in
    `cutouts`) with the run's model; skipped when the model, the cutouts, the stamps,
    the known lenses and the options are those of the output in place, unless `force`."""
    import os

    import pyarrow.parquet as pq
    import torch

    from core.layout import lookalikes_in_use, run_checkpoint, run_name_of, runs_dir, stamps_dir
    from core.names import check_name
    from core.schemas import galaxy_keys
    from jobs.learn.models import load_run
    from jobs.learn.scoring import sigmoid, stream_logits
    from jobs.survey import cutting, fits_cutouts, known_lenses
    from jobs.survey.catalogs import catalog_stem

    config, grid = stage_runtime.resolve(workspace, variant, grid)
    run_name = check_name("run", run_name_of(config, variant, {"run": run, "grid": grid}))
    stage_runtime.check_cuda(device or "cpu")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if loader_workers is None:
        loader_workers = min(4, os.cpu_count() or 1) if device == "cuda" else 0
    if catalog is not None and cutouts is not None:
        raise stage_runtime.StageError("--catalog and --cutouts: give one or the other")
    # the store first: one it cannot open (locked, damaged, a full disk) stops the run before its work
    rejected = _rejected(workspace, run_name) if catalog is None and cutouts is None else []
    model, meta_cols = load_run(runs_dir(workspace) / run_name)
    if cutouts is not None:
        size = config.variants[variant].injection.stamp_size
        made = fits_cutouts.cached(workspace, Path(cutouts), size, force, "score")
        catalog = f"cutouts-{catalog_stem(cutouts)}"  # scored like a catalogue, named for its folder
        target = f"{catalog}.parquet"
    else:
        made = cutting.run(workspace, variant, catalog=catalog, cache=cache)  # skipped when up to date
        target = CANDIDATES_FILE if catalog is None else f"catalog-{catalog_stem(catalog)}.parquet"
    summary_name = "summary.json" if catalog is None else f"{Path(target).stem}.summary.json"
    scores_name = scores_file(Path(target)).name
    extra = (HARD_NEGATIVES_FILE, BLINDS_FILE, BLINDS_TRUTH_FILE) if catalog is None else ()
    out = candidates_dir(workspace, run_name)
    outputs = [str(out / name) for name in (target, scores_name, *extra)]
    stamps = stamps_dir(workspace, variant, grid)
    looks = lookalikes_in_use(workspace, lookalikes) if catalog is None else None
    digest = stage_runtime.fingerprint(
        "score",
        run_name,
        target,
        (hard_negatives, keep_stamps, blinds, rejected) if catalog is None else keep_stamps,
        stage_runtime.signatures(
            run_checkpoint(runs_dir(workspace) / run_name),
            Path(made["outputs"][0]) / stage_runtime.STAMP_FILE,
            *sorted(Path(made["outputs"][0]).glob("part-*.parquet")),  # each part by its footer
            stamps / stage_runtime.STAMP_FILE if catalog is None else None,
            *(sorted(stamps.glob("part-*.parquet")) if catalog is None else []),
            looks,
            *(
                path
                for _, path in known_lenses.sources(workspace, config.variants[variant].training.catalogues)
            ),
        ),
    )
    if not force and stage_runtime.up_to_date(out, digest, key=target):
        stage_runtime.unchanged(f"score: {out / target} is")
        return {"outputs": outputs, "skipped": True, **json.loads((out / summary_name).read_text())}
    lenses = known_lenses.load(workspace, config.variants[variant].training.catalogues)
    files = sorted(str(p) for p in Path(made["outputs"][0]).glob("part-*.parquet"))
    if not files:
        raise stage_runtime.StageError(f"{made['outputs'][0]}: no cutouts to score")
    names = CATALOG_COLUMNS if catalog is not None else PARENT_COLUMNS
    wanted = {"row", "ok", "fail_reason", *names}
    small = [c for c in pq.read_schema(files[0]).names if c in wanted]
    rows, logits = stream_logits(model, meta_cols, files, device, workers=loader_workers)
    release_freed_memory()  # the batches' blocks (jobs/runtime/allocator.py): not needed again
    usable = _column_by_row(files, "ok").astype(bool)
    n = len(usable)
    logit = np.full(n, np.nan, np.float32)  # the model's own float32: four bytes a galaxy, exact
    logit[rows] = logits  # `row` numbers the positions 0..n-1
    del rows, logits
    ok = usable & np.isfinite(logit)
    del usable
    order = ranking.rank_order(logit, ok)
    size = config.variants[variant].injection.stamp_size
    keyed = _Keys(n, Path(target).stem) if catalog is not None else None
    known_x = _KnownNonLenses(rejected, looks, lenses, size) if catalog is None else None
    rows_of = _RankedRows(logit, ok, names, run_name, lenses, max(keep_stamps, TOP_SHOWN), keyed, known_x)
    written = (target, scores_name, summary_name, *extra)
    with stage_runtime.atomic_dir(out, digest, replaces=written, key=target) as tmp:  # other files stay
        scores_path = tmp / scores_name
        chunks = _chunks(files, small)
        gathered = ranking.write_ranking(
            chunks, order, scores_path, rows_of.make, rows_of.pick, rows_of.finish
        ).table()
        release_freed_memory()  # the buckets' sorting: the stamps' read-back starts from what is live
        gathered = keyed.apply(gathered) if keyed is not None and gathered is not None else gathered
        if gathered is None:
            gathered = pq.read_schema(scores_path).empty_table()
        ranks = gathered.column("rank").to_numpy()
        lens = pc.is_valid(gathered.column("known_lens")).to_numpy(zero_copy_only=False)
        kept = gathered.filter(pa.array((ranks <= keep_stamps) | lens))
        kept_rows = kept.column("row").to_numpy() if "row" in kept.column_names else np.zeros(0, np.int64)
        plain = [c for c in ("row", "known_from") if c in kept.column_names]
        candidates = _with_stamps(kept.drop_columns(plain), kept_rows, files, size)
        found = recovery(gathered, n)
        ids = [c for c in ("brickname", "objid", "name") if c in gathered.column_names]
        top = gathered.filter(pa.array(ranks <= TOP_SHOWN)).select(["rank", *ids, "score"])
        summary: dict[str, Any] = {
            "run": run_name,
            "device": device,
            "candidates": n,
            "scored": int(ok.sum()),
            "flagged": int(n - ok.sum()),
            "stamps_kept": candidates.num_rows,
            "known_lenses": found,
            "top": top.to_pylist(),
        }
        if catalog is None:
            from jobs.learn import blinds as blind_items

            hard = _hard_negatives(model.cpu(), meta_cols, stamps, run_name, hard_negatives, lenses)
            summary["hard_negatives"] = hard.num_rows
            on_show = candidates.select(["brickname", "objid"]).to_pydict()
            exclude = set(galaxy_keys(on_show["brickname"], on_show["objid"]))
            known = known_x.with_stamps(gathered, files)
            scores = sigmoid(logit[order[: int(ok.sum())]])  # the usable ones', highest first
            whole = ranking.Ranking(scores_path, scores)
            blind, truth, summary["blinds"] = blind_items.build(
                model, meta_cols, stamps, run_name, blinds, lenses, whole, candidates, exclude, known
            )
            _say_blinds(summary["blinds"])
            pq.write_table(hard, tmp / HARD_NEGATIVES_FILE)
            write_stamps(blind, tmp / BLINDS_FILE, "zstd")
            pq.write_table(truth, tmp / BLINDS_TRUTH_FILE)
        write_stamps(candidates, tmp / target, "zstd")
        (tmp / summary_name).write_text(json.dumps(summary, indent=2))
    for row in summary["top"]:
        label = row.get("name") or f"{row.get('brickname')} {row.get('objid')}"
        print(f"score: #{row['rank']} {label} {figures.score(row['score'])}", flush=True)
    for lens in found:
        where = f"#{lens['rank']} of {n}" if lens["rank"] else "not scored"
        print(f"score: known lens {lens['name']} ({lens['grade']}): {where}", flush=True)
    return {"outputs": outputs, **summary}


class _RankedRows:
    """The ranking's rows, made a chunk of the cutouts at a time (jobs/learn/ranking.py's
    `make_rows`, `pick`, `finish`): each position's columns, score, logit and known lens; the
    rows gathered beside the ranking (the top `top`, every known lens, the known non-lenses);
    a catalogue's keys given last."""

    def __init__(
        self,
        logit: np.ndarray,
        ok: np.ndarray,
        names: tuple[str, ...],
        run: str,
        lenses: dict[str, np.ndarray],
        top: int,
        keyed: _Keys | None,
        known_x: _KnownNonLenses | None,
    ) -> None:
        self.logit, self.ok, self.names, self.run, self.lenses = logit, ok, names, run, lenses
        self.top, self.keyed, self.known_x = top, keyed, known_x

    def make(self, chunk: Any, ranks: np.ndarray) -> Any:
        from jobs.survey import known_lenses

        index = chunk.column("row").to_numpy()
        ra, dec = chunk.column("ra").to_numpy(), chunk.column("dec").to_numpy()
        if self.keyed is not None:
            self.keyed.digest(chunk, ranks)
        known = known_lenses.annotate(ra, dec, self.lenses)
        table = _ranked(chunk, known, self.logit[index], self.ok[index], self.names, self.run)
        table = table.add_column(0, "rank", pa.array(ranks + 1))
        return self.known_x.mark(table, self.ok[index]) if self.known_x is not None else table

    def pick(self, table: Any) -> np.ndarray:
        chosen = table.column("rank").to_numpy() <= self.top
        chosen |= pc.is_valid(table.column("known_lens")).to_numpy(zero_copy_only=False)
        if "known_from" in table.column_names:
            chosen |= pc.not_equal(table.column("known_from"), "").to_numpy(zero_copy_only=False)
        return chosen

    def finish(self, table: Any) -> Any:
        table = self.keyed.apply(table) if self.keyed is not None else table
        return table.drop_columns([c for c in ("row", "known_from") if c in table.column_names])


def _chunks(files: list[str], columns: list[str]) -> Iterator[Any]:
    """The cutouts' small columns, a row group at a time."""
    from core.storage import parquet_file

    read = 0
    for uri in files:
        handle = parquet_file(uri)
        for group in range(handle.metadata.num_row_groups):
            yield handle.read_row_group(group, columns=columns, use_threads=False)
            read += 1
            if read % RELEASE_EVERY == 0:
                release_freed_memory()


def _column_by_row(files: list[str], column: str) -> np.ndarray:
    """One column of the cutouts, placed by `row` (the positions 0..n-1)."""
    from core.storage import parquet_file

    n = sum(parquet_file(uri).metadata.num_rows for uri in files)
    out = None
    for chunk in _chunks(files, ["row", column]):
        values = chunk.column(column).to_numpy(zero_copy_only=False)
        if out is None:
            out = np.zeros(n, values.dtype)
        out[chunk.column("row").to_numpy()] = values
    return out if out is not None else np.zeros(0)


class _Keys:
    """A catalogue's or a folder's rows keyed as the console grades them: `brickname` the
    source (`cutouts-<folder>`, `catalog-<name>`) and `objid` a 31-bit digest of the row's name
    (else its position), the same however the folder or file is ordered or grows; a clash
    takes the next free number, in rank order (jobs/learn/ranking.py `unique_keys`)."""

    def __init__(self, n: int, source: str) -> None:
        self.base = np.zeros(n, np.int32)  # 31-bit keys: four bytes a row
        self.source = source
        self.final: np.ndarray | None = None

    def digest(self, chunk: Any, ranks: np.ndarray) -> None:
        named = chunk.column("name").to_pylist() if "name" in chunk.column_names else [None] * len(ranks)
        ra, dec = chunk.column("ra").to_numpy(), chunk.column("dec").to_numpy()
        self.base[ranks] = ranking.digest_keys(named, ra, dec)

    def apply(self, table: Any) -> Any:
        if self.final is None:  # every row digested: the first bucket's turn
            self.final = ranking.unique_keys(self.base)
            moved = int(np.count_nonzero(self.final != self.base))
            del self.base
            if moved:
                print(
                    f"score: {moved} row(s) of {self.source} share their key with a row ranked"
                    " above (the same name, or position where unnamed, or a 31-bit digest clash):"
                    " told apart in rank order, their ids can change when the ranking does",
                    flush=True,
                )
        objid = self.final[table.column("rank").to_numpy() - 1]
        out = table.add_column(1, "brickname", pa.array([self.source] * table.num_rows, pa.string()))
        return out.add_column(2, "objid", pa.array(objid.astype(np.int64), pa.int64()))


class _KnownNonLenses:
    """The parent galaxies known to be no lens: graded X by consensus in other runs
    (`_rejected`), or named by the lookalike catalogue (within SAME_OBJECT_ARCSEC); none with
    a known lens in its stamp. Marked row by row as the ranking is written (`known_from`), then
    given their stamps: the blind items' pool of hard non-lenses (jobs/learn/blinds.py)."""

    def __init__(
        self, rejected: list[str], looks: str | None, lenses: dict[str, np.ndarray], size: int
    ) -> None:
        from jobs.survey.catalogs import read_positions

        self.rejected = set(rejected)
        self.catalogued = read_positions(looks, default_population="lookalike") if looks is not None else None
        self.lenses, self.size = lenses, size

    def mark(self, table: Any, ok: np.ndarray) -> Any:
        from core.schemas import galaxy_keys
        from jobs.survey import known_lenses
        from jobs.survey.catalogs import SAME_OBJECT_ARCSEC

        keys = galaxy_keys(table.column("brickname").to_pylist(), table.column("objid").to_pylist())
        ra, dec = table.column("ra").to_numpy(), table.column("dec").to_numpy()
        source = np.full(len(keys), "", dtype=object)
        if self.catalogued is not None:
            source[known_lenses.match(ra, dec, self.catalogued, SAME_OBJECT_ARCSEC) >= 0] = (
                "catalogued lookalike"
            )
        source[[i for i, k in enumerate(keys) if k in self.rejected]] = "graded X"
        source[~ok | known_lenses.in_stamp(ra, dec, self.lenses, self.size)] = ""
        return table.append_column("known_from", pa.array(source.tolist(), pa.string()))

    def with_stamps(self, gathered: Any, files: list[str]) -> tuple[Any, list[str]] | None:
        """The marked rows with their stamps, and where each is known from; None if none."""
        hits = gathered.filter(pc.not_equal(gathered.column("known_from"), ""))
        if hits.num_rows == 0:
            return None
        rows = hits.column("row").to_numpy()
        table = _with_stamps(hits.drop_columns(["row", "known_from"]), rows, files, self.size)
        return table, hits.column("known_from").to_pylist()


def _rejected(workspace: Path, run: str) -> list[str]:
    """The galaxies graded X by consensus in other runs ("brickname:objid", sorted): the
    blind items' known non-lenses, so a change of them is a change of the score's inputs."""
    from core import grades
    from core.workspace import Workspace

    return sorted(f"{b}:{o}" for b, o in grades.consensus_x(Workspace(workspace).store, exclude_run=run))


def _say_blinds(drawn: dict[str, Any]) -> None:
    """The blind items drawn, and whether the non-lenses follow the candidates' scores."""
    from jobs.learn.blinds import KS_ALPHA

    where = ", ".join(f"{n} {s}" for s, n in drawn["not_lens_from"].items() if n) or "none"
    p = drawn["not_lens_ks_p"]
    follow = (
        f"; as many as score like the candidates (KS p = {p:.2g} against their scores)"
        if p is not None and p > KS_ALPHA
        else ""
    )
    print(
        f"score: blinds: {drawn['lens']} simulated lenses, {drawn['not_lens']} known non-lenses"
        f" ({where}){follow}",
        flush=True,
    )
    if p is not None and p <= KS_ALPHA:
        print(
            f"score: blinds: the known non-lenses do not score like the candidates (KS p = {p:.2g}): "
            "too few known non-lenses score as high (a lookalike catalogue adds some; galaxies"
            " graded X by consensus join them next round)",
            flush=True,
        )


def _ranked(
    info: Any,
    known: dict[str, list[Any]],
    logit: np.ndarray,
    ok: np.ndarray,
    names: tuple[str, ...],
    run: str,
) -> Any:
    """Rows of the ranking (without their rank) for a chunk of the cutouts: their columns
    `names`, score and logit (null where unusable), the run, the known lens each is (or none)
    and `row`, where they are in the cutouts."""
    from jobs.learn.scoring import sigmoid

    n, bad = len(ok), ~ok
    data = {
        **{c: info.column(c) for c in names if c in info.column_names},
        "score": pa.array(sigmoid(logit), mask=bad),
        "logit": pa.array(logit.astype(np.float64), mask=bad),
        "run": pa.repeat(pa.scalar(run, pa.string()), n),
        "ok": pa.array(ok),
        "fail_reason": info.column("fail_reason"),
        **{
            c: pa.array(known[c], pa.float64() if c.endswith("arcsec") else pa.string())
            for c in KNOWN_COLUMNS
        },
        "row": info.column("row"),
    }
    return pa.table(data)


def _with_stamps(kept: Any, rows: np.ndarray, files: list[str], size: int) -> Any:
    """`kept` (ranked rows) with their stamps, read back row group by row group from the
    cutouts: only the kept rows' stamps are ever held, once (as Arrow buffers, no Python
    object a stamp; put in `kept`'s order as slices of what was read, not copied again); a row
    not found gets none."""
    from core.storage import parquet_file

    wanted = {int(r): i for i, r in enumerate(rows)}
    where: list[Any] = [None] * len(wanted)  # each kept row's stamp: a one-row slice
    read = 0
    for uri in files:
        handle = parquet_file(uri)
        for group in range(handle.metadata.num_row_groups):
            numbers = handle.read_row_group(group, columns=["row"], use_threads=False).column(0).to_numpy()
            hits = [j for j, r in enumerate(numbers) if int(r) in wanted]
            if not hits:  # the stamps of a row group with no kept row are never read
                continue
            stamps = handle.read_row_group(group, columns=["stamp"], use_threads=False).column(0)
            piece = stamps.take(hits).combine_chunks()  # the row group's other stamps are let go
            for at, j in enumerate(hits):
                where[wanted[int(numbers[j])]] = piece.slice(at, 1)
            read += 1
            if read % RELEASE_EVERY == 0:
                release_freed_memory()
    missing = pa.nulls(1, pa.binary())
    stamp = pa.chunked_array([s if s is not None else missing for s in where], pa.binary())
    table = kept.append_column("stamp", stamp)
    return table.replace_schema_metadata(stamp_contract.arrow_metadata((3, size, size)))


def _hard_negatives(
    model: Any, meta_cols: list[str], stamps: Path, run: str, top: int, lenses: dict[str, np.ndarray]
) -> Any:
    """The highest-scoring injection controls: real galaxies with no injected arc, one row per
    galaxy (its first usable control row), none with a known lens in its stamp (a lens is not
    a negative, however hard). Streamed a row group at a time, keeping only the running top
    `top`: the controls' stamps are never all in memory."""
    from core.schemas import galaxy_keys
    from core.storage import parquet_file
    from jobs.learn.dataset import meta_features
    from jobs.learn.scoring import logits_of, sigmoid
    from jobs.survey import known_lenses

    parts = sorted(stamps.glob("part-*.parquet"))
    empty = pa.table({"task_id": pa.array([], pa.int64())})
    if not parts or top <= 0:
        return empty
    columns = list(
        dict.fromkeys(["task_id", "brickname", "objid", "ra", "dec", "split", "is_control", "ok", *meta_cols])
    )
    seen: set[str] = set()
    best = None
    for uri in parts:
        try:
            handle = parquet_file(str(uri))
            meta = stamp_contract.stamp_meta(handle.schema_arrow)
            groups = handle.metadata.num_row_groups
        except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds for a damaged file
            print(
                f"score: hard negatives: skipped {uri}: not a readable parquet file ({type(err).__name__})",
                flush=True,
            )
            continue
        for group in range(groups):
            try:
                table = handle.read_row_group(group, columns=columns)
            except Exception as err:  # noqa: BLE001 - a damaged row group: named, skipped
                print(f"score: hard negatives: skipped {uri}#{group}: {type(err).__name__}", flush=True)
                continue
            usable = table.column("is_control").to_numpy(zero_copy_only=False) & table.column("ok").to_numpy(
                zero_copy_only=False
            )
            keys = galaxy_keys(table.column("brickname").to_pylist(), table.column("objid").to_pylist())
            rows = []
            for i in np.flatnonzero(usable):
                if keys[i] not in seen:
                    seen.add(keys[i])
                    rows.append(int(i))
            if not rows:
                continue
            picked = table.take(rows)
            ra, dec = picked.column("ra").to_numpy(), picked.column("dec").to_numpy()
            not_lens = np.flatnonzero(~known_lenses.in_stamp(ra, dec, lenses, meta["shape"][-1]))
            if not_lens.size == 0:
                continue
            picked = picked.take(not_lens)
            try:  # only a row group holding a new control galaxy has its stamps read
                stamp_column = handle.read_row_group(group, columns=["stamp"]).column(0)
                images = stamp_contract.decode(stamp_column.take(np.asarray(rows)[not_lens]), meta)
            except Exception as err:  # noqa: BLE001 - a damaged row group: named, skipped
                print(f"score: hard negatives: skipped {uri}#{group}: {type(err).__name__}", flush=True)
                continue
            extra = None
            if meta_cols:
                values = {c: picked.column(c).to_numpy() for c in meta_cols} | {
                    "task_id": np.arange(len(images))
                }
                extra = meta_features(values, meta_cols)
            scores = sigmoid(logits_of(model, images, extra))
            picked = picked.drop_columns(["is_control", "ok"]).append_column("score", pa.array(scores))
            best = picked if best is None else pa.concat_tables([best, picked])
            order = np.argsort(-best.column("score").to_numpy(), kind="stable")[:top]  # ties: first seen
            best = best.take(order)
    if best is None:
        return empty
    return best.append_column("run", pa.array([run] * best.num_rows))


main = stage_runtime.entry("score", run)


if __name__ == "__main__":
    raise SystemExit(main())
