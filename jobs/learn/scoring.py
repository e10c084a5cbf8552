"""Running a trained model: over stamp arrays, over a split of the injection stamps, and over
sky positions cut from the cached coadds (the parent sample, a lookalike catalogue, known
lenses). eval and score share these; the model always runs in float32."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jobs.runtime import stage as stage_runtime
from jobs.survey.coadd_reader import cut_positions

SPLIT_COLUMNS = (
    "task_id",
    "brickname",
    "objid",
    "theta_e_arcsec",
    "src_dmag",
    "arc_snr",
    "theta_over_psf",
)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def logits_of(model: Any, stamps: np.ndarray, meta: np.ndarray | None = None, batch: int = 256) -> np.ndarray:
    """The model's logits for (n, 3, H, W) stamps in nanomaggies (normalised as in training)."""
    import torch

    from jobs.learn.dataset import robust_normalise

    out = []
    with torch.no_grad():
        for start in range(0, len(stamps), batch):
            images = torch.from_numpy(robust_normalise(stamps[start : start + batch], model.stretch))
            m = torch.from_numpy(meta[start : start + batch]) if meta is not None else None
            out.append(model(images, m).float().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def score_split(
    model: Any, meta_cols: list[str], stamps: Path, split: str, batch: int = 256, probe_pool: int = 20000
) -> dict[str, Any]:
    """The model over one split of the stamps: logits, labels, galaxy keys, the injection's
    parameters per row (θE, src_dmag, arc_snr, θE/PSF) and the known lenses' tiers; and, for
    the realism probe (jobs/learn/realism.py), under `probe`: the penultimate features, pixel
    features and central r flux of every known lens and of up to `probe_pool` injections
    (a fixed hash-drawn sample)."""
    import torch

    from core.schemas import hash_order, unit_keys
    from jobs.learn.dataset import StampStream, read_columns
    from jobs.learn.realism import aperture_flux, pixel_features

    parts = [str(p) for p in sorted(stamps.glob("part-*.parquet"))]
    info, _ = read_columns(parts, list(SPLIT_COLUMNS), optional=("unit", "known_tier", "split", "is_control"))
    listed = info.column("task_id").to_numpy()
    tiers_all = _tiers(info, np.arange(listed.size))
    wanted = set(listed[tiers_all != ""].tolist())
    if "is_control" in info.column_names and "split" in info.column_names:
        mine = (
            (info.column("split").to_numpy(zero_copy_only=False) == split)
            & ~info.column("is_control").to_numpy(zero_copy_only=False).astype(bool)
            & (tiers_all == "")
        )
        pool = listed[mine]
        wanted |= set(pool[hash_order(pool.astype(str))[:probe_pool]].tolist())
    data = StampStream(
        str(stamps),
        split,
        meta_cols=meta_cols,
        batch_size=batch,
        prepare_in_worker=False,
        stretch=model.stretch,
    )
    rng = np.random.default_rng(0)
    logits, ids, labels = [], [], []
    kept: dict[str, list[np.ndarray]] = {"task_id": [], "features": [], "pixels": [], "flux": []}
    with torch.no_grad():
        for raw, y, meta, task in torch.utils.data.DataLoader(data, batch_size=None):
            features = model.features(data.prepare(raw, rng), meta if meta_cols else None).float()
            logits.append(model.head(features).squeeze(1).numpy())
            labels.append(y.numpy())
            ids.append(task.numpy())
            keep = np.isin(task.numpy(), list(wanted))
            if keep.any():
                stamps_raw = raw.numpy()[keep]
                kept["task_id"].append(task.numpy()[keep])
                kept["features"].append(features.numpy()[keep])
                kept["pixels"].append(pixel_features(stamps_raw))
                kept["flux"].append(aperture_flux(stamps_raw))
    if not logits:
        raise stage_runtime.StageError(f"{stamps}: no usable rows in the {split} split")
    task_id = np.concatenate(ids)
    order = np.argsort(listed)
    where = order[np.clip(np.searchsorted(listed[order], task_id), 0, listed.size - 1)]
    found = listed[where] == task_id  # a row group read once but not twice: left out, counted
    rows, task_id = where[found], task_id[found]

    def column(name: str) -> np.ndarray:
        return info.column(name).to_numpy(zero_copy_only=False)[rows]

    def number(name: str) -> np.ndarray:  # nulls (controls' θE/PSF, say) as 0
        return np.nan_to_num(column(name).astype(float))

    probe = {k: np.concatenate(v) if v else np.zeros(0) for k, v in kept.items()}
    return {
        "task_id": task_id,
        "logit": np.concatenate(logits)[found].astype(np.float64),
        "label": np.concatenate(labels)[found].astype(bool),
        "galaxy": unit_keys(
            column("brickname"), column("objid"), column("unit") if "unit" in info.column_names else None
        ),
        "theta_e": number("theta_e_arcsec"),
        "src_dmag": number("src_dmag"),
        "arc_snr": number("arc_snr"),
        "theta_over_psf": number("theta_over_psf"),
        # a known lens's tier ("" for injections and controls): real positives, reported apart
        "tier": _tiers(info, rows),
        "probe": probe,
        "skipped": data.skipped,
    }


def _tiers(info: Any, rows: np.ndarray) -> np.ndarray:
    """Each row's known-lens tier ("" for injections, controls and stamps made before)."""
    if "known_tier" not in info.column_names:
        return np.full(rows.size, "", dtype=object)
    values = info.column("known_tier").to_numpy(zero_copy_only=False)[rows]
    return np.array([v or "" for v in values], dtype=object)


def score_positions(
    model: Any,
    meta_cols: list[str],
    reader: Any,
    positions: dict[str, np.ndarray],
    keep_stamps: bool = False,
) -> dict[str, Any]:
    """The model over sky positions: logit, score (sigmoid), ok and fail_reason per position
    (and the stamps if asked). Metadata models need the metadata columns in `positions`."""
    from jobs.learn.dataset import meta_features

    n = len(positions["ra"])
    stamps, ok, reasons = cut_positions(reader, positions["ra"], positions["dec"], positions.get("brickname"))
    missing = [c for c in meta_cols if c not in positions]
    if missing and n:
        ok[:] = False
        reasons = [f"the model needs metadata columns {', '.join(missing)}"] * n
    logits = np.full(n, np.nan)
    good = np.flatnonzero(ok)
    if good.size:
        meta = None
        if meta_cols:
            values = {c: np.asarray(positions[c])[good] for c in meta_cols} | {"task_id": good}
            meta = meta_features(values, meta_cols)
        logits[good] = logits_of(model, stamps[good], meta)
    out = {"logit": logits, "score": sigmoid(logits), "ok": ok, "fail_reason": reasons}
    if keep_stamps:
        out["stamps"] = stamps
    return out


def stream_logits(
    model: Any, meta_cols: list[str], files: list[str], device: str, batch: int = 256, workers: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The model over every usable stamp of cutouts parquet, streamed: (rows, logits). Memory
    holds a few batches, however many galaxies there are."""
    import torch

    from jobs.learn.dataset import CutoutBatches

    data = CutoutBatches(files, batch, meta_cols, model.stretch)
    loader = torch.utils.data.DataLoader(
        data, batch_size=None, num_workers=workers, pin_memory=device.startswith("cuda")
    )
    model = model.to(device).eval()
    # filled in place: small per-batch arrays kept alive between the batches' large freed
    # buffers would pin memory, and the peak would grow with the number of galaxies
    rows, logits = np.empty(data.rows, np.int64), np.empty(data.rows, np.float32)
    filled = 0
    with torch.no_grad():
        for images, index, meta in loader:
            extra = meta.to(device, non_blocking=True) if meta_cols else None
            out = model(images.to(device, non_blocking=True), extra).float().cpu().numpy().reshape(-1)
            rows[filled : filled + len(out)] = index.numpy()
            logits[filled : filled + len(out)] = out
            filled += len(out)
    return rows[:filled], logits[:filled]


def footprint_bricks(cache: str) -> set[str]:
    """The bricks whose r-band image is in the coadd cache: where positions can be scored."""
    from core import storage
    from core.errors import HaloError

    root = cache.rstrip("/") + "/coadd"
    try:
        files = storage.list_files(root, "*-image-r.fits.fz")
    except HaloError:  # an empty or unreachable cache: no footprint
        return set()
    return {Path(str(f)).name.split("-")[1] for f in files}
