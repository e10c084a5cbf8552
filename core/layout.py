"""Where things live in a workspace (and in the shipped config), declared once.

The stages, the console and the tests ask here for a path instead of spelling it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "config"
# Published galaxy-scale lenses in the DR10 footprint (lenscat, MIT): see its header.
SHIPPED_KNOWN_LENSES = SHIPPED_CONFIG / "known_lenses" / "lenscat_dr10.csv"
WORKSPACE_FILE = "halo.toml"  # a workspace's own settings, over the shipped config
DEMO_DIR = "halo-demo"  # `halo demo`'s workspace, in the folder it is run from
PARENT_FILE = "parent.parquet"  # select's parent sample, in its parent_dir
MANIFEST_FILE = "manifest.parquet"  # manifest's tasks, in its manifest_dir
# score's outputs, in a run's candidates_dir: the top K with stamps (a catalogue's or a folder's
# are named for it), the controls that score highest, the blind items and what each one is
CANDIDATES_FILE = "candidates.parquet"
HARD_NEGATIVES_FILE = "hard_negatives.parquet"
BLINDS_FILE = "blinds.parquet"
BLINDS_TRUTH_FILE = "blinds.truth.parquet"
SCORES_SUFFIX = ".scores.parquet"  # the whole ranking, without stamps, beside each candidates file


def store_path(workspace: Path) -> Path:
    """The job store: its presence is what makes a folder a workspace."""
    return halo_dir(workspace) / "halo.db"


def data_dir(workspace: Path) -> Path:
    """Every stage's outputs: parent sample, manifest, stamps, runs, cutouts, candidates."""
    return workspace / "data"


def halo_dir(workspace: Path) -> Path:
    """The console's own files: the job store, the jobs' logs, scratch space."""
    return workspace / ".halo"


def logs_dir(workspace: Path) -> Path:
    return halo_dir(workspace) / "logs"


def job_file(workspace: Path, job_id: int, kind: str) -> Path:
    """A job's file: its `log`, `exit` code (the wrapper's) or `result.json` (the stage's)."""
    return logs_dir(workspace) / f"{job_id}.{kind}"


def coadd_scratch_dir(workspace: Path) -> Path:
    """Where `coadds` writes a brick's files before they enter the cache."""
    return halo_dir(workspace) / "coadd-scratch"


def survey_dir(workspace: Path) -> Path:
    """The embedded mock survey (DR10's own layout below: tractor/, coadd/)."""
    return workspace / "survey"


def survey_catalogs(workspace: Path) -> Path:
    """The survey's Tractor catalogues: `select`'s input unless it is given others."""
    return survey_dir(workspace) / "tractor"


def catalogs_dir(workspace: Path) -> Path:
    """A workspace's own position catalogues (CSV, parquet or FITS with ra, dec)."""
    return workspace / "catalogs"


def known_lenses_path(workspace: Path) -> Path:
    """The workspace's own known lenses, added to the shipped table (the mock survey writes its
    planted lenses here)."""
    return catalogs_dir(workspace) / "known_lenses.csv"


def lookalikes_path(workspace: Path) -> Path:
    """The workspace's lookalike catalogue (ra, dec, name, population): spirals, rings,
    mergers, edge-on disks, whose false-positive rate eval reports."""
    return catalogs_dir(workspace) / "lookalikes.csv"


def lookalikes_in_use(workspace: Path, given: str | None) -> str | None:
    """The lookalike catalogue a stage reads: the one given, else the workspace's if any."""
    if given:
        return given
    return str(lookalikes_path(workspace)) if lookalikes_path(workspace).exists() else None


def parent_dir(workspace: Path, parent_sample: str) -> Path:
    return data_dir(workspace) / "parent" / parent_sample


def manifest_dir(workspace: Path, variant: str, grid: str) -> Path:
    return data_dir(workspace) / "manifest" / variant / grid


def parent_file(workspace: Path, parent_sample: str) -> Path:
    """The parent sample select writes (a file; a folder of parts when Spark wrote it)."""
    return parent_dir(workspace, parent_sample) / PARENT_FILE


def manifest_file(workspace: Path, variant: str, grid: str) -> Path:
    """The injection tasks manifest writes for a variant's grid."""
    return manifest_dir(workspace, variant, grid) / MANIFEST_FILE


def stamps_dir(workspace: Path, variant: str, grid: str) -> Path:
    return data_dir(workspace) / "stamps" / variant / grid


def cutouts_dir(workspace: Path, name: str) -> Path:
    """Real galaxies' stamps (no injection): `name` is the parent sample's or `catalog-<stem>`."""
    return data_dir(workspace) / "cutouts" / name


def default_run_name(variant: str, grid: str, preset: str) -> str:
    """A training run's name when none is given."""
    return f"{variant}-{grid}-{preset}"


def grid_of(config: Any, variant: str, grid: str | None) -> str:
    """The grid a launch means: the one it names, else the variant's default."""
    return grid or config.variants[variant].default_grid


def run_name_of(config: Any, variant: str, params: dict[str, Any]) -> str:
    """The run a train, eval or score launch means: its `run`, else the default name from its
    grid and preset, or the variant's defaults where those are not given."""
    chosen = config.variants[variant]
    grid = grid_of(config, variant, params.get("grid"))
    return params.get("run") or default_run_name(variant, grid, params.get("preset") or chosen.default_preset)


def coadd_cache_dir(workspace: Path) -> Path:
    """Where `coadds` caches the bricks' image and invvar files (DR10's own layout below)."""
    return data_dir(workspace) / "coadd_cache"


def on_s3(prefix: str, local: Path) -> str:
    """A workspace path (made from `Path("")`) under an s3:// prefix: the same layout there."""
    return f"{prefix.rstrip('/')}/{local.as_posix()}"


def under(root: str | Path, path: str | Path) -> str:
    """`path` as a workspace names it (relative to the workspace, or absolute, or s3://) under
    `root`, a folder or an s3:// prefix: the one way a config's file names are placed."""
    text = str(path)
    if text.startswith("s3://") or Path(text).is_absolute():
        return text
    root = str(root)
    return on_s3(root, Path(text)) if root.startswith("s3://") else str(Path(root) / text)


def runs_dir(workspace: Path) -> Path:
    return data_dir(workspace) / "runs"


BEST_CHECKPOINT, LAST_CHECKPOINT = "best.pt", "checkpoint.pt"  # in a run's folder


def run_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a run is evaluated and scored with: its best epoch, else its last; None
    before it trained."""
    for name in (BEST_CHECKPOINT, LAST_CHECKPOINT):
        if (run_dir / name).exists():
            return run_dir / name
    return None


def eval_dir(workspace: Path, run: str) -> Path:
    return runs_dir(workspace) / run / "eval"


def eval_report(split: str, suffix: str = ".json") -> str:
    """The file name of eval's report on a split, in a run's eval_dir (.json; .md for people)."""
    return f"eval-{split}{suffix}"


def candidates_dir(workspace: Path, run: str) -> Path:
    return data_dir(workspace) / "candidates" / run


def candidates_file(workspace: Path, run: str) -> Path:
    """A run's candidates over its parent sample (score, the console, triage)."""
    return candidates_dir(workspace, run) / CANDIDATES_FILE


def scores_file(candidates: Path) -> Path:
    """The whole ranking (no stamps) score writes beside a candidates file."""
    return candidates.with_name(candidates.name.removesuffix(".parquet") + SCORES_SUFFIX)


def grades_csv(candidates: Path, run: str) -> Path:
    """Where triage (and the console's export) writes a run's grades by default."""
    return candidates.with_name(f"grades-{run}.csv")


# What a stage reads that an earlier stage writes: its name, the stage that writes it
INPUT_MAKERS = {"parent": "select", "manifest": "manifest", "stamps": "inject"}


def stage_input(workspace: Path, config: Any, name: str, variant: str, params: dict[str, Any]) -> Path:
    """Where a launch of `variant` with `params` finds the input `name` (see `INPUT_MAKERS`)."""
    chosen = config.variants[variant]
    grid = grid_of(config, variant, params.get("grid"))
    if name == "parent":
        return parent_file(workspace, chosen.parent_sample)
    if name == "manifest":
        return manifest_file(workspace, variant, grid)
    return stamps_dir(workspace, variant, grid)
