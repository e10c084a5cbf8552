"""select: the cuts, the splits, bad catalogues, and its launch through the engine."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table

from core.config import load
from jobs.stages import select
from jobs.stages.select import SPLITS, parent_dir, split_of

# the tests of the module-scoped `selected` share one xdist worker (it is built once there)
SELECTED = pytest.mark.xdist_group("test_select")


def _parent(ws: Path) -> dict:
    return pq.read_table(parent_dir(ws, "v3_color_relaxed") / "parent.parquet").to_pydict()


@pytest.fixture(scope="module")
def selected(mock_ws: Path) -> Path:
    select.run(mock_ws, "v3_color_relaxed", force=True)
    return mock_ws


@SELECTED
def test_cuts_select_exactly_what_a_hand_computation_selects(selected: Path) -> None:
    expected = set()
    for path in (selected / "survey" / "tractor").rglob("*.fits"):
        t = Table.read(path, hdu=1, unit_parse_strict="silent")
        fr, fz, fw = (np.asarray(t[f"flux_{b}"], float) for b in ("r", "z", "w1"))
        with np.errstate(divide="ignore", invalid="ignore"):
            r, z, w1 = (22.5 - 2.5 * np.log10(f) for f in (fr, fz, fw))
            ok = (np.char.strip(np.asarray(t["type"], str)) != "PSF") & (fr > 0) & (fz > 0) & (fw > 0)
            ok &= (z < 20.4) & (r - z > 0.4) & (z - w1 > 0.8)
        expected |= {(str(b), int(o)) for b, o in zip(t["brickname"][ok], t["objid"][ok], strict=True)}
    parent = _parent(selected)
    got = set(zip(parent["brickname"], parent["objid"], strict=True))
    assert got == expected and len(expected) > 50
    assert np.allclose(parent["mag_z"], 22.5 - 2.5 * np.log10(parent["flux_z"]), atol=1e-4)


@SELECTED
def test_splits_are_deterministic_and_spatially_disjoint(selected: Path) -> None:
    first = _parent(selected)
    select.run(selected, "v3_color_relaxed", force=True)
    again = _parent(selected)
    assert first["split"] == again["split"]
    by_brick: dict[str, set] = {}
    for brick, split in zip(first["brickname"], first["split"], strict=True):
        by_brick.setdefault(brick, set()).add(split)
    assert all(len(s) == 1 for s in by_brick.values())  # a brick never straddles two splits
    summary = json.loads((parent_dir(selected, "v3_color_relaxed") / "summary.json").read_text())
    bricks = [set(summary["split_bricks"][s]) for s in SPLITS]
    assert not (bricks[0] & bricks[1] or bricks[0] & bricks[2] or bricks[1] & bricks[2])


def test_split_fractions_follow_the_variant() -> None:
    fractions = {"train": 0.259, "val": 0.395, "test": 0.346}
    names = [f"{ra:04d}p{dec:03d}" for ra in range(0, 3600, 36) for dec in range(0, 300, 3)]
    counts = {s: 0 for s in SPLITS}
    for name in names:
        counts[split_of(name, fractions)] += 1
    for split, fraction in fractions.items():
        assert abs(counts[split] / len(names) - fraction) < 0.02
    assert split_of("1126p222", fractions) == split_of("1126p222", dict(fractions))


@SELECTED
def test_v4_sota_shares_v3s_parent_sample(selected: Path) -> None:
    summary = select.run(selected, "v4_sota")
    assert summary["skipped"] is True  # the same parent sample, already up to date
    assert summary["outputs"] == [str(parent_dir(selected, "v3_color_relaxed") / "parent.parquet")]


def _copy_catalogues(src: Path, dst: Path) -> list[Path]:
    shutil.copytree(src / "survey" / "tractor", dst / "survey" / "tractor")
    return sorted((dst / "survey" / "tractor").rglob("*.fits"))


@pytest.mark.parametrize(
    "runner",
    [
        "local",
        pytest.param(
            "spark",
            marks=[
                pytest.mark.slow,
                pytest.mark.skipif(shutil.which("java") is None, reason="needs Java"),
                pytest.mark.xdist_group("spark"),  # the in-process Spark tests' one session
            ],
        ),
    ],
)
def test_bad_catalogues_are_named_and_the_rest_goes_on(
    tmp_path: Path, big_catalog_ws: Path, runner: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both runners: the same failures named, the same parent sample and summary (the stage's
    command line run in this process, as `python -m jobs.stages.select` runs it)."""
    files = _copy_catalogues(big_catalog_ws, tmp_path)
    truncated, no_column, wrong_type = files[0], files[1], files[2]
    truncated.write_bytes(truncated.read_bytes()[:5000])
    t = Table.read(no_column, hdu=1, unit_parse_strict="silent")
    t.remove_column("flux_w1")
    t.write(no_column, overwrite=True)
    with fits.open(wrong_type) as hdus:
        cols = [
            c if c.name != "type" else fits.Column("type", "E", array=np.zeros(len(hdus[1].data)))
            for c in hdus[1].columns
        ]
        fits.BinTableHDU.from_columns(cols).writeto(wrong_type, overwrite=True)
    code = select.main(["--workspace", str(tmp_path), "--variant", "v4_sota", "--runner", runner])
    out, err = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in out + err
    assert f"select: skipped: {truncated}: " in out
    assert f"{no_column}: missing column 'flux_w1'" in out
    assert f"{wrong_type}: column 'type' should hold text" in out
    assert "3 of 16 catalogues could not be used" in err
    summary = json.loads((parent_dir(tmp_path, "v3_color_relaxed") / "summary.json").read_text())
    assert {Path(f["file"]) for f in summary["failed_catalogues"]} == {truncated, no_column, wrong_type}
    assert summary["catalogues"] == 16 and summary["selected"] > 1000  # the 13 good ones are in
    if runner == "spark":  # the local runner over the same catalogues: the same output
        rows = _parent(tmp_path)
        with pytest.raises(select.stage_runtime.StageError, match="3 of 16 catalogues"):
            select.run(tmp_path, "v4_sota", force=True)
        assert _parent(tmp_path) == rows
        again = json.loads((parent_dir(tmp_path, "v3_color_relaxed") / "summary.json").read_text())
        assert again == summary


def test_no_catalogues_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.stages.select", "--workspace", str(tmp_path), "--variant", "v4_sota"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "no such file or folder" in proc.stderr and "Traceback" not in proc.stderr


def test_select_through_the_engine_skips_when_up_to_date(tmp_path: Path, big_catalog_ws: Path, halo) -> None:
    _copy_catalogues(big_catalog_ws, halo.root)
    job = halo.json("stage", "select", "--variant", "v3_color_relaxed", "--wait")
    out = parent_dir(halo.root, "v3_color_relaxed") / "parent.parquet"
    assert job["state"] == "succeeded" and job["outputs"] == [str(out)]
    assert job["summary"]["selected"] == pq.read_metadata(out).num_rows > 2000
    mtime = out.stat().st_mtime_ns
    again = halo.json("stage", "select", "--variant", "v3_color_relaxed", "--wait")
    assert again["summary"]["skipped"] is True and out.stat().st_mtime_ns == mtime
    said = halo("stage", "select", "--variant", "v3_color_relaxed", "--wait", check=0).stderr
    assert "succeeded after" in said and "up to date, nothing redone" in said  # not only in the log
    forced = halo.json("stage", "select", "--variant", "v3_color_relaxed", "--force", "--wait")
    assert "skipped" not in forced["summary"] and out.stat().st_mtime_ns != mtime
    assert not list(out.parent.parent.glob(".*tmp*"))  # nothing half-written left behind


def test_a_failed_select_never_replaces_the_parent_sample_in_place(
    tmp_path: Path, big_catalog_ws: Path
) -> None:
    """Issue 26, item 0: a junk catalogue (with or without --force) left a parent sample of 0
    rows in place of 2,083; a run that fails, or would select nothing, replaces nothing, and
    says whose parent sample it is and where (v4_sota writes v3_color_relaxed's)."""
    _copy_catalogues(big_catalog_ws, tmp_path)
    select.run(tmp_path, "v4_sota")
    out = parent_dir(tmp_path, "v3_color_relaxed")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    junk = tmp_path / "bad.fits"
    junk.write_text("junk\n")
    empty = tmp_path / "empty"  # a real catalogue, none of whose rows pass the cuts
    empty.mkdir()
    source = sorted((tmp_path / "survey" / "tractor").rglob("*.fits"))[0]
    t = Table.read(source, hdu=1, unit_parse_strict="silent")
    t["flux_z"] = 0.0
    t.write(empty / "tractor-0001p000.fits")
    for catalogs, says in (
        (str(junk), "1 of 1 catalogues could not be used"),
        (str(empty), "no galaxy passed the cuts"),
    ):
        for force in (False, True):
            with pytest.raises(select.stage_runtime.StageError, match=says) as err:
                select.run(tmp_path, "v4_sota", catalogs=catalogs, force=force)
            assert "v4_sota's parent sample is v3_color_relaxed's" in str(err.value)
            assert str(out) in str(err.value) and "nothing replaced" in str(err.value)
            assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    fresh = tmp_path / "fresh"  # nothing in place: a run with no galaxy writes nothing either
    shutil.copytree(tmp_path / "survey", fresh / "survey")
    with pytest.raises(select.stage_runtime.StageError, match="nothing written"):
        select.run(fresh, "v3_color_relaxed", catalogs=str(empty))
    assert not parent_dir(fresh, "v3_color_relaxed").exists()


def test_catalogues_are_read_from_s3(tmp_path: Path, big_catalog_ws: Path, s3_env: str) -> None:
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="dr10")
    local = sorted((big_catalog_ws / "survey" / "tractor").rglob("*.fits"))[:4]
    for path in local:
        s3.upload_file(str(path), "dr10", f"south/tractor/{path.parent.name}/{path.name}")
    s3.put_object(Bucket="dr10", Key="south/tractor/README.txt", Body=b"not a catalogue")
    summary = select.run(tmp_path, "v3_color_relaxed", catalogs="s3://dr10/south/tractor/")
    assert summary["catalogues"] == 4 and not summary["failed_catalogues"]
    cuts = load(None, environ={}).variants["v3_color_relaxed"].cuts
    expected = sum(int(select.apply_cuts(select.read_catalogue(str(p)), cuts)[0].sum()) for p in local)
    assert summary["selected"] == expected > 0


def test_gzipped_catalogues_read_and_a_release_root_yields_only_catalogues(
    tmp_path: Path, big_catalog_ws: Path
) -> None:
    """A DR10 mirror holds `tractor-*.fits(.gz)`, `sweep-*.fits.gz` and coadd images side by
    side: select reads the gzipped catalogues and never mistakes an image for a catalogue."""
    import gzip

    plain = _copy_catalogues(big_catalog_ws, tmp_path)
    expected = select.run(tmp_path, "v4_sota")["selected"]
    root = tmp_path / "release"
    for i, path in enumerate(plain):
        name = path.name if i % 2 else path.name.replace("tractor-", "sweep-")
        target = root / ("tractor" if i % 2 else "sweep") / f"{name}.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.compress(path.read_bytes()))
    image = root / "coadd" / "176" / "1761p062" / "legacysurvey-1761p062-image-r.fits.fz"
    image.parent.mkdir(parents=True)
    fits.PrimaryHDU(np.zeros((8, 8), dtype=np.float32)).writeto(image)
    (root / "coadd" / "ccds-annotated-dr10.fits").write_bytes(image.read_bytes())
    assert select.catalogue_files(str(root)) == sorted(str(p) for p in root.rglob("*.fits.gz"))

    summary = select.run(tmp_path, "v4_sota", catalogs=str(root), force=True)
    assert summary["catalogues"] == len(plain) and not summary.get("failed_catalogues")
    assert summary["selected"] == expected
    one = next(root.rglob("sweep-*.fits.gz"))
    assert select.catalogue_files(str(one)) == [str(one)]
