"""The shortcut audit catches the seed's float arcs on a quantised coadd, passes arcs added on
the coadd's lattice, and fails the inject stage when it finds a shortcut."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core import stamps as stamp_contract
from core.stamps import write_stamps
from jobs.learn import shortcut_audit
from jobs.runtime.stage import StageError
from jobs.stages import inject
from jobs.survey.quantization import TileLattice, requantise

SIZE = 64


def _coadd(rice, method: int) -> tuple[np.ndarray, TileLattice]:
    """A real RICE-compressed sky (noise plus a smooth background), decoded by astropy."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:1024, 0:1024]
    sky = (0.002 * np.sin(xx / 90.0) + rng.normal(0, 0.01, (1024, 1024))).astype(np.float32)
    return rice(sky, method, seed=11)


def _arc(rng: np.random.Generator) -> np.ndarray:
    """A lensed ring: radius 4-10 px, peak a few σ, with a PSF-like halo (faint far wings)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] - SIZE // 2
    r = np.hypot(xx, yy)
    radius, peak = rng.uniform(4, 10), rng.uniform(0.02, 0.08)
    return peak * np.exp(-0.5 * ((r - radius) / 1.5) ** 2) + 1e-4 * peak / (1 + (r / 6) ** 4)


def _stamps(rice, folder: Path, arc_pixels: str, method: int = -1, n: int = 600) -> list[Path]:
    image, lattice = _coadd(rice, method)
    rng = np.random.default_rng(0)
    rows: dict[str, list] = {k: [] for k in ("split", "is_control", "ok", "brickname", "objid", "stamp")}
    for i in range(n):
        y0, x0 = (int(v) for v in rng.integers(0, 1024 - SIZE, 2))
        cut = np.stack([image[y0 : y0 + SIZE, x0 : x0 + SIZE]] * 3)
        positive = i % 2 == 1
        if positive:
            arc = _arc(rng)
            region = lattice.region(y0, x0, SIZE)
            if arc_pixels == "float":
                cut = (cut + arc).astype(np.float32)
            else:
                cut = np.stack([requantise(b, arc, region, lattice.method, rng) for b in cut])
        rows["split"].append("train" if (i // 2) % 2 == 0 else "test")
        rows["is_control"].append(not positive)
        rows["ok"].append(True)
        rows["brickname"].append("0000p000")
        rows["objid"].append(i)
        rows["stamp"].append(cut.astype(np.float32).tobytes())
    table = pa.table(rows).replace_schema_metadata(stamp_contract.arrow_metadata((3, SIZE, SIZE)))
    folder.mkdir(parents=True, exist_ok=True)
    write_stamps(table, folder / "part-00000.parquet", "zstd")
    return [folder / "part-00000.parquet"]


def test_the_seeds_float_arcs_are_caught_by_the_exact_zero_fraction(rice, tmp_path: Path) -> None:
    report = shortcut_audit.audit(_stamps(rice, tmp_path / "float", "float"))
    assert report["judged"] and not report["ok"]
    assert report["auroc"] > 0.95
    assert any(name.startswith("zero_frac") for name in report["flagged"])
    assert "FAILED" in shortcut_audit.summary_line(report)


@pytest.mark.parametrize("method", [-1, 1])  # NO_DITHER (the mock's), SUBTRACTIVE_DITHER_1
def test_arcs_on_the_coadds_lattice_leave_no_pixel_shortcut(rice, tmp_path: Path, method: int) -> None:
    report = shortcut_audit.audit(_stamps(rice, tmp_path / "lattice", "lattice", method))
    assert report["judged"] and report["ok"], report
    assert report["auroc"] < 0.6
    assert report["scored_on"] == {"split": "test", "n_pos": 150, "n_neg": 150}
    assert report["flux_baseline"]["auroc"] > 0.9  # the arc's own light is there to be seen


def test_a_galaxy_is_audited_once_however_many_tasks_it_served(rice, tmp_path: Path) -> None:
    parts = _stamps(rice, tmp_path / "s", "lattice")
    data = pq.read_table(parts[0])
    repeated = pa.concat_tables([data] * 5)  # every galaxy five times
    write_stamps(repeated, parts[0], "zstd")
    report = shortcut_audit.audit(parts)
    assert report["scored_on"]["n_neg"] == 150 and report["fitted_on"]["n_neg"] == 150


def test_a_failed_audit_fails_inject_and_keeps_the_stamps_for_a_rerun(
    inject_ws: Path, tmp_path: Path, monkeypatch
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(inject_ws, ws, ignore=shutil.ignore_patterns("stamps"))
    with (ws / "halo.toml").open("a") as toml:
        toml.write('\n[variants.v4_sota.injection]\narc_pixels = "float"\n')
    monkeypatch.setattr(shortcut_audit, "MIN_TO_JUDGE", 5)  # the mock is small
    monkeypatch.setattr(shortcut_audit, "MIN_PER_CLASS", 5)
    with pytest.raises(StageError, match="failed the shortcut audit.*zero_frac"):
        inject.run(ws, "v4_sota", grid="grid_sota", workers=1)
    final = inject.stamps_dir(ws, "v4_sota", "grid_sota")
    assert not final.exists()
    report = json.loads((final.parent / "grid_sota.shortcut-audit-failed.json").read_text())
    assert not report["ok"] and report["auroc"] > 0.9
    staged = list((final.parent / ".grid_sota.staging").glob("part-*.parquet"))
    assert staged  # kept: raising the limit (or fixing the stamps) need not redo them
