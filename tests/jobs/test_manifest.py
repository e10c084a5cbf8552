"""manifest: disjoint unpaired controls, one split per galaxy, even coverage, verification."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from core.config import load
from core.schemas import galaxy_keys
from jobs.lensing.shapes import tractor_to_q_theta
from jobs.runtime.stage import StageError
from jobs.stages import manifest, select
from jobs.stages.manifest import build, control_galaxies, grid_configs, manifest_dir, read_parent, verify
from jobs.stages.select import parent_dir

# its module-scoped fixtures are built once: pytest-xdist runs the file on one worker
pytestmark = pytest.mark.xdist_group("test_manifest")


@pytest.fixture(scope="module")
def parent_ws(big_catalog_ws: Path) -> Path:
    select.run(big_catalog_ws, "v3_color_relaxed")
    return big_catalog_ws


@pytest.fixture(scope="module")
def parent(parent_ws: Path) -> dict:
    return read_parent(parent_dir(parent_ws, "v3_color_relaxed") / "parent.parquet")


@pytest.fixture(scope="module")
def sota(parent_ws: Path):
    return load(parent_ws, environ={}).grids["grid_sota"]


def _keys(columns: dict, mask: np.ndarray) -> set:
    return set(zip(columns["brickname"][mask], columns["objid"][mask], strict=True))


def test_unpaired_controls_and_positives_are_disjoint_on_2000_lrgs(parent_ws: Path, parent: dict) -> None:
    assert len(parent["objid"]) >= 2000
    summary = manifest.run(parent_ws, "v4_sota", grid="grid_sota")
    table = pq.read_table(summary["outputs"][0]).to_pydict()
    columns = {k: np.asarray(v) for k, v in table.items()}
    ctrl = columns["is_control"]
    host = ~ctrl & (columns["known_tier"] == "")
    assert not _keys(columns, ctrl) & _keys(columns, ~ctrl)
    ra, dec = np.round(columns["ra"], 6), np.round(columns["dec"], 6)
    ctrl_radec = set(zip(ra[ctrl], dec[ctrl], strict=True))
    pos_radec = set(zip(ra[~ctrl], dec[~ctrl], strict=True))
    assert ctrl_radec and pos_radec and not ctrl_radec & pos_radec
    assert len(_keys(columns, ctrl)) > 500 and len(_keys(columns, host)) > 500
    report = json.loads((manifest_dir(parent_ws, "v4_sota", "grid_sota") / "verification.json").read_text())
    disjoint = next(c for c in report["checks"] if "disjoint" in c["check"])
    assert report["ok"] and disjoint["overlap"] == 0
    # 3,000 control rows asked for per split, a few hundred control galaxies in each: every
    # one used once, the shortfall recorded
    assert summary["positives"] == summary["rows"] - summary["controls"] - summary["known_lenses"] == 3 * 3000
    assert summary["controls"] == len(_keys(columns, ctrl)) < 3 * 3000
    for split in ("train", "val", "test"):
        in_split = ctrl & (columns["split"] == split)
        assert in_split.sum() == len(_keys(columns, in_split))
        assert summary["control_shortfalls"][split] == {"requested": 3000, "written": int(in_split.sum())}


def test_a_control_galaxy_is_one_negative_used_once(parent: dict, sota) -> None:
    """The review's finding: 1,000 test control rows were 24 galaxies repeated ~41 times."""
    few = sota.model_copy(update={"n_total_per_split": 200})
    columns = build(parent, few, "v4_sota", "grid_sota")
    ctrl = columns["is_control"]
    for split in ("train", "val", "test"):
        in_split = ctrl & (columns["split"] == split)
        assert in_split.sum() == 100 == len(_keys(columns, in_split))  # enough galaxies: as asked
    configs = np.array(grid_configs(few))
    assert verify(columns, "unpaired", configs)["ok"]
    repeated = {k: np.concatenate([v, v[ctrl][:1]]) for k, v in columns.items()}  # one control twice
    check = next(c for c in verify(repeated, "unpaired", configs)["checks"] if "at most one" in c["check"])
    assert not check["ok"] and check["most_uses"] == 2


def test_paired_mode_reuses_galaxies_and_warns(parent: dict, sota) -> None:
    paired = sota.model_copy(update={"control_mode": "paired"})
    columns = build(parent, paired, "v4_sota", "grid_sota")
    ctrl = columns["is_control"]
    assert _keys(columns, ctrl) == _keys(columns, ~ctrl)
    report = verify(columns, "paired", np.array(grid_configs(paired)))
    assert report["ok"] and "extra flux" in report["checks"][0]["warning"]


def test_each_broken_manifest_is_caught(parent: dict, sota) -> None:
    good = build(parent, sota, "v4_sota", "grid_sota")
    configs = np.array(grid_configs(sota))
    assert verify(good, "unpaired", configs)["ok"]

    def failing(columns: dict) -> list[str]:
        return [c["check"] for c in verify(columns, "unpaired", configs)["checks"] if not c["ok"]]

    # coverage: the positives of 100 configurations are dropped from the train split
    keep = ~((good["split"] == "train") & (good["config_id"] >= 0) & (good["config_id"] < 100))
    assert failing({k: v[keep] for k, v in good.items()}) == ["even grid coverage (train)"]
    # coverage: 10 configurations scattered over the grid never drawn in the test split
    scattered = (good["split"] == "test") & np.isin(good["config_id"], np.arange(0, 1008, 101))
    assert failing({k: v[~scattered] for k, v in good.items()}) == []  # within sampling noise at ~3 a config
    # coverage: one configuration drawn for every other positive of the val split
    skewed = {k: v.copy() for k, v in good.items()}
    val_pos = (skewed["split"] == "val") & ~skewed["is_control"]
    skewed["config_id"][np.flatnonzero(val_pos)[::2]] = 7
    assert failing(skewed) == ["even grid coverage (val)"]
    # overlap: a control galaxy also used as a positive
    leaked = {k: v.copy() for k, v in good.items()}
    first_ctrl, first_pos = np.flatnonzero(leaked["is_control"])[0], np.flatnonzero(~leaked["is_control"])[0]
    for c in ("brickname", "objid", "ra", "dec", "split"):
        leaked[c][first_pos] = leaked[c][first_ctrl]
    assert failing(leaked) == ["controls and positives are disjoint galaxy sets"]
    # a galaxy in two splits
    moved = {k: v.copy() for k, v in good.items()}
    rows = np.flatnonzero(moved["brickname"] == moved["brickname"][0])
    moved["split"][rows[0]] = "test" if moved["split"][rows[0]] != "test" else "val"
    assert "no galaxy sits in two splits" in failing(moved)


def test_a_failed_verification_writes_the_report_and_no_manifest(parent_ws: Path, monkeypatch) -> None:
    real_build = manifest.build

    def broken(*args, **kwargs):
        columns = real_build(*args, **kwargs)
        keep = columns["config_id"] != 3
        keep |= columns["is_control"]
        return {k: v[keep] for k, v in columns.items()}

    monkeypatch.setattr(manifest, "build", broken)
    with pytest.raises(StageError, match="failed verification"):
        manifest.run(parent_ws, "v3_color_relaxed", grid="grid_small", force=True)
    assert not (manifest_dir(parent_ws, "v3_color_relaxed", "grid_small") / "manifest.parquet").exists()
    report = json.loads(
        (
            manifest_dir(parent_ws, "v3_color_relaxed", "x").parent / "grid_small.verification-failed.json"
        ).read_text()
    )
    assert not report["ok"]


def test_tasks_carry_their_parameters(parent: dict, sota) -> None:
    columns = build(parent, sota, "v4_sota", "grid_sota")
    again = build(parent, sota, "v4_sota", "grid_sota")
    assert all(
        np.array_equal(columns[k], again[k], equal_nan=columns[k].dtype.kind == "f") for k in columns
    )  # deterministic
    ctrl = columns["is_control"]
    assert np.all(columns["theta_e_arcsec"][ctrl] == 0) and np.all(columns["config_id"][ctrl] == -1)
    pos = ~ctrl
    assert set(np.unique(columns["theta_e_arcsec"][pos])) == set(sota.theta_e_arcsec)
    configs = np.array(grid_configs(sota))
    chosen = configs[columns["config_id"][pos]]
    assert np.allclose(chosen[:, 0], columns["theta_e_arcsec"][pos])
    assert np.allclose(chosen[:, 4], columns["shear"][pos])
    offset = np.hypot(columns["src_x_arcsec"], columns["src_y_arcsec"])[pos]
    assert np.all(offset <= 0.5 * columns["theta_e_arcsec"][pos] + 1e-12)
    assert np.all((columns["lens_q"] >= 0.4) & (columns["lens_q"] <= 1))
    assert len(np.unique(columns["seed"])) == len(columns["seed"])
    assert np.array_equal(columns["task_id"], np.arange(len(columns["task_id"])))
    row = np.flatnonzero(pos)[0]
    index = np.flatnonzero(
        (parent["brickname"] == columns["brickname"][row]) & (parent["objid"] == columns["objid"][row])
    )[0]
    q, theta = tractor_to_q_theta(parent["shape_e1"][index], parent["shape_e2"][index])
    assert np.isclose(columns["lens_theta"][row], theta) and np.isclose(columns["lens_q"][row], max(q, 0.4))


def test_grid_small_is_dealt_out_evenly(parent: dict, parent_ws: Path) -> None:
    small = load(parent_ws, environ={}).grids["grid_small"]
    assert small.n_configs == 48
    columns = build(parent, small, "v3_color_relaxed", "grid_small")
    for split in ("train", "val", "test"):
        pos = (columns["split"] == split) & ~columns["is_control"]
        counts = np.bincount(columns["config_id"][pos], minlength=48)
        assert counts.max() - counts.min() <= 1


def test_manifest_through_the_engine(parent_ws: Path, halo) -> None:
    import shutil

    shutil.copytree(parent_ws / "data", halo.root / "data")
    job = halo.json("stage", "manifest", "--variant", "v4_sota", "--grid", "grid_small", "--wait")
    assert job["state"] == "succeeded"
    assert job["outputs"] == [str(manifest_dir(halo.root, "v4_sota", "grid_small") / "manifest.parquet")]
    assert job["summary"]["verified"] is True and job["summary"]["n_configs"] == 48
    assert (
        "grid_huge"
        in halo("stage", "manifest", "--variant", "v4_sota", "--grid", "grid_huge", check=2).stderr
    )


def test_no_galaxy_with_a_known_lens_in_its_stamp_is_a_control_or_a_host(
    parent_ws: Path, parent: dict, sota, tmp_path
) -> None:
    """A galaxy with a known lens anywhere in its stamp (within the half-diagonal plus 3″:
    14.9″ for 64 px) stays out of the tasks (3″ let planted lenses sit in controls' stamps);
    16″ away is outside; verify catches a manifest that does not keep them out."""
    from core.layout import known_lenses_path
    from jobs.survey import known_lenses
    from jobs.survey.catalogs import write_csv

    assert known_lenses.exclusion_radius_arcsec(64) == pytest.approx(64 * 0.262 / 2**0.5 + 3.0)
    keys = galaxy_keys(parent["brickname"], parent["objid"])
    ctrl = control_galaxies(keys, sota.control_frac)
    lens_c, in_stamp = (int(i) for i in np.flatnonzero(ctrl)[:2])  # controls
    lens_p, outside = (int(i) for i in np.flatnonzero(~ctrl)[:2])  # hosts

    def east(i: int, arcsec: float) -> float:
        return parent["ra"][i] + arcsec / 3600 / np.cos(np.radians(parent["dec"][i]))

    rows = [
        ["SLACS-like", east(lens_c, 2.5), parent["dec"][lens_c], "confident", "test"],
        ["candidate", parent["ra"][lens_p], parent["dec"][lens_p], "probable", "test"],
        ["in the stamp", east(in_stamp, 10.0), parent["dec"][in_stamp], "probable", "test"],
        ["beyond it", east(outside, 16.0), parent["dec"][outside], "probable", "test"],
    ]
    write_csv(known_lenses_path(parent_ws), ["name", "ra", "dec", "grade", "reference"], rows)
    try:
        lenses = known_lenses.load(parent_ws)
        assert lenses["source"][-1] == "workspace" and lenses["ra"].size > 25000  # lenscat's too
        near = known_lenses.in_stamp(parent["ra"], parent["dec"], lenses, 64)
        assert near[lens_c] and near[lens_p] and near[in_stamp]
        # independently: the angular distance of every galaxy to every planted row
        ra, dec = np.radians(parent["ra"])[:, None], np.radians(parent["dec"])[:, None]
        lra, ldec = np.radians([r[1] for r in rows])[None], np.radians([r[2] for r in rows])[None]
        cos = np.sin(dec) * np.sin(ldec) + np.cos(dec) * np.cos(ldec) * np.cos(ra - lra)
        arcsec = np.degrees(np.arccos(np.clip(cos, -1, 1))) * 3600
        expected = (arcsec < known_lenses.exclusion_radius_arcsec(64)).any(axis=1)
        assert np.array_equal(near, expected) and arcsec[outside, 3] == pytest.approx(16.0, abs=0.01)
        summary = manifest.run(parent_ws, "v4_sota", grid="grid_sota", force=True)
        table = pq.read_table(summary["outputs"][0]).to_pydict()
        tasks = {
            (b, o)
            for b, o, t in zip(table["brickname"], table["objid"], table["known_tier"], strict=True)
            if not t  # hosts and controls (a known lens's own galaxy is its own task)
        }
        assert not {(parent["brickname"][i], parent["objid"][i]) for i in np.flatnonzero(near)} & tasks
        report = json.loads(
            (manifest_dir(parent_ws, "v4_sota", "grid_sota") / "verification.json").read_text()
        )
        check = next(c for c in report["checks"] if "in its stamp" in c["check"])
        # the lenses' own galaxies are their own tasks, not neighbours of one
        assert (
            check["ok"]
            and check["near_known_lenses_in_parent"] == int(expected.sum()) - summary["known_lenses"]
        )
        # a manifest that made such a galaxy a control fails verification
        columns = build(parent, sota, "v4_sota", "grid_sota")
        failed = verify(columns, "unpaired", np.array(grid_configs(sota)), set(keys[near]))
        check = next(c for c in failed["checks"] if "in its stamp" in c["check"])
        assert not failed["ok"] and check["as_controls"] + check["as_hosts"] >= 1
    finally:
        known_lenses_path(parent_ws).unlink()
        manifest.run(parent_ws, "v4_sota", grid="grid_sota", force=True)


def test_known_lenses_are_one_real_positive_each_in_their_galaxys_split(
    parent_ws: Path, parent: dict, capsys
) -> None:
    """Issue 23, part 1: a known lens that is a parent galaxy is one task in that galaxy's
    split (no arc, not a control), tiered by its grade; the manifest counts tiers per split;
    a variant's own catalogue adds lenses; its bad rows, lenses off the parent sample and
    grades that map to no tier are each said in one line, and the rest goes on."""
    from core.layout import known_lenses_path
    from jobs.survey.catalogs import write_csv

    rng = np.random.default_rng(5)
    picks = [int(i) for i in rng.choice(parent["ra"].size, 4, replace=False)]
    rows = [
        ["conf", parent["ra"][picks[0]], parent["dec"][picks[0]] + 1 / 3600, "confident", "t"],
        ["prob", parent["ra"][picks[1]], parent["dec"][picks[1]], "B", "t"],
        ["odd grade", parent["ra"][picks[2]], parent["dec"][picks[2]], "maybe?", "t"],
        ["bad row", "abc", parent["dec"][picks[3]], "confident", "t"],
        ["between galaxies", parent["ra"][picks[3]], parent["dec"][picks[3]] + 8 / 3600, "confident", "t"],
    ]
    extra = parent_ws / "papers.csv"
    write_csv(extra, ["name", "ra", "dec", "grade", "reference"], rows[1:])
    write_csv(known_lenses_path(parent_ws), ["name", "ra", "dec", "grade", "reference"], rows[:1])
    toml = parent_ws / "halo.toml"
    before = toml.read_text() if toml.exists() else None
    toml.write_text((before or "") + '\n[variants.v4_sota.training]\ncatalogues = ["papers.csv"]\n')
    try:
        capsys.readouterr()
        summary = manifest.run(parent_ws, "v4_sota", grid="grid_sota", force=True)
        said = capsys.readouterr().out
        table = {k: np.asarray(v) for k, v in pq.read_table(summary["outputs"][0]).to_pydict().items()}
        known = table["known_tier"] != ""
        got = {
            (b, int(o)): (t, s, c, th)
            for b, o, t, s, c, th in zip(
                table["brickname"][known],
                table["objid"][known],
                table["known_tier"][known],
                table["split"][known],
                table["is_control"][known],
                table["theta_e_arcsec"][known],
                strict=True,
            )
        }
        for pick, tier in ((picks[0], "confirmed"), (picks[1], "probable")):
            key = (parent["brickname"][pick], int(parent["objid"][pick]))
            assert got[key] == (tier, parent["split"][pick], False, 0.0)
        odd = (parent["brickname"][picks[2]], int(parent["objid"][picks[2]]))
        assert odd not in got and "known lens odd grade (papers.csv) is graded 'maybe?': no tier" in said
        assert "papers.csv: row 3: ra 'abc' is not a number; left out" in said
        assert "known lens between galaxies" in said and "no parent galaxy within 3″" in said
        report = json.loads(
            (manifest_dir(parent_ws, "v4_sota", "grid_sota") / "verification.json").read_text()
        )
        check = next(c for c in report["checks"] if "one task" in c["check"])
        assert check["ok"] and check["known_lens_tasks"] == int(known.sum()) == summary["known_lenses"]
        counted = sum(n for split in check["tiers"].values() for n in split.values())
        assert counted == int(known.sum())
        # and it fails where a known lens's galaxy is also a host
        columns = {k: v.copy() for k, v in table.items()}
        host = np.flatnonzero(~columns["is_control"] & ~known)[0]
        first_known = np.flatnonzero(known)[0]
        for c in ("brickname", "objid"):
            columns[c][host] = columns[c][first_known]
        from jobs.stages.manifest import grid_configs, verify

        failed = verify(
            columns, "unpaired", np.array(grid_configs(load(parent_ws, environ={}).grids["grid_sota"]))
        )
        assert not next(c for c in failed["checks"] if "one task" in c["check"])["ok"]
    finally:
        known_lenses_path(parent_ws).unlink()
        extra.unlink()
        if before is None:
            toml.unlink()
        else:
            toml.write_text(before)
        manifest.run(parent_ws, "v4_sota", grid="grid_sota", force=True)


def test_objects_closer_than_1_5_arcsec_are_one_unit(parent: dict, sota) -> None:
    """Issue 23: distinct catalogue objects closer than 1.5″ (13 pairs in the demo, 5 of them
    a host and a control) are one independent unit: never split between host and control,
    one split, at most one control; verify catches a manifest that splits one."""
    from jobs.survey.catalogs import same_object_units

    rng = np.random.default_rng(3)
    n = parent["ra"].size
    twins = rng.choice(n, 40, replace=False)  # each gets a neighbour 0.3″ to 1.4″ away
    offset = rng.uniform(0.3, 1.4, twins.size) / 3600
    close = {k: np.concatenate([v, v[twins]]) for k, v in parent.items()}
    close["dec"] = np.concatenate([parent["dec"], parent["dec"][twins] + offset])
    close["objid"] = np.concatenate([parent["objid"], parent["objid"][twins] + 10**6])
    first = same_object_units(close["ra"], close["dec"])
    # against every pair's separation, counted directly
    ra, dec = np.radians(close["ra"]), np.radians(close["dec"])
    for i, j in zip(twins, n + np.arange(twins.size), strict=True):
        cos = np.sin(dec[i]) * np.sin(dec) + np.cos(dec[i]) * np.cos(dec) * np.cos(ra - ra[i])
        near = np.flatnonzero(np.degrees(np.arccos(np.clip(cos, -1, 1))) * 3600 < 1.5)
        assert first[i] == first[j] and set(first[near]) == {first[i]}
    assert np.unique(first).size <= n

    columns = build(close, sota, "v4_sota", "grid_sota")
    units, ctrl = np.asarray(columns["unit"]), np.asarray(columns["is_control"])
    assert not set(units[ctrl]) & set(units[~ctrl])
    control_units = units[ctrl]
    assert np.unique(control_units).size == control_units.size  # one control row per unit
    for u in np.unique(units):
        assert np.unique(np.asarray(columns["split"])[units == u]).size == 1
    report = verify(columns, "unpaired", np.array(grid_configs(sota)))
    assert report["ok"]
    broken = {k: np.array(v, copy=True) for k, v in columns.items()}
    host = np.flatnonzero(~ctrl)[0]
    broken["unit"][np.flatnonzero(ctrl)[0]] = broken["unit"][host]  # a control sharing a host's unit
    failed = verify(broken, "unpaired", np.array(grid_configs(sota)))
    check = next(c for c in failed["checks"] if "1.5″" in c["check"])
    assert not check["ok"] and check["units_both"] == 1
