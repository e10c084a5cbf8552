"""`select` (seed Phase 3): Tractor catalogues -> the LRG parent sample with region splits.

Reads DR10 tractor or sweep FITS files (the mock survey's, or real ones; local or `s3://`),
applies the variant's cuts with magnitudes from nanomaggies, and writes the parent sample
parquet with a `split` column drawn from a deterministic hash of the brick name, so a brick's
galaxies (and their neighbours) never straddle two splits. A catalogue that cannot be read,
lacks a column or has a wrong type is named and skipped; the others go on, and the stage ends
non-zero with the failures in its summary.

    python -m jobs.select --workspace DIR --variant v3_color_relaxed [--catalogs PATH] [--force]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from core import storage
from core.layout import parent_dir
from core.schemas import PARENT_COLUMNS, TRACTOR_COLUMNS, nanomaggies_to_mag
from jobs import stage_runtime
from jobs.mock_survey import SURVEY_DIR

SPLITS = ("train", "val", "test")
CATALOGUE_NAME = re.compile(r"^(tractor|sweep)-.+\.fits(\.gz)?$")
GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {name: dtype for name, dtype, _ in TRACTOR_COLUMNS}
NEEDED = tuple(dict.fromkeys((*PARENT_COLUMNS, "brick_primary")))


def split_of(brickname: str, fractions: dict[str, float]) -> str:
    """The split of a brick: a hash of its name, uniform in [0, 1), cut at the fractions."""
    digest = hashlib.blake2b(brickname.encode(), digest_size=8, person=b"halo-split").digest()
    u = int.from_bytes(digest, "little") / 2.0**64
    edge = 0.0
    for split in SPLITS:
        edge += fractions.get(split, 0.0)
        if u < edge:
            return split
    return SPLITS[-1]


def catalogue_files(source: str) -> list[str]:
    """The Tractor and sweep catalogues under a folder, S3 prefix or glob, by name: a release
    root also holds coadd images and other FITS files, which are not catalogues. A single file
    names itself, whatever its name."""
    files = storage.list_files(source, "*.fits*")
    if files == [str(source)]:
        return files
    return [f for f in files if CATALOGUE_NAME.match(f.rsplit("/", 1)[-1])]


def read_catalogue(uri: str) -> dict[str, np.ndarray]:
    """The columns the pipeline needs from one Tractor/sweep file, checked by name and type."""
    from astropy.io import fits

    name = uri if storage.is_s3(uri) else str(uri)
    try:
        raw = storage.read_bytes(uri)
        if raw[:2] == GZIP_MAGIC:  # astropy does not look for gzip inside a file object
            raw = gzip.decompress(raw)
        with fits.open(io.BytesIO(raw), memmap=False) as hdus:
            table = next((h for h in hdus if isinstance(h, fits.BinTableHDU)), None)
            if table is None:
                raise stage_runtime.StageError(f"{name}: no table extension (truncated, or not a catalogue)")
            data = table.data
            present = {c.lower(): c for c in data.columns.names}
            out: dict[str, np.ndarray] = {}
            for column in NEEDED:
                if column not in present:
                    if column == "brick_primary":
                        continue
                    raise stage_runtime.StageError(f"{name}: missing column {column!r}")
                values = np.asarray(data[present[column]])
                out[column] = _typed(name, column, values)
    except stage_runtime.StageError:
        raise
    except (OSError, EOFError, ValueError, TypeError, KeyError, IndexError) as err:
        raise stage_runtime.StageError(f"{name}: not a readable FITS table ({err})") from None
    return out


def _typed(name: str, column: str, values: np.ndarray) -> np.ndarray:
    want = np.dtype(_DTYPES[column])
    if want.kind == "U":
        if values.dtype.kind not in "SU":
            raise stage_runtime.StageError(
                f"{name}: column {column!r} should hold text, holds {values.dtype}"
            )
        return np.char.strip(values.astype(str)).astype(object)
    if want.kind == "b":
        if values.dtype.kind not in "bui":
            raise stage_runtime.StageError(
                f"{name}: column {column!r} should be boolean, holds {values.dtype}"
            )
        return values.astype(bool)
    if values.dtype.kind not in "biuf":
        raise stage_runtime.StageError(f"{name}: column {column!r} should be numeric, holds {values.dtype}")
    return values.astype(want.newbyteorder("="))


def apply_cuts(cat: dict[str, np.ndarray], cuts: Any) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """The selection mask and the rows left after each cut, in order."""
    n = len(cat["ra"])
    keep = np.ones(n, dtype=bool)
    counts = [("input", n)]

    def step(label: str, mask: np.ndarray) -> None:
        nonlocal keep
        keep &= mask
        counts.append((label, int(keep.sum())))

    if "brick_primary" in cat:
        step("brick_primary", cat["brick_primary"])
    step(f"type not in {cuts.exclude_types}", ~np.isin(cat["type"], cuts.exclude_types))
    for band in cuts.positive_flux:
        step(f"flux_{band} > 0", cat[f"flux_{band}"] > 0)
    mag = {b: nanomaggies_to_mag(cat[f"flux_{b}"]) for b in ("r", "z", "w1")}
    with np.errstate(invalid="ignore"):
        step(f"z < {cuts.z_mag_max}", mag["z"] < cuts.z_mag_max)
        step(f"r - z > {cuts.rz_min}", (mag["r"] - mag["z"]) > cuts.rz_min)
        step(f"z - W1 > {cuts.zw1_min}", (mag["z"] - mag["w1"]) > cuts.zw1_min)
    return keep, counts


def run(
    workspace: Path, variant_name: str, catalogs: str | None = None, force: bool = False
) -> dict[str, Any]:
    import pyarrow as pa

    config, _ = stage_runtime.resolve(workspace, variant_name)
    parent_name = config.variants[variant_name].parent_sample
    variant = config.variants[parent_name]  # the parent sample's own cuts and splits
    source = catalogs or str(workspace / SURVEY_DIR / "tractor")
    files = catalogue_files(source)
    if not files:
        raise stage_runtime.StageError(
            f"{source}: no catalogue files (tractor-*.fits or sweep-*.fits, optionally .gz)"
        )
    out_dir = parent_dir(workspace, parent_name)
    digest = stage_runtime.fingerprint(
        "select", variant.model_dump(mode="json"), [storage.signature(f) for f in files]
    )
    if not force and stage_runtime.up_to_date(out_dir, digest):
        print(f"parent sample {out_dir} is up to date (use --force to redo it)", flush=True)
        return {"outputs": [str(out_dir / "parent.parquet")], "skipped": True}

    selected: list[dict[str, np.ndarray]] = []
    failed: list[dict[str, str]] = []
    totals: dict[str, int] = {}
    for uri in files:
        try:
            cat = read_catalogue(uri)
        except stage_runtime.StageError as err:
            print(f"select: skipped: {err}", flush=True)
            failed.append({"file": uri, "reason": str(err)})
            continue
        keep, counts = apply_cuts(cat, variant.cuts)
        for label, count in counts:
            totals[label] = totals.get(label, 0) + count
        selected.append({c: v[keep] for c, v in cat.items() if c in PARENT_COLUMNS})

    columns = {
        c: np.concatenate([s[c] for s in selected]) if selected else np.array([]) for c in PARENT_COLUMNS
    }
    for band in ("g", "r", "z", "w1"):
        columns[f"mag_{band}"] = nanomaggies_to_mag(columns[f"flux_{band}"]).astype(np.float32)
    splits = {b: split_of(b, variant.splits) for b in set(columns["brickname"].tolist())}
    columns["split"] = np.array([splits[b] for b in columns["brickname"]], dtype=object)
    table = pa.table({c: pa.array(v.tolist() if v.dtype == object else v) for c, v in columns.items()})
    per_split = {s: int(np.sum(columns["split"] == s)) for s in SPLITS}
    bricks_per_split = {s: sorted(b for b, v in splits.items() if v == s) for s in SPLITS}
    summary = {
        "parent_sample": parent_name,
        "variant": variant_name,
        "catalogues": len(files),
        "failed_catalogues": failed,
        "rows_after_each_cut": totals,
        "selected": int(table.num_rows),
        "per_split": per_split,
        "bricks_per_split": {s: len(b) for s, b in bricks_per_split.items()},
        "outputs": [str(out_dir / "parent.parquet")],
    }
    with stage_runtime.atomic_dir(out_dir, digest) as tmp:
        stage_runtime.write_parquet(table, tmp / "parent.parquet", variant.injection.codec)
        (tmp / "summary.json").write_text(json.dumps({**summary, "split_bricks": bricks_per_split}, indent=2))
    _print_table(summary)
    if failed:
        (out_dir / stage_runtime.STAMP_FILE).unlink(missing_ok=True)  # redo once they are fixed
        listed = out_dir / "summary.json"
        reasons = "; ".join(f["reason"] for f in failed[:3])
        raise stage_runtime.StageError(
            f"{len(failed)} of {len(files)} catalogues could not be used (listed in {listed}): {reasons}"
        )
    return summary


def _print_table(summary: dict[str, Any]) -> None:
    lines = [f"{'cut':<32} {'rows left':>10}"]
    lines += [f"{label:<32} {count:>10}" for label, count in summary["rows_after_each_cut"].items()]
    lines += ["", f"{'split':<32} {'galaxies':>10} {'bricks':>7}"]
    lines += [f"{s:<32} {summary['per_split'][s]:>10} {summary['bricks_per_split'][s]:>7}" for s in SPLITS]
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = stage_runtime.parser("select", "Tractor catalogues -> LRG parent sample with region splits.")
    p.add_argument(
        "--catalogs", help="catalogue file, folder, glob or s3:// prefix [default: the mock survey]"
    )
    args = p.parse_args(argv)
    return stage_runtime.main("select", _run_args, args)


def _run_args(args: argparse.Namespace) -> dict[str, Any]:
    return run(args.workspace.resolve(), args.variant, args.catalogs, args.force)


if __name__ == "__main__":
    raise SystemExit(main())
