"""cutouts: real galaxies cut out once, partitioned by brick, every position exactly once,
the stamps the coadds hold; score streams them (tests/jobs/test_train.py)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from core.layout import coadd_cache_dir, cutouts_dir, parent_dir
from core.stamps import decode, stamp_meta
from jobs.stages import cutouts
from jobs.survey.coadd_reader import CoaddReader, cut_positions


def test_every_parent_galaxy_is_cut_once_partitioned_by_brick(inject_ws: Path) -> None:
    summary = cutouts.run(inject_ws, "v4_sota", rows_per_part=40, workers=2, force=True)
    parent = pq.read_table(parent_dir(inject_ws, "v3_color_relaxed") / "parent.parquet")
    folder = cutouts_dir(inject_ws, "v3_color_relaxed")
    parts = sorted(folder.glob("part-*.parquet"))
    assert summary["rows"] == parent.num_rows and len(parts) == -(-parent.num_rows // 40)
    table = pq.read_table(parts)
    assert sorted(table.column("row").to_pylist()) == list(range(parent.num_rows))
    for part in parts:  # sorted by brick: a part spans at most two neighbouring bricks
        assert len(set(pq.read_table(part, columns=["brickname"]).column(0).to_pylist())) <= 2
    table = table.sort_by("row")
    assert table.column("objid").to_pylist() == parent.column("objid").to_pylist()
    stamps = decode(table.column("stamp"), stamp_meta(table.schema))
    reader = CoaddReader(str(coadd_cache_dir(inject_ws)), 64, with_invvar=False)
    expected, ok, reasons = cut_positions(
        reader,
        parent.column("ra").to_numpy(),
        parent.column("dec").to_numpy(),
        np.asarray(parent.column("brickname").to_pylist()),
    )
    assert np.array_equal(stamps, expected)
    assert (
        table.column("ok").to_pylist() == ok.tolist() and table.column("fail_reason").to_pylist() == reasons
    )
    assert "psfsize_r" in table.column_names and "psfdepth_r" in table.column_names  # for metadata models
    assert json.loads((folder / "summary.json").read_text())["rows"] == parent.num_rows
    again = cutouts.run(inject_ws, "v4_sota", rows_per_part=40)
    assert again["skipped"] is True


@pytest.mark.skipif(shutil.which("java") is None, reason="the Spark runner needs Java")
@pytest.mark.xdist_group("spark")  # one Spark session (a JVM) for every in-process Spark test
@pytest.mark.slow
def test_the_spark_runner_cuts_what_the_local_runner_cuts(inject_ws: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    ws = tmp_path / "ws"
    shutil.copytree(inject_ws, ws, ignore=shutil.ignore_patterns("cutouts", "stamps"))
    local = cutouts.run(inject_ws, "v4_sota", rows_per_part=40, force=True)
    spark = cutouts.run(ws, "v4_sota", runner="spark", force=True)
    assert spark["rows"] == local["rows"] and spark["ok"] == local["ok"]

    def table(root: Path):
        return pq.read_table(sorted(cutouts_dir(root, "v3_color_relaxed").glob("part-*.parquet"))).sort_by(
            "row"
        )

    a, b = table(inject_ws), table(ws)
    assert a.column_names == b.column_names
    for name in a.column_names:
        assert a.column(name).to_pylist() == b.column(name).to_pylist(), name
    assert stamp_meta(b.schema)["shape"] == [3, 64, 64]
