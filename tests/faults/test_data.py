"""Fault suite, damaged data: a NaN in a coadd is flagged, never an `ok` stamp; a corrupt
stamps part is skipped by eval and score, with its name, never a traceback. (Issue 11,
items 10 and 13.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from core.layout import stamps_dir
from jobs.stages import eval as eval_stage
from jobs.stages import inject, score, train
from jobs.survey.layout import coadd_path


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("image", np.nan, "non-finite"),  # DR10's coadds hold NaN where nothing was observed
        ("image", np.inf, "non-finite"),
        ("invvar", 0.0, "no-data: invvar_g = 0"),  # observed by nothing: no noise model
    ],
    ids=["nan", "inf", "zero-invvar"],
)
def test_pixels_without_data_flag_the_stamps_that_touch_them(
    inject_ws: Path, tmp_path: Path, kind: str, value: float, reason: str
) -> None:
    """NaN or infinite pixels, or a zero inverse variance (issue 26 asked for inf and zero
    invvar beside NaN): every stamp of the brick is flagged with the reason, the rest is ok."""
    ws = tmp_path / "ws"
    shutil.copytree(inject_ws, ws, ignore=shutil.ignore_patterns("stamps"))
    manifest = pq.read_table(ws / "data/manifest/v4_sota/grid_sota/manifest.parquet").to_pylist()
    victim = manifest[0]
    path = ws / "data" / "coadd_cache" / coadd_path(victim["brickname"], kind, "g")
    with fits.open(path) as hdus:
        image = np.array(hdus[1].data)
        header = hdus[1].header.copy()
    image[:, :] = value  # the whole g band of the brick
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data=image, header=header)]).writeto(
        path, overwrite=True
    )
    (path.parent / f"legacysurvey-{victim['brickname']}.sha256sum").unlink(missing_ok=True)
    summary = inject.run(ws, "v4_sota", grid="grid_sota", workers=1)
    parts = sorted(stamps_dir(ws, "v4_sota", "grid_sota").glob("part-*.parquet"))
    rows = pq.read_table(parts, columns=["brickname", "ok", "fail_reason"]).to_pylist()
    hit = [r for r in rows if r["brickname"] == victim["brickname"]]
    assert hit and all(not r["ok"] and r["fail_reason"].startswith(reason) for r in hit)
    assert all(r["ok"] for r in rows if r["brickname"] != victim["brickname"])
    assert summary["flag_kinds"].get(reason.split(":")[0]) == len(hit)


def test_a_corrupt_stamps_part_is_skipped_by_eval_and_score(stamps_ws: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(stamps_ws, ws, ignore=shutil.ignore_patterns("runs", "candidates"))
    train.run(ws, "v4_sota", preset="test_cpu", run="r", epochs=1)
    folder = stamps_dir(ws, "v4_sota", "grid_sota")
    first = sorted(folder.glob("part-*.parquet"))[0]
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])  # truncated mid-file
    result = eval_stage.run(ws, "v4_sota", run="r")
    assert result["n_pos"] + result["n_neg"] > 0
    summary = score.run(ws, "v4_sota", run="r", hard_negatives=5)
    assert summary["scored"] > 0 and Path(summary["outputs"][1]).exists()


def _dead_pid() -> int:
    import os

    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_what_a_killed_run_left_beside_an_output_is_cleared_or_restored(
    inject_ws: Path, tmp_path: Path
) -> None:
    """Issue 11, item 4: a crash during the final swap left a 69 MB .tmp-PID folder forever."""
    ws = tmp_path / "ws"
    shutil.copytree(inject_ws, ws, ignore=shutil.ignore_patterns("stamps"))
    inject.run(ws, "v4_sota", grid="grid_sota", workers=1)
    final = stamps_dir(ws, "v4_sota", "grid_sota")
    before = sorted(p.name for p in final.iterdir())
    # killed between the two renames: the output moved aside, the new one not yet in place
    dead = _dead_pid()
    final.rename(final.parent / f".grid_sota.old-{dead}")
    stale = final.parent / f".grid_sota.tmp-{dead}"
    stale.mkdir()
    (stale / "part-00000.parquet").write_bytes(b"half a part")
    again = inject.run(ws, "v4_sota", grid="grid_sota", workers=1)
    assert again.get("skipped") is True  # the previous output came back, and it is complete
    assert sorted(p.name for p in final.iterdir()) == before
    assert not [p for p in final.parent.iterdir() if p.name.startswith(".grid_sota.")]


def test_a_damaged_output_is_redone_not_reported_up_to_date(inject_ws: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(inject_ws, ws, ignore=shutil.ignore_patterns("stamps"))
    manifest = ws / "data/manifest/v4_sota/grid_sota/manifest.parquet"
    pq.write_table(pq.read_table(manifest).slice(0, 80), manifest)  # two parts of 40 rows
    inject.run(ws, "v4_sota", grid="grid_sota", workers=1, rows_per_part=40)
    part = sorted(stamps_dir(ws, "v4_sota", "grid_sota").glob("part-*.parquet"))[0]
    rows = pq.read_metadata(part).num_rows
    part.write_bytes(part.read_bytes()[:1000])
    again = inject.run(ws, "v4_sota", grid="grid_sota", workers=1, rows_per_part=40)
    assert not again.get("skipped") and pq.read_metadata(part).num_rows == rows


def test_a_truncated_manifest_fails_inject_naming_it(inject_ws: Path, tmp_path: Path) -> None:
    """Issue 26, item 7: inject over a truncated manifest.parquet ended in an ArrowInvalid
    traceback and a job failure reading only "exited with code 1"."""
    import os
    import subprocess
    import sys

    from core.engine import Engine
    from core.workspace import Workspace

    ws = tmp_path / "ws"
    shutil.copytree(inject_ws, ws, ignore=shutil.ignore_patterns("stamps", ".halo"))
    manifest = ws / "data/manifest/v4_sota/grid_sota/manifest.parquet"
    manifest.write_bytes(manifest.read_bytes()[:2000])
    done = subprocess.run(
        [sys.executable, "-m", "jobs.stages.inject", "--workspace", str(ws), "--variant", "v4_sota"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"inject: error: {manifest}: not a readable parquet file" in done.stderr
    engine = Engine(Workspace(ws))  # and as a job, its failure says why
    job = engine.wait(engine.launch("inject", "v4_sota").id)
    assert job.failure is not None and f"{manifest}: not a readable parquet file" in job.failure


def test_a_part_that_cannot_be_written_is_named_and_a_rerun_succeeds(inject_ws: Path, tmp_path: Path) -> None:
    """Issue 26, item 7: a full disk during score's cutouts did not name the file. A partition
    that cannot be written (here a file-size limit, as `ulimit -f` sets: the same OSError path
    as ENOSPC) is named in one line, exit 1; with no part written whole, no staging is left
    (parts written whole would stay for a rerun to resume: tests/jobs/test_inject.py)."""
    import os
    import re
    import resource
    import subprocess
    import sys

    ws = tmp_path / "ws"
    shutil.copytree(inject_ws, ws, ignore=shutil.ignore_patterns("stamps", "cutouts", ".halo"))
    argv = [sys.executable, "-m", "jobs.stages.cutouts", "--workspace", str(ws), "--variant", "v4_sota"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def small_files() -> None:  # parts of real stamps are bigger than this; the rest is smaller
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, resource.RLIM_INFINITY))

    argv_small = [*argv, "--rows-per-part", "40", "--workers", "1"]
    done = subprocess.run(
        argv_small, capture_output=True, text=True, env=env, timeout=300, preexec_fn=small_files
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert re.search(
        r"staging/part-\d{5}\.parquet: could not be written \(file too large for the size limit\)", line
    ), line
    assert line.endswith("no partition was written: nothing was replaced"), line
    assert not list((ws / "data" / "cutouts").glob(".*"))  # no staging, no half-written part
    again = subprocess.run(argv_small, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
