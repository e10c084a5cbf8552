"""Typed configuration: the shipped TOML under `config/`, a workspace's `halo.toml` on top,
and `HALO_*` environment overrides for the backends.

Every validation error names the file (or variable), the key path and what is wrong, e.g.
`grids/grid_sota.toml: theta_e_arcsec[2]: must be > 0`."""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    computed_field,
    field_validator,
    model_validator,
)

from core.backends import BACKENDS, DEFAULT_BACKEND
from core.candidates import BLIND_RATE, BLIND_RATE_RANGE
from core.errors import ConfigError, UsageError
from core.layout import SHIPPED_CONFIG, WORKSPACE_FILE
from core.leakage import check_meta_cols
from core.metrics import METRIC_NAMES
from core.names import check_module, check_name, check_path

SHIPPED = SHIPPED_CONFIG  # a test points it elsewhere
SECTIONS = ("variants", "grids", "presets")
ENV_PREFIX = "HALO_"


def _as_value_error(check: Any, *args: Any) -> Any:
    """Run a `core` check inside a pydantic validator, which reports ValueErrors."""
    try:
        return check(*args)
    except UsageError as err:
        raise ValueError(str(err)) from None


class _Model(BaseModel):
    # TOML and HALO_* variables can spell inf and nan: no setting may hold them
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# -- variants ----------------------------------------------------------------------------


class Cuts(_Model):
    """The parent-sample selection (seed Phase 3), magnitudes from nanomaggies."""

    exclude_types: list[Literal["PSF", "REX", "DEV", "EXP", "SER", "DUP"]] = ["PSF"]
    positive_flux: list[Literal["g", "r", "z", "w1"]] = ["r", "z", "w1"]
    z_mag_max: float = 20.4
    rz_min: float = 0.4
    zw1_min: float = 0.8


class SkyBrightness(_Model):
    """Typical DECam dark-sky brightness per band (mag/arcsec²; DECaLS, Dey et al. 2019):
    with a pixel's invvar it gives the coadd's effective gain for the arc's photon noise."""

    g: float = Field(22.04, gt=10, lt=30)
    r: float = Field(20.91, gt=10, lt=30)
    z: float = Field(18.46, gt=10, lt=30)


class PsfFiles(_Model):
    """A pixelised PSF per band for `psf_model = "pixel"`: FITS files, each a PSFEx model (a
    `PSF_DATA` table, as DR10's per-CCD calibration files carry) or an image HDU with its
    sampling in `PSF_SAMP`; paths relative to the workspace."""

    g: str | None = None
    r: str | None = None
    z: str | None = None


class Injection(_Model):
    # a Moffat per band from psfsize_<band> (DR10's PSFs have wings); "gaussian" is the seed's;
    # "pixel": the shape of a pixelised PSF per band (psf_files), stretched to psfsize_<band>
    psf_model: Literal["gaussian", "moffat", "pixel"] = "moffat"
    moffat_beta: float = Field(3.5, gt=1.0, le=10.0)
    psf_files: PsfFiles = PsfFiles()
    # the arc's own photon noise, from an effective gain (sky brightness x invvar); off: the seed's
    arc_noise: bool = True
    sky_mag_arcsec2: SkyBrightness = SkyBrightness()
    stamp_size: PositiveInt = 64
    codec: Literal["zstd", "gzip", "snappy"] = "zstd"
    # "lattice": arcs added on the coadd's quantisation lattice (positives share the controls'
    # pixel statistics); "float": the seed's float arcs, an ablation the shortcut audit fails
    arc_pixels: Literal["lattice", "float"] = "lattice"

    @model_validator(mode="after")
    def _files_for_pixel(self) -> Injection:
        missing = [b for b in "grz" if not getattr(self.psf_files, b)]
        if self.psf_model == "pixel" and missing:
            raise ValueError(
                f"psf_model = 'pixel' needs psf_files.{missing[0]} (a FITS file per band g, r, z)"
            )
        return self


class Audit(_Model):
    """The shortcut audit run after inject (jobs/learn/shortcut_audit.py)."""

    max_auroc: float = Field(0.60, gt=0.5, le=1.0)  # above it, inject fails its verification
    rows_per_split: PositiveInt = 20000  # stamps sampled per split (row groups drawn at random)


TIERS = ("confirmed", "probable", "candidate")


class Training(_Model):
    """What a variant learns from (`[training]` in its TOML): injections, the known lenses
    in the parent sample (real pixels, untouched), or both; each known lens weighted by the
    tier its catalogue grade maps to."""

    positives: Literal["injections", "known", "both"] = "both"
    # both: the known lenses' share of the positives' total weight per epoch (their tier
    # weights keep their proportions); None: every row weighs its tier's weight, injections 1
    known_share: float | None = Field(0.25, gt=0.0, lt=1.0)
    # catalogue grade (case-insensitive) -> tier; a grade in none of them is no positive
    tiers: dict[Literal["confirmed", "probable", "candidate"], list[str]] = {
        "confirmed": ["confirmed", "confident", "spectroscopic", "a", "grade a"],
        "probable": ["probable", "likely", "b", "grade b"],
        "candidate": ["candidate", "possible", "c", "grade c"],
    }
    tier_weights: dict[Literal["confirmed", "probable", "candidate"], NonNegativeFloat] = {
        "confirmed": 1.0,
        "probable": 0.8,
        "candidate": 0.5,
    }
    # more known-lens catalogues (ra, dec, name, grade, reference), workspace-relative or absolute
    catalogues: list[str] = []

    def tier_of(self, grade: str) -> str:
        """The tier a catalogue grade maps to, "" for none."""
        wanted = str(grade).strip().lower()
        return next(
            (tier for tier, grades in self.tiers.items() if wanted in {g.lower() for g in grades}), ""
        )


class Variant(_Model):
    description: str = ""
    parent_sample: str
    default_grid: str
    default_preset: str
    cuts: Cuts = Cuts()
    splits: dict[Literal["train", "val", "test"], NonNegativeFloat]
    injection: Injection = Injection()
    audit: Audit = Audit()
    training: Training = Training()

    @field_validator("splits")
    @classmethod
    def _splits_sum_to_one(cls, value: dict[str, float]) -> dict[str, float]:
        if not math.isclose(sum(value.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"fractions must add up to 1 (they add up to {sum(value.values()):g})")
        return value


# -- grids -------------------------------------------------------------------------------


class SourceModel(_Model):
    """How injected sources get their light (jobs/lensing/sources.py): "relative" to the lens
    (the seed's: r = lens r + src_dmag, one colour, n = 1) or drawn from a "population"; and
    their shape: one smooth Sérsic, or "structured" (a disc, a bulge, star-forming clumps)."""

    mode: Literal["relative", "population", "catalogue"] = "relative"
    # "catalogue": real galaxies as sources (jobs/lensing/catalogue.py), a GalSim RealGalaxyCatalog
    # file (the COSMOS 25.2 sample), relative to the workspace; each source's r is its F814W
    # magnitude + r_minus_f814w (blue galaxies at z ~ 1: r − i ≈ 0.25), kept within mag_r; its
    # g − r and r − z drawn as the population's
    catalogue: str | None = None
    r_minus_f814w: float = Field(0.25, ge=-2.0, le=2.0)
    g_r: float = Field(0.2, ge=-1.0, le=3.0)  # relative: every source's colour; population: the mean
    r_z: float = Field(0.2, ge=-1.0, le=3.0)
    g_r_sigma: float = Field(0.15, ge=0.0, le=1.0)  # population only
    r_z_sigma: float = Field(0.2, ge=0.0, le=1.0)
    mag_r: tuple[float, float] = (22.0, 25.5)  # population: unlensed r magnitude range
    count_slope: float = Field(0.3, ge=0.0, le=1.0)  # population: dN/dm ∝ 10^(slope m)
    sersic_n: tuple[float, float] = (0.5, 2.5)  # population: Sérsic index range
    # "sersic": one smooth component; "structured": a disc plus a bulge and star-forming
    # clumps, each with its own colour (jobs/lensing/sources.py)
    morphology: Literal["sersic", "structured"] = "sersic"
    # clumps per source ~ Poisson: most star-forming galaxies at z ~ 1-3 hold 1-5 UV-bright
    # clumps (Guo et al. 2015, ApJ 800, 39; Shibuya et al. 2016, ApJ 821, 72)
    clumps_mean: float = Field(2.5, ge=0.0, le=20.0)
    clumps_max: int = Field(8, ge=0, le=32)
    # a clump's R_eff (″, log-uniform): ~0.3-1 kpc at z ~ 1-2, unresolved to marginally resolved
    # in HST (Guo et al. 2015; lensed clumps: Livermore et al. 2015)
    clump_reff: tuple[float, float] = (0.04, 0.12)
    # each clump's share of the source's r light (log-uniform), all clumps together at most
    # clumps_share_max: a clump holds a few to ~20 % of the UV light (Guo et al. 2015)
    clump_frac: tuple[float, float] = (0.02, 0.15)
    clumps_share_max: float = Field(0.5, gt=0.0, le=0.95)
    clump_colour: tuple[float, float] = (-0.25, -0.2)  # (g − r, r − z) against the disc: bluer
    bulge_frac: tuple[float, float] = (0.0, 0.3)  # the bulge's r share (uniform)
    bulge_size: tuple[float, float] = (0.2, 0.5)  # its R_eff over the disc's
    bulge_n: tuple[float, float] = (1.5, 3.0)
    bulge_colour: tuple[float, float] = (0.4, 0.3)  # (g − r, r − z) against the disc: redder
    lopsided: float = Field(0.3, ge=0.0, le=2.0)  # bulge offset from the disc's centre, × R_eff

    @model_validator(mode="after")
    def _ranges(self) -> SourceModel:
        low, high = self.mag_r
        if not 15.0 <= low < high <= 30.0:
            raise ValueError(f"mag_r must be an increasing pair within [15, 30], not {list(self.mag_r)}")
        if not 0.3 <= self.sersic_n[0] <= self.sersic_n[1] <= 8.0:
            raise ValueError(f"sersic_n must be an ordered pair within [0.3, 8], not {list(self.sersic_n)}")
        for name, low, high in (
            ("clump_reff", 0.04, 2.0),
            ("clump_frac", 0.0, 0.95),
            ("bulge_frac", 0.0, 0.95),
            ("bulge_size", 0.01, 2.0),
            ("bulge_n", 0.3, 8.0),
        ):
            pair = getattr(self, name)
            if not low <= pair[0] <= pair[1] <= high:
                raise ValueError(f"{name} must be an ordered pair within [{low}, {high}], not {list(pair)}")
        if self.clump_frac[0] <= 0:
            raise ValueError(f"clump_frac must be > 0 (log-uniform), not {list(self.clump_frac)}")
        if self.mode == "catalogue" and not self.catalogue:
            raise ValueError("mode = 'catalogue' needs catalogue = 'path/to/real_galaxy_catalog_25.2.fits'")
        if self.mode == "catalogue" and self.morphology != "sersic":
            raise ValueError(
                "mode = 'catalogue' takes its sources' shapes from their images: leave morphology out"
            )
        return self


class Grid(_Model):
    """An injection grid: the product of its parameter lists (seed Phase 4a)."""

    description: str = ""
    source: SourceModel = SourceModel()
    theta_e_arcsec: list[PositiveFloat] = Field(min_length=1)
    # a grid axis in "relative" mode; a "population" draws the source's magnitude instead
    src_dmag: list[float] | None = Field(None, min_length=1)
    src_reff_arcsec: list[PositiveFloat] = Field(min_length=1)
    src_e: list[Annotated[float, Field(ge=0.0, lt=1.0)]] = Field(min_length=1)
    shear: list[Annotated[float, Field(ge=0.0, lt=0.5)]] = Field(min_length=1)
    n_total_per_split: PositiveInt
    control_frac: float = Field(ge=0.0, le=1.0)
    control_mode: Literal["unpaired", "paired"] = "unpaired"

    @model_validator(mode="after")
    def _dmag_fits_the_source_model(self) -> Grid:
        if self.source.mode != "relative" and self.src_dmag is not None:
            raise ValueError(f"src_dmag is drawn in source mode {self.source.mode!r}: leave it out")
        if self.source.mode == "relative" and self.src_dmag is None:
            raise ValueError("src_dmag is required in source mode 'relative' (the seed's grid)")
        if self.source.mode == "catalogue" and (len(self.src_reff_arcsec) > 1 or len(self.src_e) > 1):
            raise ValueError(
                "a catalogue's images give its sources' sizes and shapes: one src_reff_arcsec and src_e level"
            )
        return self

    @property
    def dmag_axis(self) -> list[float]:
        """src_dmag's grid levels; one placeholder level (0) where a population draws it."""
        return self.src_dmag if self.src_dmag is not None else [0.0]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def n_configs(self) -> int:
        axes = (self.theta_e_arcsec, self.dmag_axis, self.src_reff_arcsec, self.src_e, self.shear)
        return math.prod(len(v) for v in axes)


# -- training presets --------------------------------------------------------------------


class Preset(_Model):
    """Training hyperparameters (seed Phase 5)."""

    description: str = ""
    arch: Literal["resnet18", "convnext_tiny", "small_cnn"]
    optimizer: Literal["adamw"] = "adamw"
    lr: PositiveFloat
    weight_decay: NonNegativeFloat
    batch_size: PositiveInt
    epochs: PositiveInt
    loss: Literal["bce", "focal"] = "bce"
    focal_gamma: NonNegativeFloat = 2.0
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    augment: bool = True
    # the stamps' normalisation (jobs.learn.dataset.robust_normalise): asinh keeps bright arcs'
    # shapes; clip (±10 MAD, the seed's) flattens them and the lens's core
    stretch: Literal["asinh", "clip"] = "asinh"
    width: PositiveInt | None = None  # small_cnn's first channels (32 if unset); other archs: unset
    min_theta_over_psf: NonNegativeFloat = 0.0
    meta_cols: list[str] = []
    num_workers: int = Field(4, ge=0)
    max_train_rows: PositiveInt | None = None  # cap per epoch (the demo's); None: the whole split
    shuffle_buffer: int = Field(2048, ge=0)
    seed: int = 0

    @field_validator("meta_cols")
    @classmethod
    def _no_leakage(cls, value: list[str]) -> list[str]:
        return _as_value_error(check_meta_cols, value)

    @model_validator(mode="after")
    def _width_is_small_cnns(self) -> Preset:
        if self.width is not None and self.arch != "small_cnn":
            raise ValueError(f"width is small_cnn's; {self.arch} has its own")
        return self


# -- targets -----------------------------------------------------------------------------


class Target(_Model):
    op: Literal[">", ">=", "<", "<="]
    value: float

    def met(self, measured: float) -> bool:
        return {
            ">": measured > self.value,
            ">=": measured >= self.value,
            "<": measured < self.value,
            "<=": measured <= self.value,
        }[self.op]


# -- backends ----------------------------------------------------------------------------


class LocalSettings(_Model):
    """halo.toml [backends.local]: the settings of core/backends/local.py's LocalBackend."""

    cancel_grace_seconds: PositiveFloat = 10.0


class SparkSubmit(_Model):
    deploy_mode: Literal["cluster", "client"] = "cluster"
    driver_memory: str = Field("8g", pattern=r"^\d+[kmgt]?$")
    executor_memory: str = Field("18g", pattern=r"^\d+[kmgt]?$")
    executor_cores: PositiveInt = 4
    num_executors: PositiveInt = 50
    parquet_codec: Literal["zstd", "gzip", "snappy"] = "zstd"
    conf: dict[str, str] = {}

    @field_validator("conf")
    @classmethod
    def _conf_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not key.replace(".", "").replace("_", "").isalnum():
                raise ValueError(f"conf key {key!r} is not a Spark property name")
            if any(ord(ch) < 32 for ch in item):
                raise ValueError(f"conf value for {key!r} holds control characters")
        return value


class EmrSettings(_Model):
    """halo.toml [backends.emr]: the settings of core/backends/emr.py's EmrBackend."""

    region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    cluster_id: str = Field("", pattern=r"^(j-[A-Z0-9]{1,64})?$")
    s3_prefix: str = Field(
        "s3://darkhaloscope/halo", pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
    )
    log_uri: str = Field(
        "s3://darkhaloscope/emr-logs", pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
    )
    poll_seconds: PositiveFloat = 15.0
    spark: SparkSubmit = SparkSubmit()


class Backends(_Model):
    default: Literal[tuple(BACKENDS)] = DEFAULT_BACKEND  # type: ignore[valid-type] # the registry's names
    local: LocalSettings = LocalSettings()
    emr: EmrSettings = EmrSettings()


class Triage(_Model):
    """Visual grading in the console."""

    # the fraction of the triage stream that is blind items (simulated lenses and known
    # non-lenses that measure each inspector; 0: none, and the model's scores are shown)
    blind_rate: float = Field(BLIND_RATE, ge=BLIND_RATE_RANGE[0], le=BLIND_RATE_RANGE[1])


# -- workspace-declared stages -------------------------------------------------------------


class ParamDecl(_Model):
    kind: Literal["str", "int", "float", "bool", "path", "file", "folder", "grid", "preset", "choice"] = "str"
    default: str | int | float | bool | None = None
    choices: list[str] = []
    help: str = ""


class StageDecl(_Model):
    """A stage a workspace adds to the registry: a Python module run as `python -m`."""

    module: str
    description: str = ""
    needs_variant: bool = False
    pythonpath: list[str] = []
    params: dict[str, ParamDecl] = {}

    @field_validator("module")
    @classmethod
    def _module(cls, value: str) -> str:
        return _as_value_error(check_module, value)

    @field_validator("pythonpath")
    @classmethod
    def _inside_workspace(cls, value: list[str]) -> list[str]:
        for entry in value:
            parts = Path(entry).parts
            if not entry or Path(entry).is_absolute() or ".." in parts or entry.startswith("~"):
                raise ValueError(f"{entry!r}: a folder inside the workspace, relative to it (no '..')")
            _as_value_error(check_path, "pythonpath", entry)
        return value


# -- the whole ---------------------------------------------------------------------------


class HaloConfig(_Model):
    variants: dict[str, Variant]
    grids: dict[str, Grid]
    presets: dict[str, Preset]
    targets: dict[str, Target]
    backends: Backends
    stages: dict[str, StageDecl] = {}
    keys: dict[str, str] = {}  # console key bindings by id, e.g. {"jobs.cancel" = "ctrl+k"}
    triage: Triage = Triage()

    @field_validator("variants", "grids", "presets", "stages", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        for name in value if isinstance(value, Mapping) else ():
            _as_value_error(check_name, "name", name)
        return value

    @field_validator("targets")
    @classmethod
    def _known_metrics(cls, value: dict[str, Target]) -> dict[str, Target]:
        for name in value:
            if name not in METRIC_NAMES:
                raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")
        return value

    @model_validator(mode="after")
    def _references(self) -> HaloConfig:
        problems = []
        for name, variant in self.variants.items():
            for key, table in (
                ("parent_sample", self.variants),
                ("default_grid", self.grids),
                ("default_preset", self.presets),
            ):
                ref = getattr(variant, key)
                if ref not in table:
                    problems.append(f"variants.{name}.{key}: {ref!r} is not defined")
        if problems:
            raise ValueError("; ".join(problems))
        return self


# -- loading -----------------------------------------------------------------------------


class _Source:
    """Where each part of the raw config came from, to name it in errors."""

    def __init__(self) -> None:
        self.overlay: dict[str, Any] = {}
        self.overlay_file = WORKSPACE_FILE
        self.env: dict[tuple[str, ...], str] = {}
        self.shipped: set[tuple[str, str]] = set()

    def name(self, loc: tuple[str | int, ...]) -> tuple[str, tuple[str | int, ...]]:
        """The file (or variable) that set `loc`, and the key path inside it."""
        for prefix, var in self.env.items():
            if loc[: len(prefix)] == prefix:
                return var, ()
        section = loc[0] if loc else ""
        if _has_path(self.overlay, loc) or (section in SECTIONS and tuple(loc[:2]) not in self.shipped):
            return self.overlay_file, loc
        if section in SECTIONS and len(loc) > 1:
            return f"{section}/{loc[1]}.toml", loc[2:]
        if section in ("targets", "backends"):
            return f"{section}.toml", loc[1:]
        return self.overlay_file, loc


def load(workspace: Path | None = None, environ: Mapping[str, str] | None = None) -> HaloConfig:
    """Load the shipped config, the workspace's `halo.toml` and `HALO_*` overrides."""
    environ = os.environ if environ is None else environ
    source = _Source()
    raw: dict[str, Any] = {section: {} for section in SECTIONS}
    for section in SECTIONS:
        for path in sorted((SHIPPED / section).glob("*.toml")):
            raw[section][path.stem] = _read_toml(path, f"{section}/{path.name}")
            source.shipped.add((section, path.stem))
    raw["targets"] = _read_toml(SHIPPED / "targets.toml", "targets.toml")
    raw["backends"] = _read_toml(SHIPPED / "backends.toml", "backends.toml")

    if workspace is not None and (workspace / WORKSPACE_FILE).exists():
        source.overlay_file = str(workspace / WORKSPACE_FILE)
        source.overlay = _read_toml(workspace / WORKSPACE_FILE, source.overlay_file)
        raw = _merge(raw, source.overlay)
    raw = _apply_env(raw, environ, source)

    try:
        return HaloConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError("\n".join(_describe(e, source) for e in err.errors())) from None


def _read_toml(path: Path, label: str) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{label}: not valid TOML: {err}") from None
    except RecursionError:  # arrays or tables nested thousands deep
        raise ConfigError(f"{label}: not valid TOML here: nested too deeply") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{label}: not UTF-8 text (byte {err.start}): TOML files are UTF-8") from None
    except OSError as err:
        raise ConfigError(f"{label}: cannot be read: {err.strerror}") from None


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `over` onto `base`: tables merge, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str], source: _Source) -> dict[str, Any]:
    """`HALO_BACKEND` and `HALO_<BACKEND>_<KEY>` (`HALO_EMR_SPARK_<KEY>`) override backends."""
    backends = _merge(raw.get("backends", {}), {})
    if ENV_PREFIX + "BACKEND" in environ:
        backends["default"] = environ[ENV_PREFIX + "BACKEND"]
        source.env[("backends", "default")] = ENV_PREFIX + "BACKEND"
    for name in BACKENDS:
        prefix = f"{ENV_PREFIX}{name.upper()}_"
        has_spark = "spark" in getattr(Backends.model_fields[name].annotation, "model_fields", {})
        for var in sorted(v for v in environ if v.startswith(prefix)):
            key = var[len(prefix) :].lower()
            table = backends.setdefault(name, {})
            if key.startswith("spark_") and has_spark:
                table = table.setdefault("spark", {}) if isinstance(table, dict) else table
                key = key.removeprefix("spark_")
                loc: tuple[str, ...] = ("backends", name, "spark", key)
            else:
                loc = ("backends", name, key)
            table[key] = environ[var]
            source.env[loc] = var
    return {**raw, "backends": backends}


def _has_path(tree: Any, loc: tuple[str | int, ...]) -> bool:
    for part in loc:
        if isinstance(tree, Mapping) and part in tree:
            tree = tree[part]
        elif isinstance(tree, list) and isinstance(part, int) and part < len(tree):
            tree = tree[part]
        else:
            return False
    return bool(loc)


_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "missing": "is required but missing",
    "extra_forbidden": "is not a known key",
    "literal_error": "must be one of {expected}",
    "too_short": "must have at least {min_length} item(s)",
    "string_pattern_mismatch": "does not have the expected form ({pattern})",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
}


def _describe(error: Mapping[str, Any], source: _Source) -> str:
    loc = tuple(error["loc"])
    # pydantic adds the function name of an after-validator to loc for some types
    loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
    key_error = bool(loc) and loc[-1] == "[key]"  # pydantic marks a dict's bad key so
    loc = loc[:-1] if key_error else loc
    where, inner = source.name(loc)
    template = _MESSAGES.get(error["type"])
    if template is not None:
        ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in error.get("ctx", {}).items()}
        message = template.format(**ctx)
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
    if key_error:
        message = f"not a key here: {message}"
    path = _format_loc(inner)
    return f"{where}: {path}: {message}" if path else f"{where}: {message}"


def _format_loc(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def spark_config(config: HaloConfig, variant: str, grid: str | None = None) -> dict[str, Any]:
    """What a Spark step needs of the config: the variant and its parent sample's variant, and
    the grid's `[source]` (a catalogue's file) where it names one, as JSON-ready data
    (`variants_from_json` and `sources_from_json` read it back on the cluster)."""
    names = dict.fromkeys((variant, config.variants[variant].parent_sample))
    out: dict[str, Any] = {"variants": {n: config.variants[n].model_dump(mode="json") for n in names}}
    if grid in config.grids:
        out["sources"] = {grid: config.grids[grid].source.model_dump(mode="json")}
    return out


def variants_from_json(data: dict[str, Any]) -> dict[str, Variant]:
    return {name: Variant.model_validate(value) for name, value in data["variants"].items()}


def sources_from_json(data: dict[str, Any]) -> dict[str, SourceModel]:
    """Grid name -> its `[source]`, as `spark_config` wrote them (none for older steps)."""
    return {name: SourceModel.model_validate(value) for name, value in data.get("sources", {}).items()}


def describe(config: HaloConfig) -> dict[str, Any]:
    """The config as plain data, for `halo config show`."""
    return config.model_dump(mode="json")
