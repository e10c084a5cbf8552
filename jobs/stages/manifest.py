"""`manifest` (seed Phase 4a): grid × galaxies -> one row per stamp task.

For each split, `n_total_per_split` tasks: a fraction `control_frac` are controls (no arc),
the rest positives, each with one grid configuration, the configurations dealt out evenly.
A control galaxy is one independent negative: it serves at most one task in its split (drawn
without replacement); where a split has fewer control galaxies than the grid asks for, fewer
control rows are written and the stage says so. Positives may reuse a galaxy, each time with
another configuration and source position.
Control assignment is a deterministic hash of the galaxy (brickname + objid):

- `unpaired` (default): a galaxy is either a control or a positive, never both — the seed's
  Gen-2 fix for its critical bug;
- `paired` (ablations only, with a warning): each galaxy gives a positive and a control, as
  the seed's Gen-1 did, which teaches "extra flux" instead of arcs.

Each positive also gets a drawn source offset and position angles, the lens axis ratio and
angle from the galaxy's Tractor shape, and a per-task seed. A verification step fails the
stage when unpaired controls overlap positives, when a galaxy sits in two splits, or when the
grid coverage is uneven beyond sampling noise; its report is printed and saved beside the
manifest.

    python -m jobs.stages.manifest --workspace DIR --variant v4_sota [--grid grid_sota] [--force]
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.layout import MANIFEST_FILE, manifest_dir, parent_file
from core.schemas import SPLITS, galaxy_keys, known_rows
from jobs.lensing import sources
from jobs.lensing.shapes import tractor_to_q_theta
from jobs.runtime import stage as stage_runtime
from jobs.survey import known_lenses

GRID_AXES = ("theta_e_arcsec", "src_dmag", "src_reff_arcsec", "src_e", "shear")
CARRIED = (
    "brickname",
    "objid",
    "ra",
    "dec",
    "type",
    "shape_r",
    *(f"{c}_{b}" for c in ("flux", "psfsize", "psfdepth", "nobs") for b in ("g", "r", "z")),
)
MIN_LENS_Q = 0.4
COVERAGE_P_MIN = 1e-4


@dataclass(frozen=True)
class KnownTasks:
    """The parent galaxies that are known lenses (each lens by its nearest galaxy within 3″):
    their rows, tiers and the lenses' names."""

    rows: np.ndarray
    tiers: np.ndarray
    names: np.ndarray


def known_tasks(parent: dict[str, np.ndarray], lenses: dict[str, np.ndarray], training: Any) -> KnownTasks:
    """The known lenses that are parent galaxies, with the tier their grade maps to. Said in
    the log, counted: lenses outside the parent's bricks (one line), lenses in its bricks that
    match no parent galaxy (one line each: not an LRG by the cuts, or flagged), and grades that
    map to no tier (one line per grade)."""
    from jobs.survey.layout import brick_at

    index, separation = known_lenses.match_with_separation(parent["ra"], parent["dec"], lenses)
    rows = known_lenses.nearest_per_lens(index, separation)
    lens_of = index[rows]
    grades = lenses["grade"][lens_of]
    tiers = np.array([training.tier_of(g) for g in grades], dtype=object)
    for i in np.flatnonzero(tiers == ""):
        lens = lens_of[i]
        print(
            f"manifest: known lens {lenses['name'][lens]} ({lenses['source'][lens]}) is graded "
            f"{str(grades[i])!r}: no tier ([training] tiers); not a positive",
            flush=True,
        )
    bricks = set(np.asarray(parent["brickname"]).tolist())
    matched = set(lens_of.tolist())
    inside = [
        i
        for i in range(lenses["ra"].size)
        if i not in matched and brick_at(float(lenses["ra"][i]), float(lenses["dec"][i])).name in bricks
    ]
    for i in inside:
        print(
            f"manifest: known lens {lenses['name'][i]} ({lenses['source'][i]}, ra {lenses['ra'][i]:.5f}, "
            f"dec {lenses['dec'][i]:+.5f}) is in the survey's bricks but no parent galaxy within 3″: "
            "not a positive",
            flush=True,
        )
    outside = lenses["ra"].size - len(matched) - len(inside)
    tiered = int((tiers != "").sum())
    print(
        f"manifest: known lenses: {len(matched)} are parent galaxies ({tiered} with a tier: positives), "
        f"{len(inside)} in the survey's bricks but not parent galaxies, {outside} outside its bricks",
        flush=True,
    )
    keep = tiers != ""
    return KnownTasks(rows[keep], tiers[keep], np.asarray(lenses["name"][lens_of][keep], dtype=object))


def _hash_unit(text: str, person: bytes) -> float:
    digest = hashlib.blake2b(text.encode(), digest_size=8, person=person).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def _seed(*parts: Any) -> int:
    text = ":".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def control_galaxies(keys: np.ndarray, control_frac: float) -> np.ndarray:
    """Which galaxies are controls: a hash of brickname + objid below `control_frac`."""
    return np.array([_hash_unit(k, b"halo-control") < control_frac for k in keys], dtype=bool)


def grid_configs(grid: Any) -> list[tuple[float, ...]]:
    axes = (grid.dmag_axis if axis == "src_dmag" else getattr(grid, axis) for axis in GRID_AXES)
    return list(itertools.product(*axes))


def _cycle(rng: np.random.Generator, n_items: int, n_out: int) -> np.ndarray:
    """`n_out` indices into `n_items`, each used evenly (±1), in shuffled rounds."""
    rounds = -(-n_out // n_items) if n_items else 0
    return (
        np.concatenate([rng.permutation(n_items) for _ in range(rounds)])[:n_out]
        if rounds
        else np.zeros(0, int)
    )


def _draw_once(rng: np.random.Generator, n_items: int, n_out: int) -> np.ndarray:
    """Up to `n_out` distinct indices into `n_items`, drawn without replacement: a control
    galaxy is one independent negative, so it serves at most one task in its split."""
    return rng.permutation(n_items)[:n_out]


def requested_controls(grid: Any) -> int:
    """Control rows a split asks for (unpaired: control_frac of the tasks; paired: half)."""
    if grid.control_mode == "paired":
        return grid.n_total_per_split // 2
    return int(np.round(grid.n_total_per_split * grid.control_frac))


def control_shortfalls(columns: dict[str, np.ndarray], grid: Any) -> dict[str, dict[str, int]]:
    """Splits that hold fewer control rows than the grid asks for (one row per galaxy)."""
    want = requested_controls(grid)
    out = {}
    for split in SPLITS:
        got = int(np.sum(columns["is_control"] & (columns["split"] == split)))
        if 0 < want and got < want and np.any(columns["split"] == split):
            out[split] = {"requested": want, "written": got}
    return out


def build(
    parent: dict[str, np.ndarray],
    grid: Any,
    variant: str,
    grid_name: str,
    exclude: np.ndarray | None = None,
    known: KnownTasks | None = None,
    galaxies: dict[str, tuple] | None = None,
) -> dict[str, np.ndarray]:
    """The manifest's columns for a parent sample and a grid; galaxies flagged in `exclude`
    (a known lens in their stamp) are neither controls nor hosts; the `known` lenses' own
    galaxies are one task each in their galaxy's split (a real positive, no arc added);
    `galaxies` each split's source galaxies (mode "catalogue", `catalogue_sources`)."""
    from jobs.survey.catalogs import same_object_units

    configs = np.array(grid_configs(grid), dtype=np.float64)
    keys = galaxy_keys(parent["brickname"], parent["objid"])
    # objects closer than 1.5″ are one unit: all host or all control, in one split, and at
    # most one control each (a control is one independent negative)
    first = same_object_units(parent["ra"], parent["dec"])
    is_ctrl_galaxy = control_galaxies(keys[first], grid.control_frac)
    split_of = np.asarray(parent["split"])[first]
    usable = np.ones(keys.size, bool) if exclude is None else ~np.asarray(exclude, bool)
    usable &= ~np.isin(first, first[~usable])  # a unit with an excluded member is out whole
    parts: list[dict[str, np.ndarray]] = []
    for split in SPLITS:
        in_split = np.flatnonzero((split_of == split) & usable)
        if in_split.size == 0:
            continue
        rng = np.random.default_rng(_seed(variant, grid_name, split))
        n_total = grid.n_total_per_split
        if grid.control_mode == "paired":
            gal = in_split[_draw_once(rng, in_split.size, n_total // 2)]
            pos_rows, ctrl_rows = gal, gal
        else:
            lead = first[in_split] == in_split  # a unit's first object stands for it as a control
            ctrl_pool = in_split[is_ctrl_galaxy[in_split] & lead]
            pos_pool = in_split[~is_ctrl_galaxy[in_split]]
            n_ctrl = requested_controls(grid)
            n_pos = n_total - n_ctrl
            for label, pool, need in (("control", ctrl_pool, n_ctrl), ("positive", pos_pool, n_pos)):
                if need and pool.size == 0:
                    raise stage_runtime.StageError(
                        f"split {split}: no {label} galaxies to draw {need} tasks from"
                    )
            ctrl_rows = ctrl_pool[_draw_once(rng, ctrl_pool.size, n_ctrl)]
            pos_rows = pos_pool[_cycle(rng, pos_pool.size, n_pos)]
        config_ids = _cycle(rng, len(configs), pos_rows.size)
        for rows, ids, kind in ((pos_rows, config_ids, "injection"), (ctrl_rows, None, "control")):
            mine = (galaxies or {}).get(split)
            part = _tasks(parent, split, rows, ids, configs, grid.source, rng, kind, mine)
            part["unit"] = keys[first[rows]]
            parts.append(part)
    for split in SPLITS:
        mine = np.flatnonzero(np.asarray(parent["split"])[known.rows] == split) if known else np.zeros(0, int)
        if mine.size and known is not None:
            rows = known.rows[mine]
            part = _tasks(parent, split, rows, None, configs, grid.source, None, "known")
            part["unit"] = keys[first[rows]]
            part["known_tier"], part["known_name"] = known.tiers[mine], known.names[mine]
            parts.append(part)
    if not parts:
        raise stage_runtime.StageError("the parent sample is empty")
    for part in parts:
        n = part["split"].size
        part.setdefault("known_tier", np.full(n, "", dtype=object))
        part.setdefault("known_name", np.full(n, "", dtype=object))
    columns = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
    n = len(columns["split"])
    columns["task_id"] = np.arange(n, dtype=np.int64)
    columns["seed"] = np.array([_seed(variant, grid_name, i) for i in range(n)], dtype=np.int64)
    return columns


def _tasks(
    parent: dict[str, np.ndarray],
    split: str,
    rows: np.ndarray,
    config_ids: np.ndarray | None,
    configs: np.ndarray,
    source: Any,
    rng: np.random.Generator | None,
    kind: str,
    galaxies: tuple | None = None,
) -> dict[str, np.ndarray]:
    """Tasks of one kind: "injection" (an arc from configuration `config_ids`), "control" or
    "known" (a known lens's own galaxy: a positive with nothing added)."""
    n = rows.size
    out = {c: parent[c][rows] for c in CARRIED}
    out["split"] = np.full(n, split, dtype=object)
    out["is_control"] = np.full(n, kind == "control")
    q, theta = tractor_to_q_theta(parent["shape_e1"][rows], parent["shape_e2"][rows])
    out["lens_q"] = np.clip(q, MIN_LENS_Q, 1.0)
    out["lens_theta"] = theta
    if kind != "injection" or rng is None or config_ids is None:
        out["config_id"] = np.full(n, -1, dtype=np.int32)
        for axis in GRID_AXES:
            out[axis] = np.zeros(n)
        for name in ("src_phi", "src_x_arcsec", "src_y_arcsec", "shear_phi"):
            out[name] = np.zeros(n)
        return {**out, **sources.none(n)}
    chosen = configs[config_ids]
    out["config_id"] = config_ids.astype(np.int32)
    for i, axis in enumerate(GRID_AXES):
        out[axis] = chosen[:, i]
    out.update(draw_geometry(out["theta_e_arcsec"], rng))
    out.update(sources.draw(source, out["flux_r"], out["src_dmag"], rng, out, galaxies))
    if source.mode == "catalogue":  # an image's own size and shape, not the grid's
        out["src_reff_arcsec"], out["src_e"] = np.full(n, np.nan), np.full(n, np.nan)
    return out


def _catalogue_file(workspace: Path, spec: Any) -> list[Path]:
    """The grid's source catalogue where it has one and it is there (its freshness counts)."""
    from jobs.lensing import catalogue

    path = catalogue.path_for(workspace, spec)
    return [Path(path)] if path is not None and Path(path).is_file() else []


def catalogue_sources(workspace: Path, spec: Any, splits: dict[str, float]) -> tuple[dict[str, tuple], Path]:
    """Each split's source galaxies from the grid's catalogue (jobs/lensing/catalogue.py): a
    galaxy serves the one split its id hashes to, and only if its r (F814W + r_minus_f814w)
    lies within `mag_r`; one line naming what is missing otherwise."""
    from jobs.lensing import catalogue

    path = catalogue.path_for(workspace, spec)
    try:
        galaxies = catalogue.load(path)
    except catalogue.CatalogueError as err:
        raise stage_runtime.StageError(str(err)) from None
    names = tuple(s for s in SPLITS if splits.get(s, 0) > 0)
    fractions = tuple(splits[s] for s in names)
    split = np.array([catalogue.split_of(i, names, fractions) for i in galaxies.ident])
    r = galaxies.mag + spec.r_minus_f814w
    usable = (r >= spec.mag_r[0]) & (r <= spec.mag_r[1])
    out = {}
    for name in names:
        chosen = np.flatnonzero((split == name) & usable)
        if chosen.size == 0:
            raise stage_runtime.StageError(
                f"{path}: no galaxy for split {name} with r within {list(spec.mag_r)} "
                f"({len(galaxies)} galaxies, {int(usable.sum())} within it)"
            )
        out[name] = (chosen, galaxies.ident[chosen], galaxies.mag[chosen])
    return out, path


def draw_geometry(theta_e: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each task's source offset (uniform on the disc of radius θE/2), source angle and shear
    angle."""
    n = theta_e.size
    radius = 0.5 * theta_e * np.sqrt(rng.random(n))
    angle = rng.uniform(0, 2 * np.pi, n)
    return {
        "src_x_arcsec": radius * np.cos(angle),
        "src_y_arcsec": radius * np.sin(angle),
        "src_phi": rng.uniform(0, np.pi, n),
        "shear_phi": rng.uniform(0, np.pi, n),
    }


def example_tasks(configs: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Tasks of grid configurations (rows of GRID_AXES) on made-up galaxies — axis ratio,
    angle and sub-pixel offset (dx, dy) drawn — for benchmarks and physics tests."""
    rng = np.random.default_rng(seed)
    configs = np.asarray(configs, dtype=float)
    n = len(configs)
    tasks = {axis: configs[:, i] for i, axis in enumerate(GRID_AXES)}
    tasks["lens_q"], tasks["lens_theta"] = rng.uniform(MIN_LENS_Q, 1.0, n), rng.uniform(0, np.pi, n)
    tasks.update(draw_geometry(tasks["theta_e_arcsec"], rng))
    tasks["dx"], tasks["dy"] = rng.uniform(-0.13, 0.13, n), rng.uniform(-0.13, 0.13, n)
    return tasks


def _coverage(split: str, config_ids: np.ndarray, configs: np.ndarray) -> dict[str, Any]:
    """Is the grid covered evenly, within sampling noise? Three tests, each at p >= 1e-4:
    chi² of the counts per configuration, chi² of each axis's marginal counts (decisive when
    there are few tasks per configuration), and the number of configurations never drawn
    against its Poisson expectation."""
    from scipy.stats import chi2, poisson

    n_configs = len(configs)
    out_of_range = int(np.sum((config_ids < 0) | (config_ids >= n_configs)))
    ids = config_ids[(config_ids >= 0) & (config_ids < n_configs)]
    counts = np.bincount(ids, minlength=n_configs)
    expected = ids.size / n_configs
    p_values = {}
    if n_configs > 1:
        p_values["configurations"] = float(
            chi2.sf(((counts - expected) ** 2 / expected).sum(), n_configs - 1)
        )
    for axis, values in zip(GRID_AXES, configs.T, strict=True):
        levels = np.unique(values)
        if levels.size < 2:
            continue
        got = np.array([counts[values == v].sum() for v in levels])
        want = ids.size * np.array([(values == v).sum() for v in levels]) / n_configs
        p_values[axis] = float(chi2.sf(((got - want) ** 2 / want).sum(), levels.size - 1))
    never = int(np.sum(counts == 0))
    p_values["never drawn"] = float(poisson.sf(never - 1, n_configs * np.exp(-expected))) if never else 1.0
    worst = min(p_values, key=p_values.get) if p_values else None
    ok = not out_of_range and all(p >= COVERAGE_P_MIN for p in p_values.values())
    return {
        "check": f"even grid coverage ({split})",
        "ok": ok,
        "positives": int(ids.size),
        "min": int(counts.min()),
        "max": int(counts.max()),
        "expected": round(expected, 2),
        "never_drawn": never,
        "worst_test": worst,
        "p_value": p_values.get(worst, 1.0),
        "out_of_range": out_of_range,
    }


def verify(
    columns: dict[str, np.ndarray],
    control_mode: str,
    configs: np.ndarray,
    near_lenses: set[str] | None = None,
) -> dict[str, Any]:
    """Check a manifest: disjoint controls (unpaired), one split per galaxy, even coverage,
    controls used once, and (given their galaxy keys) no galaxy with a known lens in its stamp
    among the tasks."""
    keys = galaxy_keys(columns["brickname"], columns["objid"])
    ctrl = np.asarray(columns["is_control"], dtype=bool)
    known = known_rows(columns)
    injection = ~ctrl & ~known
    checks: list[dict[str, Any]] = []
    if known.any():
        again = set(keys[known]) & set(keys[~known])
        _, uses = np.unique(keys[known], return_counts=True)
        checks.append(
            {
                "check": "a known lens is one task, never a control or a host",
                "ok": not again and int(uses.max()) == 1,
                "known_lens_tasks": int(known.sum()),
                "also_control_or_host": len(again),
                "tiers": {
                    split: {
                        tier: int(
                            np.sum(known & (columns["split"] == split) & (columns["known_tier"] == tier))
                        )
                        for tier in sorted(set(columns["known_tier"][known]))
                    }
                    for split in SPLITS
                },
            }
        )
    if near_lenses is not None:
        ctrl_lenses = sorted(set(keys[ctrl]) & near_lenses)
        host_lenses = sorted(set(keys[injection]) & near_lenses)
        checks.append(
            {
                "check": "no galaxy with a known lens in its stamp is a control or a host",
                "ok": not ctrl_lenses and not host_lenses,
                "near_known_lenses_in_parent": len(near_lenses),
                "as_controls": len(ctrl_lenses),
                "as_hosts": len(host_lenses),
                "examples": (ctrl_lenses + host_lenses)[:5],
            }
        )

    if "unit" in columns and control_mode == "unpaired":
        units = np.asarray(columns["unit"])
        both = sorted(set(units[ctrl]) & set(units[~ctrl]))
        checks.append(
            {
                "check": "no object closer than 1.5″ to another is a host while the other is a control",
                "ok": not both,
                "units_both": len(both),
                "examples": both[:5],
            }
        )
    ctrl_keys, pos_keys = set(keys[ctrl]), set(keys[injection])
    overlap = ctrl_keys & pos_keys
    radec = np.round(np.stack([columns["ra"], columns["dec"]], axis=1), 6)
    overlap_radec = {tuple(r) for r in radec[ctrl]} & {tuple(r) for r in radec[injection]}
    if control_mode == "unpaired":
        checks.append(
            {
                "check": "controls and positives are disjoint galaxy sets",
                "ok": not overlap and not overlap_radec,
                "control_galaxies": len(ctrl_keys),
                "positive_galaxies": len(pos_keys),
                "overlap": len(overlap),
                "overlap_by_radec": len(overlap_radec),
            }
        )
    else:
        checks.append(
            {
                "check": "paired controls (ablation): overlap expected",
                "ok": True,
                "overlap": len(overlap),
                "warning": "paired controls teach 'extra flux', not arcs",
            }
        )

    split_of: dict[str, str] = {}
    straddling = set()
    for key, split in zip(keys, columns["split"], strict=True):
        if split_of.setdefault(key, split) != split:
            straddling.add(key)
    checks.append(
        {
            "check": "no galaxy sits in two splits",
            "ok": not straddling,
            "galaxies_in_two_splits": len(straddling),
            "examples": sorted(straddling)[:5],
        }
    )

    for split in SPLITS:
        pos = injection & (columns["split"] == split)
        if pos.any():
            checks.append(_coverage(split, np.asarray(columns["config_id"])[pos], configs))

    split_keys = np.array([f"{s}|{k}" for s, k in zip(columns["split"], keys, strict=True)], dtype=object)
    _, uses = np.unique(split_keys[ctrl], return_counts=True)
    checks.append(
        {
            "check": "each control galaxy serves at most one task in its split",
            "ok": bool(uses.size == 0 or uses.max() == 1),
            "control_rows": int(ctrl.sum()),
            "control_galaxies": int(uses.size),
            "most_uses": int(uses.max()) if uses.size else 0,
        }
    )

    theta = np.asarray(columns["theta_e_arcsec"])
    wrong = int(np.sum(theta[ctrl | known] != 0)) + int(np.sum(theta[injection] <= 0))
    checks.append(
        {
            "check": "controls and known lenses carry no arc, injections do",
            "ok": wrong == 0,
            "wrong_rows": wrong,
        }
    )
    return {
        "ok": all(c["ok"] for c in checks),
        "control_mode": control_mode,
        "rows": int(ctrl.size),
        "controls": int(ctrl.sum()),
        "positives": int(injection.sum()),
        "known_lenses": int(known.sum()),
        "checks": checks,
    }


def _known_lenses(
    lenses: dict[str, np.ndarray], parent: dict[str, np.ndarray], stamp_size: int
) -> np.ndarray:
    """Parent galaxies with a known lens (shipped table, the workspace's, the variant's) in
    their stamp: within `known_lenses.exclusion_radius_arcsec` of one. Said in the log: how
    many, how many of them are the lens itself (within 3″), and the lenses' names."""
    radius = known_lenses.exclusion_radius_arcsec(stamp_size)
    index = known_lenses.match(parent["ra"], parent["dec"], lenses, radius)
    near = index >= 0
    if near.any():
        itself = int((known_lenses.match(parent["ra"][near], parent["dec"][near], lenses) >= 0).sum())
        names = sorted({str(n) for n in lenses["name"][index[near]]})
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        print(
            f"manifest: {int(near.sum())} galaxies kept out of the tasks, a known lens within {radius:.1f}″"
            f" (in their stamp; {itself} of them the lens itself): {shown}",
            flush=True,
        )
    return near


def read_parent(path: Path) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    if not path.exists():
        raise stage_runtime.StageError(f"{path}: no parent sample; run `halo stage select` first")
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several kinds for a damaged file
        raise stage_runtime.StageError(f"{path}: not a readable parquet file ({err})") from None
    needed = {*CARRIED, "split", "shape_e1", "shape_e2"}
    missing = sorted(needed - set(table.column_names))
    if missing:
        raise stage_runtime.StageError(f"{path}: missing columns {missing}")
    return {c: table.column(c).to_numpy(zero_copy_only=False) for c in needed}


def run(workspace: Path, variant: str, *, grid: str | None = None, force: bool = False) -> dict[str, Any]:
    import pyarrow as pa

    config, grid_name = stage_runtime.resolve(workspace, variant, grid)
    chosen = config.variants[variant]
    spec = config.grids[grid_name]
    parent_path = parent_file(workspace, chosen.parent_sample)
    parent = read_parent(parent_path)
    out_dir = manifest_dir(workspace, variant, grid_name)
    training = chosen.training
    lens_tables = [p for _, p in known_lenses.sources(workspace, training.catalogues) if p.exists()]
    digest = stage_runtime.fingerprint(
        "manifest",
        variant,
        spec.model_dump(mode="json"),
        training.model_dump(mode="json", include={"tiers", "catalogues"}),
        known_lenses.exclusion_radius_arcsec(chosen.injection.stamp_size),
        stage_runtime.files_fingerprint(
            [parent_path, *lens_tables, *_catalogue_file(workspace, spec.source)]
        ),
    )
    if not force and stage_runtime.up_to_date(out_dir, digest):
        stage_runtime.unchanged(f"manifest: {out_dir} is")
        return {"outputs": [str(out_dir / MANIFEST_FILE)], "skipped": True}
    if spec.control_mode == "paired":
        print(
            "manifest: WARNING: paired controls (the same galaxy with and without an arc) teach the model "
            "'extra flux' instead of arcs; use them for ablations only",
            flush=True,
        )

    lenses = known_lenses.load(workspace, training.catalogues)
    known = _known_lenses(lenses, parent, chosen.injection.stamp_size)
    tasks = known_tasks(parent, lenses, training)
    galaxies = None
    if spec.source.mode == "catalogue":
        galaxies, _ = catalogue_sources(workspace, spec.source, chosen.splits)
    columns = build(parent, spec, variant, grid_name, exclude=known, known=tasks, galaxies=galaxies)
    near = known.copy()
    near[tasks.rows] = False  # a known lens's own galaxy is its task, not a neighbour's
    known_keys = set(galaxy_keys(parent["brickname"][near], parent["objid"][near]))
    report = verify(columns, spec.control_mode, np.array(grid_configs(spec)), known_keys)
    shortfalls = control_shortfalls(columns, spec)
    report.update(variant=variant, grid=grid_name, n_configs=spec.n_configs, control_shortfalls=shortfalls)
    for split, counts in shortfalls.items():
        print(
            f"manifest: split {split}: {counts['requested']} control rows asked for, "
            f"{counts['written']} control galaxies there: wrote {counts['written']} "
            "(a control galaxy is one independent negative, used at most once)",
            flush=True,
        )
    print(_report_text(report), flush=True)
    if not report["ok"]:
        failed_path = out_dir.parent / f"{grid_name}.verification-failed.json"
        failed_path.parent.mkdir(parents=True, exist_ok=True)
        failed_path.write_text(json.dumps(report, indent=2))
        raise stage_runtime.StageError(f"the manifest failed verification; report in {failed_path}")
    lists = pa.list_(pa.float64())
    table = pa.table(
        {
            c: pa.array(v.tolist(), lists if c in sources.STRUCTURE_COLUMNS else None)
            if v.dtype == object
            else v
            for c, v in columns.items()
        }
    )
    with stage_runtime.atomic_dir(out_dir, digest) as tmp:
        stage_runtime.write_parquet(table, tmp / MANIFEST_FILE, chosen.injection.codec)
        (tmp / "verification.json").write_text(json.dumps(report, indent=2))
    return {
        "outputs": [str(out_dir / MANIFEST_FILE)],
        "variant": variant,
        "grid": grid_name,
        "n_configs": spec.n_configs,
        "rows": report["rows"],
        "controls": report["controls"],
        "positives": report["positives"],
        "known_lenses": report["known_lenses"],
        "control_mode": spec.control_mode,
        "control_shortfalls": shortfalls,
        "verified": True,
    }


def _report_text(report: dict[str, Any]) -> str:
    lines = [
        f"verification of {report['variant']}/{report['grid']}: {'PASSED' if report['ok'] else 'FAILED'}"
    ]
    for check in report["checks"]:
        details = ", ".join(f"{k}={v}" for k, v in check.items() if k not in ("check", "ok", "examples"))
        lines.append(f"  [{'ok' if check['ok'] else 'FAIL'}] {check['check']}: {details}")
    return "\n".join(lines)


main = stage_runtime.entry("manifest", run)


if __name__ == "__main__":
    raise SystemExit(main())
