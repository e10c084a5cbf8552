"""An EMR step's own arguments do the stage's work: each Spark stage is launched on moto's
EMR, the step's arguments are taken back from the cluster, and run through the Spark entry
point (pyspark local mode) with the workspace prefix pointed at a folder; what it writes
equals what the local runner writes."""

import json
import shutil
from pathlib import Path

import boto3
import numpy as np
import pyarrow.parquet as pq
import pytest

from core.engine import Engine
from core.layout import cutouts_dir, manifest_dir, parent_dir, stamps_dir
from core.workspace import Workspace
from jobs.runtime import spark as spark_pipeline
from jobs.stages import cutouts, inject

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java"),
    pytest.mark.xdist_group("spark"),  # one Spark session (a JVM) for every in-process Spark test
]


def _step_args(root: Path, stage: str, params: dict) -> list[str]:
    """The Spark entry's arguments of the step the EMR backend adds for `stage`, with the
    workspace prefix swapped for the local folder `root`."""
    job = Engine(Workspace(root)).launch(stage, variant="v4_sota", params=params, backend="emr")
    steps = boto3.client("emr", region_name="us-east-1").list_steps(ClusterId=job.handle["cluster"])
    args = next(s for s in steps["Steps"] if s["Id"] == job.handle["step"])["Config"]["Args"]
    args = args[args.index("--py-files") + 3 :]
    assert args[args.index("--workspace") + 1] == "s3://halo-data/ws"
    args[args.index("--workspace") + 1] = str(root)
    return [*args, "--partitions", "2"]


def _copy(inject_ws: Path, to: Path, emr_cluster) -> Path:
    shutil.copytree(inject_ws, to, ignore=shutil.ignore_patterns("cutouts", "stamps", ".halo"))
    emr_cluster(to)
    return to


def _rows(folder: Path, key: list[str]):
    return pq.read_table(sorted(folder.rglob("part-*.parquet"))).sort_by([(k, "ascending") for k in key])


def test_the_select_step_selects_what_the_local_runner_selects(inject_ws, tmp_path, emr_cluster) -> None:
    pytest.importorskip("pyspark")
    root = _copy(inject_ws, tmp_path / "ws", emr_cluster)
    assert spark_pipeline.main(_step_args(root, "select", {})) == 0
    folder = parent_dir(root, "v3_color_relaxed") / "parent.parquet"
    assert folder.is_dir()  # Spark's parts, read by the stages as a file is
    key = ["brickname", "objid"]
    spark = _rows(folder, key)
    local = pq.read_table(parent_dir(inject_ws, "v3_color_relaxed") / "parent.parquet").sort_by(
        [(k, "ascending") for k in key]
    )
    assert spark.schema.names == local.schema.names and spark.equals(local.cast(spark.schema))
    summary = json.loads((folder / "_summary.json").read_text())
    local_summary = json.loads((parent_dir(inject_ws, "v3_color_relaxed") / "summary.json").read_text())
    for name in ("rows_after_each_cut", "selected", "per_split", "split_bricks"):
        assert summary[name] == local_summary[name], name
    assert not (folder.parent / "parent.parquet.next").exists()
    # the cutouts step reads that folder of parts as the parent sample
    assert cutouts.positions(str(folder), False).num_rows == local.num_rows


def test_the_cutouts_step_cuts_what_the_local_runner_cuts(inject_ws, tmp_path, emr_cluster) -> None:
    pytest.importorskip("pyspark")
    root = _copy(inject_ws, tmp_path / "ws", emr_cluster)
    local = cutouts.run(inject_ws, "v4_sota", rows_per_part=40, force=True)
    previous = cutouts_dir(root, "v3_color_relaxed")
    previous.mkdir(parents=True)
    (previous / "part-00000.parquet").write_bytes(b"the previous output")  # replaced only at the end
    assert spark_pipeline.main(_step_args(root, "cutouts", {})) == 0
    a = _rows(cutouts_dir(inject_ws, "v3_color_relaxed"), ["row"])
    b = _rows(cutouts_dir(root, "v3_color_relaxed"), ["row"])
    assert a.column_names == b.column_names and b.num_rows == local["rows"]
    for name in a.column_names:
        assert a.column(name).to_pylist() == b.column(name).to_pylist(), name
    assert (
        json.loads((cutouts_dir(root, "v3_color_relaxed") / "summary.json").read_text())["ok"] == local["ok"]
    )


def test_the_inject_step_injects_what_the_local_runner_injects(inject_ws, tmp_path, emr_cluster) -> None:
    pytest.importorskip("pyspark")
    roots = [_copy(inject_ws, tmp_path / name, emr_cluster) for name in ("spark", "local")]
    for root in roots:  # a small manifest: 80 rows
        path = manifest_dir(root, "v4_sota", "grid_sota") / "manifest.parquet"
        pq.write_table(pq.read_table(path).slice(0, 80), path)
    assert spark_pipeline.main(_step_args(roots[0], "inject", {"grid": "grid_sota"})) == 0
    inject.run(roots[1], "v4_sota", grid="grid_sota", rows_per_part=40)
    a, b = (_rows(stamps_dir(root, "v4_sota", "grid_sota"), ["task_id"]) for root in roots)
    assert a.column_names == b.column_names and a.num_rows == 80
    for name in a.column_names:
        if name == "stamp":
            continue
        x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
        if isinstance(x[0], float):
            assert np.allclose(np.array(x, float), np.array(y, float), rtol=1e-6, equal_nan=True), name
        else:
            assert x == y, name
    sa = np.frombuffer(b"".join(a.column("stamp").to_pylist()), np.float32)
    sb = np.frombuffer(b"".join(b.column("stamp").to_pylist()), np.float32)
    assert np.allclose(sa, sb, rtol=1e-6, atol=1e-7)
    summary = json.loads((stamps_dir(roots[0], "v4_sota", "grid_sota") / "summary.json").read_text())
    assert summary["rows"] == 80 and "shortcut_audit" in summary
