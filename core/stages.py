"""The stage registry: the pipeline's stage names mapped to the argv that runs them.

A stage is a module under `jobs/stages/` run as `python -m jobs.stages.<stage>`; its command
line and the keyword arguments of its `run(workspace, [variant,] **options)` are made from the
declaration here (jobs/runtime/stage.py `entry`). A stage whose module is not
built yet is listed as unavailable, and launching it is refused: nothing is ever faked."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.errors import UsageError
from core.names import check_name, check_path, check_value


def bound_text(value: float) -> str:
    """A range's end as people read it: 9223372036854775807, not 9.22337e+18."""
    return str(int(value)) if float(value).is_integer() and abs(value) != float("inf") else f"{value:g}"


@dataclass(frozen=True)
class Param:
    """One option of a stage: `--<name> VALUE`, or `--<name>` alone for a bool. Numbers
    carry their range (`low` ≤ value ≤ `high`), checked before a launch and again by the
    stage itself (jobs/runtime/stage.py): a bad value is exit 2, never a run."""

    name: str
    kind: str = "str"
    default: Any = None
    choices: tuple[str, ...] = ()
    help: str = ""
    low: float | None = None
    high: float | None = None
    required: bool = False
    step: int | None = None  # an int that must be a multiple of it
    cli_only: bool = False  # taken by the stage's command line itself, not passed to its run()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, raw: Any) -> Any:
        """Check and convert a value given on the command line (or as JSON)."""
        where = f"option {self.flag}"
        if self.kind == "bool":
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("true", "1", "yes"):
                return True
            if str(raw).lower() in ("false", "0", "no"):
                return False
            raise UsageError(f"{where}: {raw!r} is not true or false")
        if self.kind in ("int", "float"):
            try:
                if isinstance(raw, bool) or (self.kind == "int" and isinstance(raw, float)):
                    raise ValueError
                value = int(raw) if self.kind == "int" else float(raw)
            except (TypeError, ValueError):
                raise UsageError(
                    f"{where}: {raw!r} is not {'an integer' if self.kind == 'int' else 'a number'}"
                ) from None
            if value != value or value in (float("inf"), float("-inf")):
                raise UsageError(f"{where}: {raw!r} is not a finite number")
            low = -float("inf") if self.low is None else self.low
            high = float("inf") if self.high is None else self.high
            if not low <= value <= high:
                raise UsageError(f"{where}: {value} is out of range [{bound_text(low)}, {bound_text(high)}]")
            if self.step and value % self.step:
                raise UsageError(f"{where}: {value} is not a multiple of {self.step}")
            return value
        raw = str(raw)
        if self.kind == "name":
            return check_name(self.name.replace("_", " "), raw)
        if self.kind == "choice" and raw not in self.choices:
            raise UsageError(f"{where}: {raw!r} is not one of {', '.join(self.choices)}")
        if self.kind in ("grid", "preset"):
            return check_name(self.kind, raw)
        if self.kind in ("path", "file", "folder"):  # a file or folder must exist too (core.engine)
            return check_path(where, raw)
        return check_value(where, raw)

    def argv(self, value: Any) -> list[str]:
        if self.kind == "bool":
            return [self.flag] if value else []
        return [self.flag, str(value)]

    def add_to(self, parser: Any) -> None:
        """This option on a stage's own command line (an argparse parser): the same name,
        type, range, choices, default and help as everywhere else."""
        if self.kind == "bool":
            parser.add_argument(self.flag, action="store_true", help=self.help)
            return
        shown = self.help
        if self.default is not None and "[default" not in shown:
            shown += f" [default: {self.default}]"
        kwargs: dict[str, Any] = {"help": shown, "default": self.default, "required": self.required}
        if self.kind == "choice":
            kwargs["choices"] = self.choices
        elif self.kind in ("int", "float"):
            kwargs["type"] = self._checked
            kwargs["metavar"] = self.kind.upper()
        parser.add_argument(self.flag, **kwargs)

    def _checked(self, raw: str) -> Any:
        import argparse

        try:
            return self.parse(raw)
        except UsageError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix(f"option {self.flag}: ")) from None


@dataclass(frozen=True)
class Stage:
    name: str
    module: str
    description: str
    seed_name: str = ""
    needs_variant: bool = True
    takes_variant: bool = True  # False: its module has no --variant, so one given is refused
    params: tuple[Param, ...] = ()
    pythonpath: tuple[str, ...] = field(default=())
    spark: bool = False  # has `spark_run(SparkJob)`: runs as a Spark step (jobs/runtime/spark.py)
    trained_run: bool = False  # works on a trained run (--run): refused before launch without one
    # what it reads that an earlier stage writes (core.layout.INPUT_MAKERS), each with the option
    # that replaces it (or None): a local launch without it is refused before it starts
    needs: tuple[tuple[str, str | tuple[str, ...] | None], ...] = ()
    exclusive: tuple[tuple[str, ...], ...] = ()  # options of which one at most may be given
    requires: tuple[tuple[str, str], ...] = ()  # (option, the option it cannot go without)
    # "core.<module>:<function>(workspace, params)": what else must hold before a launch (it
    # raises UsageError naming what is missing), for a stage whose inputs are not files alone
    precheck: str = ""

    def param(self, name: str) -> Param:
        for param in self.params:
            if param.name == name.replace("-", "_"):
                return param
        known = ", ".join(p.flag for p in self.params) or "none"
        raise UsageError(f"stage {self.name!r} has no option --{name}; its options: {known}")

    def available(self, workspace: Path | None = None) -> bool:
        """Whether the stage's module exists (in the workspace's pythonpath if it has one)."""
        if self.pythonpath:
            roots = [(workspace or Path.cwd()) / p for p in self.pythonpath]
            rel = Path(*self.module.split("."))
            return any(
                (r / rel).with_suffix(".py").is_file() or (r / rel / "__init__.py").is_file() for r in roots
            )
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False

    def argv(self, workspace: Path, variant: str | None, params: dict[str, Any]) -> list[str]:
        """The command that runs this stage. `-P` keeps the workspace off sys.path."""
        argv = [sys.executable, "-P", "-m", self.module, "--workspace", str(workspace)]
        if variant is not None:
            argv += ["--variant", variant]
        for param in self.params:
            if param.name in params:
                argv += param.argv(params[param.name])
        return argv


def _runner(help: str) -> Param:
    """`--runner`: the stage's partitions here, or on Spark (local mode, or the cluster's)."""
    return Param("runner", "choice", "local", ("local", "spark"), help)


CACHE_HELP = "coadd cache folder or s3:// prefix [default: data/coadd_cache]"


def _partitioned(rows: str) -> tuple[Param, ...]:
    """The options of a stage run by jobs/runtime/partitions.py over the coadds (inject, cutouts):
    where its partitions run, the coadd cache, local processes, `rows` per partition."""
    return (
        _runner("where partitions run"),
        Param("cache", "path", help=CACHE_HELP),
        Param("workers", "int", help="local runner processes [default: up to 2]", low=1, high=256),
        Param("rows_per_part", "int", 2000, help=f"{rows} per partition", low=1, high=10**7),
    )


RUN_HELP = "run name [default: <variant>-<grid>-<default preset>]"
_FORCE = Param("force", "bool", False, help="redo the work even if the outputs exist")
# eval measures the finder's false positives on it; score draws known non-lens blinds from it
_LOOKALIKES = Param(
    "lookalikes",
    "file",
    help="lookalike catalogue (ra, dec, population): known non-lenses"
    " [default: catalogs/lookalikes.csv, if any]",
)
MIRROR = Param("mirror", "path", help="also copy the outputs under this s3:// prefix", cli_only=True)

SHIPPED: tuple[Stage, ...] = (
    Stage(
        "demo",
        "jobs.stages.demo",
        "write the embedded mini-DR10 survey into the workspace",
        "mock survey",
        needs_variant=False,
        takes_variant=False,
        params=(
            Param("bricks", "int", 16, help="number of bricks", low=1, high=10000),
            Param("seed", "int", 1, help="random seed", low=0, high=2**63 - 1),
            Param("brick_px", "int", 600, help="brick size in pixels (DR10: 3600)", low=64, high=3600),
            Param("no_images", "bool", False, help="catalogues only (fast; for select/manifest)"),
            Param("lrgs_per_brick", "int", 30, help="LRGs drawn per brick", low=1, high=10000),
            _FORCE,
        ),
    ),
    Stage(
        "select",
        "jobs.stages.select",
        "Tractor catalogue -> LRG parent sample with region splits",
        "Phase 3",
        params=(
            Param(
                "catalogs",
                "path",
                help="catalogue file, folder, glob or s3:// prefix [default: the mock survey]",
            ),
            _runner("where the catalogues are read"),
            _FORCE,
        ),
        spark=True,
    ),
    Stage(
        "manifest",
        "jobs.stages.manifest",
        "grid x galaxies -> injection tasks, hash-assigned controls",
        "Phase 4a",
        needs=(("parent", None),),
        params=(Param("grid", "grid", help="injection grid [default: the variant's]"), _FORCE),
    ),
    Stage(
        "coadds",
        "jobs.stages.coadds",
        "fetch and cache the grz coadds of the needed bricks",
        "Phase 4b",
        needs=(("manifest", None),),
        params=(
            Param("grid", "grid", help="the manifest's grid [default: the variant's]"),
            Param("source", "path", help="URL template of the coadd tree [default: the mock survey]"),
            Param("cache", "path", help=CACHE_HELP),
            Param("workers", "int", 8, help="concurrent bricks", low=1, high=256),
            _FORCE,
        ),
    ),
    Stage(
        "inject",
        "jobs.stages.inject",
        "64x64 grz cutouts + injected arcs -> stamps parquet",
        "Phase 4c",
        needs=(("manifest", None),),
        params=(
            Param("grid", "grid", help="the manifest's grid [default: the variant's]"),
            Param(
                "supersample",
                "int",
                help="sub-pixels per pixel side, a multiple of 3 [default: per task, from the source size]",
                low=3,
                high=33,
                step=3,  # jobs/lensing/params.py's CONVOLUTION_FACTOR: the PSF's sub-pixel scale
            ),
            Param("engine", "choice", "lenstronomy", ("lenstronomy", "batched"), "arc renderer"),
            Param("device", "choice", "cpu", ("cpu", "cuda"), "the batched engine's device"),
            *_partitioned("manifest rows"),
            _FORCE,
        ),
        spark=True,
    ),
    Stage(
        "train",
        "jobs.stages.train",
        "stamps -> ResNet18-64 / ConvNeXt-Tiny checkpoints and metrics",
        "Phase 5",
        needs=(("stamps", None),),
        params=(
            Param("grid", "grid", help="the stamps' grid [default: the variant's]"),
            Param("preset", "preset", help="training preset [default: the variant's]"),
            Param("run", "name", help="run name [default: <variant>-<grid>-<preset>]"),
            Param("epochs", "int", help="override the preset's epochs", low=1, high=100000),
            Param(
                "nproc",
                "int",
                1,
                help="DDP processes (torchrun); one per GPU",
                low=1,
                high=1024,
                cli_only=True,
            ),
            Param("resume", "bool", False, help="continue from the last checkpoint"),
            _FORCE,
        ),
    ),
    Stage(
        "eval",
        "jobs.stages.eval",
        "operating points, completeness maps, real-galaxy and lookalike FPR, known lenses",
        "Phase 6",
        trained_run=True,
        needs=(("stamps", None), ("parent", None)),
        params=(
            Param("grid", "grid", help="the stamps' grid [default: the variant's]"),
            Param("run", "name", help=RUN_HELP),
            Param("split", "choice", "test", ("train", "val", "test"), "held-out split"),
            _LOOKALIKES,
            Param("prevalence", "float", 1e-4, help="lenses per galaxy, for the purity", low=1e-12, high=0.5),
            Param(
                "real_galaxies",
                "int",
                20000,
                help="parent galaxies never trained on to score",
                low=1,
                high=10**9,
            ),
            Param("cache", "path", help=CACHE_HELP),
            Param(
                "cutouts",
                "folder",
                help="also judge the FITS cutouts in this folder (the Legacy Survey viewer's files)",
            ),
            Param("labels", "file", help="which --cutouts files are lenses: name, label[, grade] (CSV)"),
            _FORCE,
        ),
        requires=(("cutouts", "labels"), ("labels", "cutouts")),
    ),
    Stage(
        "cutouts",
        "jobs.stages.cutouts",
        "real galaxies cut out of the coadds -> stamps parquet (what score streams)",
        "inference",
        needs=(("parent", "catalog"),),
        params=(
            Param("catalog", "file", help="cut these positions (ra, dec[, name, population]) instead"),
            *_partitioned("positions"),
            _FORCE,
        ),
        spark=True,
    ),
    Stage(
        "score",
        "jobs.stages.score",
        "a model over the parent sample (or --catalog, --cutouts) -> its ranking and candidates",
        "inference",
        trained_run=True,
        needs=(("parent", ("catalog", "cutouts")), ("stamps", ("catalog", "cutouts"))),
        exclusive=(("catalog", "cutouts"),),
        params=(
            Param("grid", "grid", help="the run's grid [default: the variant's]"),
            Param("run", "name", help=RUN_HELP),
            Param(
                "hard_negatives", "int", 100, help="how many top-scoring controls to list", low=0, high=10**7
            ),
            Param(
                "blinds",
                "int",
                200,
                help="blind items for calibrating inspectors (half simulated lenses, half known non-lenses)",
                low=0,
                high=10**6,
            ),
            Param("cache", "path", help=CACHE_HELP),
            Param("catalog", "file", help="score these positions (ra, dec[, name, population]) instead"),
            _LOOKALIKES,
            Param(
                "cutouts",
                "folder",
                help="score the FITS cutouts in this folder instead (the Legacy Survey viewer's files)",
            ),
            Param(
                "keep_stamps",
                "int",
                1000,
                help="stamps kept for the top K (and every known lens)",
                low=0,
                high=10**8,
            ),
            Param(
                "device", "choice", None, ("cpu", "cuda"), "where the model runs [default: cuda if present]"
            ),
            Param(
                "loader_workers",
                "int",
                help="DataLoader workers [default: 4 on cuda, 0 on cpu]",
                low=0,
                high=64,
            ),
            _FORCE,
        ),
    ),
    Stage(
        "retrain",
        "jobs.stages.retrain",
        "one round: a run's grades -> a child run trained on them, compared with its parent, re-scored",
        "visual grading",
        needs_variant=False,
        takes_variant=False,
        precheck="core.rounds:check_retrain",
        params=(
            Param("from_run", "name", help="the parent: the run whose candidates were graded", required=True),
            Param("run", "name", help="the child run's name", required=True),
            Param(
                "init",
                "choice",
                "parent",
                ("parent", "scratch"),
                "start from the parent's weights, or from scratch",
            ),
            Param("preset", "preset", help="training preset [default: the parent's]"),
            Param("epochs", "int", help="override the preset's epochs", low=1, high=100000),
            _FORCE,
        ),
    ),
    Stage(
        "triage",
        "jobs.stages.triage",
        "export grades per inspector, consensus and disagreements (grading is in the console)",
        "visual grading",
        needs_variant=False,
        takes_variant=False,
        params=(
            Param("run", "name", help="the run whose candidates were graded", required=True),
            Param("out", "path", help="CSV file [default: data/candidates/<run>/grades-<run>.csv]"),
        ),
    ),
)


def registry(declared: dict[str, Any] | None = None) -> dict[str, Stage]:
    """The shipped stages plus those a workspace declares in `halo.toml` ([stages.NAME]).
    Every shipped stage takes --mirror (see jobs/runtime/stage.py)."""
    stages = {stage.name: replace(stage, params=(*stage.params, MIRROR)) for stage in SHIPPED}
    for name, decl in (declared or {}).items():
        if name in stages:
            raise UsageError(f"halo.toml: stages.{name}: a shipped stage cannot be redefined")
        stages[name] = Stage(
            name=name,
            module=decl.module,
            description=decl.description,
            seed_name="workspace",
            needs_variant=decl.needs_variant,
            pythonpath=tuple(decl.pythonpath),
            params=tuple(
                Param(pname, p.kind, p.default, tuple(p.choices), p.help) for pname, p in decl.params.items()
            ),
        )
    return stages
