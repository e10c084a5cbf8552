"""Structured sources (issue 24): a disc with a red bulge and blue star-forming clumps, each
component its own colour, drawn per task, recorded per row, rendered alike by both engines."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.config import ConfigError, SourceModel, load
from core.layout import coadd_cache_dir
from core.schemas import mag_to_nanomaggies
from jobs.lensing import sources
from jobs.lensing.batched import BatchedEngine
from jobs.lensing.engines import LenstronomyEngine
from jobs.lensing.injection import InjectSettings, inject_batch
from jobs.lensing.params import ArcParams, fine_half_width
from jobs.lensing.psf import supersampled
from jobs.stages import manifest
from jobs.survey.layout import PIXSCALE

# its module-scoped fixtures are built once: pytest-xdist runs the file on one worker
pytestmark = pytest.mark.xdist_group("test_sources")

SIZE = 64
STRUCTURED = SourceModel(mode="population", morphology="structured")


def _tasks(n: int, seed: int, spec: SourceModel = STRUCTURED) -> dict:
    rng = np.random.default_rng(seed)
    configs = np.stack(
        [
            rng.choice([0.75, 1.25, 2.0], n),
            np.zeros(n),
            rng.choice([0.1, 0.2, 0.3], n),
            rng.choice([0.0, 0.2, 0.4], n),
            rng.choice([0.0, 0.04], n),
        ],
        axis=1,
    )
    tasks = manifest.example_tasks(configs, seed)
    tasks.update(sources.draw(spec, np.full(n, 10.0), np.zeros(n), rng, tasks))
    return tasks


def _unlensed(tasks: dict, i: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Task i's source in g, r, z at (x, y) about its disc's centre, (bands, *x.shape)."""
    from lenstronomy.LightModel.light_model import LightModel

    params = ArcParams.from_tasks({k: v[i : i + 1] for k, v in tasks.items()})
    flux = sources.fluxes({k: v[i : i + 1] for k, v in tasks.items()})[0]
    _, kwargs = params.lenstronomy_kwargs(0)
    for kw in kwargs:
        kw["center_x"] -= params.src_x[0, 0]
        kw["center_y"] -= params.src_y[0, 0]
    light = LightModel(["SERSIC_ELLIPSE"] * params.components)
    parts = np.stack([light.surface_brightness(x, y, kwargs, k=c) for c in range(params.components)])
    return np.tensordot(flux.T, parts, axes=1)


def test_a_structured_source_holds_a_bulge_and_clumps_and_its_magnitudes_are_its_whole_light() -> None:
    tasks = _tasks(3000, seed=1)
    clumps = tasks["src_clumps"]
    assert clumps.mean() == pytest.approx(STRUCTURED.clumps_mean, rel=0.06)
    assert clumps.max() <= STRUCTURED.clumps_max and (clumps == 0).any()
    lengths = np.array([len(v) for v in tasks["src_comp_reff"]])
    assert np.array_equal(lengths, clumps + 1)  # the bulge, then the clumps
    for name in sources.STRUCTURE_COLUMNS:
        assert all(len(v) == m for v, m in zip(tasks[name], lengths, strict=True)), name
    # the disc keeps what the others leave, at least 5 % of r; the clumps at most their cap
    share_r = np.array([sum(v) for v in tasks["src_comp_frac_r"]])
    assert share_r.max() <= 0.95 + 1e-12 and share_r.min() >= 0
    clump_r = np.array([sum(v[1:]) for v in tasks["src_comp_frac_r"]])
    assert clump_r.max() <= STRUCTURED.clumps_share_max + 1e-12
    # the manifest's magnitudes are the whole source's: the components' fluxes add up to them
    fluxes = sources.fluxes(tasks)
    for b, band in enumerate("grz"):
        assert np.allclose(fluxes[:, :, b].sum(axis=1), mag_to_nanomaggies(tasks[f"src_mag_{band}"]))
    assert (fluxes >= 0).all()
    # each bulge redder than its disc in g − r, each clump bluer
    on = sources.components(tasks)["on"]
    with np.errstate(invalid="ignore", divide="ignore"):
        colour = -2.5 * np.log10(fluxes[:, :, 0] / fluxes[:, :, 1])
    disc = colour[:, :1]
    bulge = on[:, 0] & (fluxes[:, 1, 1] > 0)
    assert bulge.mean() > 0.9 and np.all(colour[bulge, 1] > disc[bulge, 0])
    clump = on[:, 1:]
    assert clump.sum() > 5000 and np.all((colour[:, 2:] < disc)[clump])
    sizes = np.concatenate([v[1:] for v in tasks["src_comp_reff"]])
    assert sizes.min() >= STRUCTURED.clump_reff[0] - 1e-12 and sizes.max() <= STRUCTURED.clump_reff[1] + 1e-12


def test_structured_sources_have_bluer_outskirts_and_asymmetric_light_smooth_ones_do_not() -> None:
    """Rendered unlensed on a fine grid: g − r outside R_eff bluer than inside R_eff/2 (the median
    source), and the light's 180° asymmetry A = Σ|I − I₁₈₀| / Σ I far above a Sérsic's (zero)."""
    n, step = 60, 0.01
    axis = (np.arange(161) - 80) * step
    x, y = np.meshgrid(axis, axis)
    radius = np.hypot(x, y)

    def measure(tasks: dict) -> tuple[np.ndarray, np.ndarray]:
        gradient, asymmetry = [], []
        for i in range(n):
            image = _unlensed(tasks, i, x, y)
            reff = tasks["src_reff_arcsec"][i]
            inner, outer = radius < reff / 2, (radius > reff) & (radius < 2.5 * reff)
            colour = [-2.5 * np.log10(image[0][m].sum() / image[1][m].sum()) for m in (inner, outer)]
            gradient.append(colour[1] - colour[0])
            r = image[1]
            asymmetry.append(np.abs(r - r[::-1, ::-1]).sum() / r.sum())
        return np.array(gradient), np.array(asymmetry)

    gradient, asymmetry = measure(_tasks(n, seed=2))
    smooth_gradient, smooth_asymmetry = measure(_tasks(n, seed=2, spec=SourceModel(mode="population")))
    assert np.median(gradient) < -0.1  # bluer outside
    assert np.abs(smooth_gradient).max() < 1e-6  # one colour everywhere
    assert np.median(asymmetry) > 0.15 and smooth_asymmetry.max() < 1e-6


def test_both_engines_render_structured_sources_alike() -> None:
    """24 structured sources (up to 9 components, clumps of 0.04″) in both engines: no pixel off by
    more than 1e-3 of the arc's peak, total flux within 0.1 %."""
    tasks = _tasks(24, seed=3)
    params = ArcParams.from_tasks(tasks, tasks["dx"], tasks["dy"])
    fluxes = sources.fluxes(tasks)
    rng = np.random.default_rng(4)
    kernels = [
        tuple(supersampled("moffat", f, PIXSCALE) for f in rng.uniform(0.9, 1.6, 3)) for _ in range(24)
    ]
    ss, half = params.supersample(), fine_half_width(params, SIZE)
    reference = LenstronomyEngine(SIZE).arcs(params, fluxes, kernels, ss, half)
    batched = BatchedEngine(SIZE).arcs(params, fluxes, kernels, ss, half)
    peak = reference.max(axis=(1, 2, 3))
    assert (np.abs(batched - reference).max(axis=(1, 2, 3)) / peak).max() <= 1e-3
    assert np.abs(batched.sum(axis=(2, 3)) / reference.sum(axis=(2, 3)) - 1).max() < 1e-3
    assert params.components >= 6 and len(set(ss.tolist())) >= 3
    # colours differ across the arc: a band is not a scaled copy of another
    g, r = reference[:, 0], reference[:, 1]
    ratio = np.where(r > 0.05 * r.max(axis=(1, 2), keepdims=True), g / np.where(r > 0, r, 1), np.nan)
    assert np.nanmedian(np.nanstd(ratio, axis=(1, 2)) / np.nanmean(ratio, axis=(1, 2))) > 0.05


def test_structured_sources_are_converged_at_their_default_supersampling() -> None:
    """The default sampling (the smallest component's) against 33 sub-pixels a side: flux within
    0.5 %, no pixel off by more than 1 % of the peak."""
    tasks = _tasks(8, seed=5)
    params = ArcParams.from_tasks(tasks, tasks["dx"], tasks["dy"])
    fluxes = sources.fluxes(tasks)
    kernels = [(supersampled("moffat", 1.0, PIXSCALE),) * 3] * 8
    half = fine_half_width(params, SIZE)
    engine = LenstronomyEngine(SIZE)
    default = engine.arcs(params, fluxes, kernels, params.supersample(), half)
    fine = engine.arcs(params, fluxes, kernels, np.full(8, 33), half)
    assert np.abs(default.sum(axis=(2, 3)) / fine.sum(axis=(2, 3)) - 1).max() < 5e-3
    assert (np.abs(default - fine).max(axis=(1, 2, 3)) / fine.max(axis=(1, 2, 3))).max() < 0.01


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("clump_reff = [0.01, 0.1]", "clump_reff must be an ordered pair within [0.04, 2.0]"),
        ("clump_frac = [0.2, 0.1]", "clump_frac must be an ordered pair"),
        ('morphology = "spiral"', "morphology"),
        ("clumps_mean = -1", "clumps_mean"),
    ],
)
def test_a_bad_structure_setting_is_refused_naming_it(tmp_path: Path, table: str, message: str) -> None:
    structured = "" if "morphology" in table else "morphology = 'structured'\n"
    (tmp_path / "halo.toml").write_text(f"[grids.grid_small.source]\n{structured}{table}\n")
    with pytest.raises(ConfigError) as err:
        load(tmp_path)
    assert message in str(err.value) and "grid_small" in str(err.value)


@pytest.fixture(scope="module")
def structured_ws(inject_ws: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    root = tmp_path_factory.mktemp("structured")
    shutil.copytree(inject_ws / "survey", root / "survey")
    shutil.copytree(inject_ws / "data", root / "data", ignore=shutil.ignore_patterns("manifest", "stamps"))
    (root / "halo.toml").write_text("[grids.structured_dr10]\nn_total_per_split = 60\n")  # the shipped grid
    manifest.run(root, "v4_sota", grid="structured_dr10")
    return root


def test_the_manifest_records_each_component_and_inject_renders_them(structured_ws: Path) -> None:
    path = manifest.manifest_dir(structured_ws, "v4_sota", "structured_dr10") / "manifest.parquet"
    table = pq.read_table(path)
    for name in sources.STRUCTURE_COLUMNS:
        assert table.schema.field(name).type == pa.list_(pa.float64())
    rows = table.to_pylist()
    positives = [r for r in rows if not r["is_control"]]
    assert all(len(r["src_comp_reff"]) == r["src_clumps"] + 1 for r in positives)
    assert all(r["src_comp_reff"] == [] and r["src_clumps"] == 0 for r in rows if r["is_control"])
    chosen = positives[:12]
    settings = InjectSettings(cache=str(coadd_cache_dir(structured_ws)), arc_noise=False, arc_pixels="float")
    out = inject_batch(pa.Table.from_pylist(chosen, schema=table.schema), settings).to_pydict()
    assert all(out["ok"]), out["fail_reason"]
    assert out["src_clumps"] == [r["src_clumps"] for r in chosen]
    for i, row in enumerate(chosen):  # μ against the whole source's r flux
        arc = 10 ** (-0.4 * (out["arc_mag_r"][i] - 22.5))
        assert out["mu"][i] == pytest.approx(arc / 10 ** (-0.4 * (row["src_mag_r"] - 22.5)), rel=1e-9)
