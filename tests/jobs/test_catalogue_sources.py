"""Real galaxies as sources (issue 24): a tiny sample in GalSim's RealGalaxyCatalog format, each
galaxy serving one split, rendered alike by both engines, recorded per manifest and stamp row."""

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from core.layout import coadd_cache_dir
from jobs.lensing import catalogue
from jobs.lensing.batched import BatchedEngine
from jobs.lensing.engines import LenstronomyEngine
from jobs.lensing.injection import InjectSettings, inject_batch
from jobs.lensing.params import ArcParams, fine_half_width
from jobs.lensing.psf import supersampled
from jobs.runtime import stage as stage_runtime
from jobs.stages import manifest
from jobs.survey.layout import PIXSCALE

# its module-scoped fixtures are built once: pytest-xdist runs the file on one worker
pytestmark = pytest.mark.xdist_group("test_catalogue_sources")

SCALE = 0.03  # COSMOS's ″ a pixel


def _galaxy(rng: np.random.Generator) -> np.ndarray:
    """An irregular HST-like stamp: a few Gaussian knots and faint noise, not square."""
    h, w = int(rng.integers(41, 71)), int(rng.integers(41, 71))
    y, x = np.indices((h, w))
    image = rng.normal(0, 2e-4, (h, w))
    for _ in range(int(rng.integers(2, 6))):
        cx, cy = rng.uniform(0.35 * w, 0.65 * w), rng.uniform(0.35 * h, 0.65 * h)
        sigma = rng.uniform(1.5, 6.0)
        image += rng.uniform(0.2, 1.0) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
    return image.astype(np.float32)


def write_sample(folder: Path, n: int = 60, seed: int = 0) -> Path:
    """A RealGalaxyCatalog as GalSim lays it out: the table, the galaxies' file (one HDU each)
    and the PSFs' file beside it."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    galaxies = [_galaxy(rng) for _ in range(n)]
    fits.HDUList([fits.PrimaryHDU(galaxies[0]), *map(fits.ImageHDU, galaxies[1:])]).writeto(
        folder / "real_galaxy_images_tiny_n1.fits"
    )
    psf = np.outer(*(2 * [np.exp(-0.5 * (np.arange(-12, 13) / 1.4) ** 2)])).astype(np.float32)
    fits.HDUList([fits.PrimaryHDU(psf), *[fits.ImageHDU(psf) for _ in range(n - 1)]]).writeto(
        folder / "real_galaxy_PSF_images_tiny_n1.fits"
    )
    columns = [
        fits.Column(name="IDENT", format="J", array=np.arange(1000, 1000 + n)),
        fits.Column(name="RA", format="D", array=rng.uniform(149.5, 150.5, n)),
        fits.Column(name="DEC", format="D", array=rng.uniform(1.7, 2.7, n)),
        fits.Column(name="MAG", format="D", array=rng.uniform(21.5, 25.0, n)),
        fits.Column(name="BAND", format="5A", array=["F814W"] * n),
        fits.Column(name="WEIGHT", format="D", array=np.ones(n)),
        fits.Column(name="GAL_FILENAME", format="40A", array=["real_galaxy_images_tiny_n1.fits"] * n),
        fits.Column(name="PSF_FILENAME", format="40A", array=["real_galaxy_PSF_images_tiny_n1.fits"] * n),
        fits.Column(name="GAL_HDU", format="J", array=np.arange(n)),
        fits.Column(name="PSF_HDU", format="J", array=np.arange(n)),
        fits.Column(name="PIXEL_SCALE", format="D", array=np.full(n, SCALE)),
        fits.Column(name="NOISE_MEAN", format="D", array=np.zeros(n)),
        fits.Column(name="NOISE_VARIANCE", format="D", array=np.full(n, 4e-8)),
        fits.Column(name="STAMP_FLUX", format="D", array=[g.sum() for g in galaxies]),
    ]
    path = folder / "real_galaxy_catalog_tiny.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)]).writeto(path)
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("cosmos") / "COSMOS_tiny_training_sample")


def test_the_catalogue_reads_galaxies_as_unit_flux_stamps(sample: Path) -> None:
    galaxies = catalogue.load(sample)
    assert len(galaxies) == 60 and galaxies.ident[0] == "1000" and galaxies.scale[0] == SCALE
    image = galaxies.image(7)
    assert image.sum() * SCALE**2 == pytest.approx(1.0)
    assert 0.05 < catalogue.half_light_radius(image, SCALE) < 1.0


def test_a_missing_or_malformed_catalogue_is_one_line_naming_it(sample: Path, tmp_path: Path) -> None:
    with pytest.raises(catalogue.CatalogueError) as err:
        catalogue.load(tmp_path / "real_galaxy_catalog_25.2.fits")
    assert "no galaxy catalogue there" in str(err.value) and "galsim_download_cosmos -s 25.2" in str(
        err.value
    )
    with fits.open(sample) as hdus:
        table = hdus[1].data
        columns = [c for c in hdus[1].columns if c.name != "GAL_HDU"]
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns, nrows=len(table))]).writeto(
            tmp_path / "bad.fits"
        )
    with pytest.raises(catalogue.CatalogueError, match="no column 'gal_hdu'"):
        catalogue.load(tmp_path / "bad.fits")


def test_each_source_galaxy_serves_one_split() -> None:
    splits = ("train", "val", "test")
    chosen = [catalogue.split_of(i, splits, (0.7, 0.15, 0.15)) for i in range(3000)]
    assert chosen == [catalogue.split_of(i, splits, (0.7, 0.15, 0.15)) for i in range(3000)]  # by id, always
    shares = [chosen.count(s) / 3000 for s in splits]
    assert shares == pytest.approx([0.7, 0.15, 0.15], abs=0.03)


def _params(sample: Path, n: int, theta_e: float | None = None) -> tuple[ArcParams, list]:
    galaxies = catalogue.load(sample)
    rng = np.random.default_rng(2)
    configs = np.stack(
        [
            rng.choice([0.75, 1.25, 2.0], n),
            np.zeros(n),
            np.full(n, 0.2),
            np.zeros(n),
            rng.choice([0.0, 0.04], n),
        ],
        axis=1,
    )
    tasks = manifest.example_tasks(configs, 3)
    if theta_e is not None:
        tasks["theta_e_arcsec"], tasks["shear"] = np.full(n, theta_e), np.zeros(n)
    images = [(galaxies.image(i), SCALE) for i in range(n)]
    return ArcParams.from_tasks(tasks, tasks["dx"], tasks["dy"], images), images


def test_both_engines_render_catalogue_sources_alike_and_keep_their_flux(sample: Path) -> None:
    """lenstronomy's INTERPOL and the batched engine's bilinear sampling of the same stamps, not
    square, rotated: equal to 1e-3 of the peak; unlensed (θE → 0) the stamp's flux comes back."""
    params, _ = _params(sample, 12)
    fluxes = np.random.default_rng(4).uniform(0.5, 2.0, (12, 1, 3))
    kernels = [(supersampled("moffat", 1.2, PIXSCALE),) * 3] * 12
    ss, half = params.supersample(), fine_half_width(params, 64)
    assert ss.min() >= 9  # a sub-pixel no wider than a stamp's pixel
    reference = LenstronomyEngine(64).arcs(params, fluxes, kernels, ss, half)
    batched = BatchedEngine(64).arcs(params, fluxes, kernels, ss, half)
    peak = reference.max(axis=(1, 2, 3))
    assert (np.abs(batched - reference).max(axis=(1, 2, 3)) / peak).max() <= 1e-3
    flat, _ = _params(sample, 6, theta_e=1e-4)
    unlensed = LenstronomyEngine(64).arcs(
        flat, np.ones((6, 1, 3)), kernels[:6], flat.supersample(), fine_half_width(flat, 64)
    )
    assert np.abs(unlensed.sum(axis=(2, 3)) - 1).max() < 5e-3


@pytest.fixture(scope="module")
def catalogue_ws(inject_ws: Path, sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("catalogue")
    shutil.copytree(inject_ws / "survey", root / "survey")
    shutil.copytree(inject_ws / "data", root / "data", ignore=shutil.ignore_patterns("manifest", "stamps"))
    shutil.copytree(sample.parent, root / "cosmos")
    (root / "halo.toml").write_text(
        "[grids.real_sources]\ntheta_e_arcsec = [0.75, 1.25, 2.0]\nsrc_reff_arcsec = [0.2]\nsrc_e = [0.0]\n"
        "shear = [0.0, 0.04]\nn_total_per_split = 60\ncontrol_frac = 0.5\n"
        "[grids.real_sources.source]\nmode = 'catalogue'\n"
        f"catalogue = 'cosmos/{sample.name}'\n"
    )
    manifest.run(root, "v4_sota", grid="real_sources")
    return root


def test_the_manifest_draws_each_splits_sources_from_its_own_galaxies(
    catalogue_ws: Path, sample: Path
) -> None:
    from core.config import load

    table = pq.read_table(manifest.manifest_dir(catalogue_ws, "v4_sota", "real_sources") / "manifest.parquet")
    rows = [r for r in table.to_pylist() if not r["is_control"] and not r["known_tier"]]
    assert rows and all(r["src_cat_ident"] for r in rows)
    splits = load(catalogue_ws).variants["v4_sota"].splits
    names = tuple(s for s in ("train", "val", "test") if splits.get(s, 0) > 0)
    fractions = tuple(splits[s] for s in names)
    for r in rows:
        assert catalogue.split_of(r["src_cat_ident"], names, fractions) == r["split"]
    galaxies = catalogue.load(sample)
    mag = dict(zip(galaxies.ident, galaxies.mag, strict=True))
    for r in rows:
        assert r["src_mag_r"] == pytest.approx(mag[r["src_cat_ident"]] + 0.25)
        assert 22.0 <= r["src_mag_r"] <= 25.5
        assert np.isnan(r["src_reff_arcsec"]) and np.isnan(r["src_n"])  # the image's own, not the grid's
    used = {s: {r["src_cat_ident"] for r in rows if r["split"] == s} for s in names}
    assert not set.intersection(*used.values())


def test_inject_renders_catalogue_sources_and_names_a_missing_catalogue(
    catalogue_ws: Path, tmp_path: Path
) -> None:
    from core.config import load
    from jobs.stages import inject

    path = manifest.manifest_dir(catalogue_ws, "v4_sota", "real_sources") / "manifest.parquet"
    table = pq.read_table(path)
    rows = [r for r in table.to_pylist() if not r["is_control"] and not r["known_tier"]][:8]
    config = load(catalogue_ws)
    source = config.grids["real_sources"].source
    settings = inject.settings_for(str(catalogue_ws), config.variants["v4_sota"], source, {})
    assert settings.source_catalogue.endswith("real_galaxy_catalog_tiny.fits")
    out = inject_batch(pa.Table.from_pylist(rows, schema=table.schema), settings).to_pydict()
    assert all(out["ok"]), out["fail_reason"]
    assert out["src_cat_ident"] == [r["src_cat_ident"] for r in rows]
    assert all(m > 0 for m in out["mu"])
    bare = InjectSettings(cache=settings.cache)  # a runner not given the grid's catalogue
    refused = inject_batch(pa.Table.from_pylist(rows[:2], schema=table.schema), bare).to_pydict()
    assert refused["ok"] == [False, False] and "source catalogue was not given" in refused["fail_reason"][0]
    ws = tmp_path / "ws"
    shutil.copytree(catalogue_ws / "data" / "parent", ws / "data" / "parent")
    (ws / "halo.toml").write_text((catalogue_ws / "halo.toml").read_text().replace("cosmos/", "nowhere/"))
    with pytest.raises(stage_runtime.StageError) as err:
        manifest.run(ws, "v4_sota", grid="real_sources")
    assert "no galaxy catalogue there" in str(err.value) and "\n" not in str(err.value)


def test_an_emr_inject_step_reads_psf_files_and_the_catalogue_under_its_prefix(
    catalogue_ws: Path, sample: Path, tmp_path: Path, emr_cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step the EMR backend adds finds the variant's PSF files and the grid's catalogue
    under the workspace's s3:// prefix (moto's S3), names what is not uploaded in one line,
    and renders from the copies exactly what the local runner renders from the files."""
    import boto3

    from core.engine import Engine
    from core.workspace import Workspace
    from jobs.runtime import spark as spark_pipeline
    from jobs.stages import inject

    root = tmp_path / "ws"
    (root / "psf").mkdir(parents=True)
    psf = np.outer(*(2 * [np.exp(-0.5 * (np.arange(-15, 16) / 2.2) ** 2)]))
    for band in "grz":
        hdu = fits.PrimaryHDU(psf.astype(np.float32))
        hdu.header["PSF_SAMP"] = 0.5
        hdu.writeto(root / "psf" / f"{band}.fits")
    (root / "halo.toml").write_text(
        (catalogue_ws / "halo.toml").read_text()
        + "[variants.v4_sota.injection]\npsf_model = 'pixel'\n[variants.v4_sota.injection.psf_files]\n"
        + "".join(f"{b} = 'psf/{b}.fits'\n" for b in "grz")
    )
    emr_cluster(root)
    job = Engine(Workspace(root)).launch(
        "inject", variant="v4_sota", params={"grid": "real_sources"}, backend="emr"
    )
    steps = boto3.client("emr", region_name="us-east-1").list_steps(ClusterId=job.handle["cluster"])["Steps"]
    args = next(s for s in steps if s["Id"] == job.handle["step"])["Config"]["Args"]
    _, step = spark_pipeline.parse(args[args.index("--py-files") + 3 :])
    settings = inject.settings_for(step.root, step.config, step.sources.get(step.grid), step.params)
    assert settings.psf_files == tuple(f"s3://halo-data/ws/psf/{b}.fits" for b in "grz")
    assert settings.source_catalogue == f"s3://halo-data/ws/cosmos/{sample.name}"

    monkeypatch.chdir(tmp_path)  # an executor's working directory: where the catalogue is copied
    with pytest.raises(stage_runtime.StageError) as err:  # nothing uploaded yet
        inject.check_files(settings)
    assert "s3://halo-data/ws/psf/g.fits" in str(err.value) and "\n" not in str(err.value)
    s3 = boto3.client("s3")
    for band in "grz":
        s3.upload_file(str(root / "psf" / f"{band}.fits"), "halo-data", f"ws/psf/{band}.fits")
    with pytest.raises(stage_runtime.StageError, match="no galaxy catalogue there"):
        inject.check_files(settings)
    for file in sample.parent.iterdir():
        s3.upload_file(str(file), "halo-data", f"ws/cosmos/{file.name}")
    inject.check_files(settings)

    table = pq.read_table(manifest.manifest_dir(catalogue_ws, "v4_sota", "real_sources") / "manifest.parquet")
    rows = pa.Table.from_pylist(
        [r for r in table.to_pylist() if not r["is_control"] and not r["known_tier"]][:4], schema=table.schema
    )
    cache = str(coadd_cache_dir(catalogue_ws))  # the coadds stay local: only the files are at stake
    on_s3 = inject_batch(rows, InjectSettings(**{**settings.__dict__, "cache": cache}))
    local = InjectSettings(
        **{
            **settings.__dict__,
            "cache": cache,
            "psf_files": tuple(str(root / "psf" / f"{b}.fits") for b in "grz"),
            "source_catalogue": str(sample),
        }
    )
    here = inject_batch(rows, local)
    assert all(on_s3.column("ok").to_pylist()), on_s3.column("fail_reason").to_pylist()
    assert on_s3.column("stamp").to_pylist() == here.column("stamp").to_pylist()
    assert list((tmp_path / ".halo-catalogues").glob(f"*/{sample.name}"))  # one copy, whole


def test_inject_refuses_a_manifest_drawn_from_another_catalogue_or_missing_images(
    catalogue_ws: Path, sample: Path, tmp_path: Path
) -> None:
    """A catalogue replaced after `manifest` (other galaxies at the manifest's entries) and a
    catalogue whose image files are not all there: each is one line before any row."""
    from jobs.stages import inject

    ws = tmp_path / "ws"
    shutil.copytree(catalogue_ws, ws, ignore=shutil.ignore_patterns("stamps"))
    with fits.open(sample) as hdus:  # the same layout, other galaxies: new ids at every entry
        hdus[1].data["IDENT"] += 5000
        hdus.writeto(ws / "cosmos" / sample.name, overwrite=True)
    with pytest.raises(stage_runtime.StageError) as err:
        inject.run(ws, "v4_sota", grid="real_sources")
    assert "drawn from another catalogue" in str(err.value) and "\n" not in str(err.value)
    shutil.copy(sample, ws / "cosmos" / sample.name)
    (ws / "cosmos" / "real_galaxy_images_tiny_n1.fits").unlink()
    with pytest.raises(stage_runtime.StageError) as err:
        inject.run(ws, "v4_sota", grid="real_sources")
    assert "real_galaxy_images_tiny_n1.fits" in str(err.value) and "missing" in str(err.value)
