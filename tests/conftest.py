"""Shared fixtures: a workspace with a tiny test stage, and `halo` run as a real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from jobs.runtime.allocator import keep_freed_memory

keep_freed_memory()  # as every stage process does: tests that train or inject in-process run as fast
# a pipe has no size: `halo` piped takes COLUMNS where a shell exports it, and pytest-xdist's
# workers export 80x24 (tests of piped output would read a terminal's wrapping)
for _size in ("COLUMNS", "LINES"):
    os.environ.pop(_size, None)
# pytest-xdist runs more test processes than a small machine has cores: a math library's
# threads in each (OpenMP's spin while they wait) would fight the other processes for them;
# one each, as a user sharing a login node would set (the stages keep a user's setting). Read
# when numpy and torch load: this module imports neither at its top.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_threads, "1")

STAGELIB = Path(__file__).parent / "stagelib"

SLEEPY_TOML = """
[stages.sleepy]
module = "sleepy"
description = "test stage: sleeps, then exits with --code"
pythonpath = ["stagelib"]
needs_variant = false

[stages.sleepy.params.seconds]
kind = "float"
[stages.sleepy.params.code]
kind = "int"
[stages.sleepy.params.stubborn]
kind = "bool"
[stages.sleepy.params.out]
kind = "path"
[stages.sleepy.params.error]
kind = "str"

[stages.ghost]
module = "ghost_stage_not_written_yet"
description = "test stage whose module does not exist"
pythonpath = ["stagelib"]
needs_variant = false

[backends.local]
cancel_grace_seconds = 1.0
"""

HALO = str(Path(sys.executable).with_name("halo"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: trains, runs Spark, DDP or the whole demo (pytest -m 'not slow' leaves them out)"
    )


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace folder whose halo.toml declares the `sleepy` test stage."""
    root = tmp_path / "ws"
    root.mkdir()
    shutil.copytree(STAGELIB, root / "stagelib")  # a workspace's own stages live inside it
    (root / "halo.toml").write_text(SLEEPY_TOML)
    for var in [v for v in os.environ if v.startswith("HALO_")]:
        monkeypatch.delenv(var)
    return root


@pytest.fixture
def engine(workspace: Path):
    from core.engine import Engine
    from core.workspace import Workspace

    eng = Engine(Workspace(workspace))
    yield eng
    from core.errors import UsageError

    for job in eng.store.live():  # leave no process behind
        try:
            eng.cancel(job.id)
        except UsageError:  # it ended meanwhile
            pass
    eng.store.close()


class Halo:
    """Runs the installed `halo` script in a workspace, as a user (or cron) would."""

    executable = HALO

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(
        self, *args: str, timeout: float = 60, check: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")}
        env["HALO_WORKSPACE"] = str(self.root)
        proc = subprocess.run(
            [HALO, *args], capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        if check is not None:
            assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
        return proc

    def json(self, *args: str, check: int = 0) -> object:
        return json.loads(self(*args, "--json", check=check).stdout)


@pytest.fixture
def halo(workspace: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    return Halo(workspace)


@pytest.fixture(scope="session")
def moto_server():
    """moto's server on 127.0.0.1 (S3, EMR), with dummy credentials in the environment."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    return moto_server


@pytest.fixture
def emr_cluster(s3_env: str) -> Callable[[Path], str]:
    """`add(root)`: a running cluster on moto's EMR, its buckets on moto's S3, and the
    workspace at `root` pointed at them (`[backends.emr]`); returns the cluster id."""
    return _add_emr_cluster


def _add_emr_cluster(root: Path) -> str:
    import boto3

    s3 = boto3.client("s3")
    for bucket in ("halo-data", "halo-logs"):
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    cluster = boto3.client("emr", region_name="us-east-1").run_job_flow(
        Name="halo-test",
        ReleaseLabel="emr-7.0.0",
        LogUri="s3://halo-logs/emr/",
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        Instances={
            "InstanceCount": 1,
            "KeepJobFlowAliveWhenNoSteps": True,
            "MasterInstanceType": "m5.xlarge",
        },
    )["JobFlowId"]
    toml = root / "halo.toml"
    toml.write_text(
        (toml.read_text() if toml.exists() else "")
        + f"""
[backends.emr]
cluster_id = "{cluster}"
s3_prefix = "s3://halo-data/ws"
log_uri = "s3://halo-logs/emr"
poll_seconds = 0.2
"""
    )
    return cluster


# -- mock surveys shared by the stage and fault tests (made once per session) ---------


def _small():  # a jobs.mock.survey.MockConfig, imported late: core tests do not need it
    from jobs.mock.survey import MockConfig

    return MockConfig(bricks=3, seed=7, brick_px=400)


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A workspace `build` makes, made once for the whole run and copied into this process's
    temporary folder: pytest-xdist's workers would each make it again (the mock survey and
    its stamps take seconds of CPU each), and each test process keeps a copy of its own to
    write in, as it had before. The workers take turns under a lock; the copy is renamed into
    place only once whole."""
    import fcntl

    root = factory.mktemp(name)
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        build(root)
        return root
    shared = factory.getbasetemp().parent / "built-once"  # this run's, shared by its workers
    shared.mkdir(exist_ok=True)
    made = shared / name
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not made.exists():
            staging = shared / f"{name}.staging"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            build(staging)
            staging.rename(made)
    shutil.copytree(made, root, dirs_exist_ok=True, symlinks=True)
    return root


@pytest.fixture(scope="session")
def mock_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with a 3-brick mock survey, images included."""

    def build(root: Path) -> None:
        from jobs.mock.survey import run

        run(_small(), root)

    return built_once(tmp_path_factory, "mock", build)


@pytest.fixture(scope="session")
def big_catalog_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Catalogues only, with well over 2,000 LRGs passing the cuts."""

    def build(root: Path) -> None:
        from jobs.mock.survey import MockConfig, run

        run(MockConfig(bricks=16, seed=3, images=False, lrgs_per_brick=200), root)
        (root / "halo.toml").write_text("[grids.grid_sota]\nn_total_per_split = 6000\n")

    return built_once(tmp_path_factory, "bigcat", build)


@pytest.fixture(scope="session")
def inject_ws(mock_ws: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with the 3-brick mock survey, a small v4_sota manifest and cached coadds."""

    def build(root: Path) -> None:
        from jobs.stages import coadds, manifest, select

        shutil.copytree(mock_ws / "survey", root / "survey")
        (root / "halo.toml").write_text("[grids.grid_sota]\nn_total_per_split = 120\n")
        select.run(root, "v4_sota")
        manifest.run(root, "v4_sota", grid="grid_sota")
        coadds.run(root, "v4_sota", grid="grid_sota")

    return built_once(tmp_path_factory, "inject", build)


@pytest.fixture
def rice():
    """Compress an image as fpack does (astropy's RICE_1) and read it back: the decoded pixels
    and the lattice jobs.survey.quantization reads from the compressed table."""
    import io

    import numpy as np
    from astropy.io import fits

    from jobs.survey.quantization import TileLattice

    def compress(data: np.ndarray, method: int, tile: tuple[int, int] | None = None, seed: int = 4321):
        buf = io.BytesIO()
        hdu = fits.CompImageHDU(
            data=data, compression_type="RICE_1", quantize_method=method, dither_seed=seed, tile_shape=tile
        )
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
        buf.seek(0)
        decoded = np.asarray(fits.open(buf)[1].data)
        buf.seek(0)
        table = fits.open(buf, disable_image_compression=True)[1]
        return decoded, TileLattice.from_table(table.header, table.data)

    return compress


TRAIN_TOML = """
[grids.grid_sota]
n_total_per_split = 240

[presets.test_cpu]
arch = "small_cnn"
lr = 3e-3
weight_decay = 1e-4
batch_size = 32
epochs = 3
precision = "fp32"
augment = true
num_workers = 0
shuffle_buffer = 64

[presets.test_gpu_on_cpu]        # a GPU's precision, asked for on this CPU
arch = "small_cnn"
lr = 3e-3
weight_decay = 1e-4
batch_size = 64
epochs = 1
precision = "fp16"
num_workers = 512                # more than any machine running the tests has CPUs
shuffle_buffer = 64
"""


@pytest.fixture(scope="session")
def stamps_ws(mock_ws: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with injected stamps (720 rows) and a tiny CPU training preset."""

    def build(root: Path) -> None:
        from jobs.stages import coadds, inject, manifest, select

        for folder in ("survey", "truth", "catalogs"):
            shutil.copytree(mock_ws / folder, root / folder)
        (root / "halo.toml").write_text(TRAIN_TOML)
        select.run(root, "v4_sota")
        manifest.run(root, "v4_sota", grid="grid_sota")
        coadds.run(root, "v4_sota", grid="grid_sota")
        inject.run(root, "v4_sota", grid="grid_sota", workers=2, rows_per_part=200)

    return built_once(tmp_path_factory, "stamps", build)


def _write_candidates(path: Path, n: int, stamps: list[bytes] | None = None, **extra: list) -> Path:
    """A candidates parquet as the score stage writes it, with `extra` columns (or others in
    place of its own: `brickname=[...]`); blind items beside it: `truth=[...]`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.stamps import arrow_metadata as stamp_metadata

    rng = np.random.default_rng(3)

    def noise(rng: np.random.Generator) -> bytes:
        return rng.normal(0, 0.05, (3, 64, 64)).astype(np.float32).tobytes()

    table = pa.table(
        {
            "rank": np.arange(1, n + 1),
            "brickname": ["1499p022"] * n,
            "objid": np.arange(n),
            "ra": np.linspace(150, 151, n),
            "dec": np.full(n, 2.0),
            "split": ["test"] * n,
            "psfsize_r": np.full(n, 1.2),
            "score": np.linspace(1, 0, n),
            "run": ["demo"] * n,
            "ok": [True] * n,
            "fail_reason": [None] * n,
            **extra,
            "stamp": stamps or [noise(rng) for _ in range(n)],
        }
    ).replace_schema_metadata(stamp_metadata((3, 64, 64)))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=8)
    return path


@pytest.fixture
def make_candidates() -> Callable[..., Path]:
    """`make(path, n, stamps=None, **columns)`: a candidates file of `n` ranked stamps."""
    return _write_candidates
