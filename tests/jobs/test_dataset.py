"""The streaming dataset: exactly once per epoch under DDP ranks x DataLoader workers."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from core.errors import UsageError
from core.stamps import write_stamps
from jobs.learn.dataset import StampStream, augment, robust_normalise
from jobs.lensing.injection import output_schema

# its module-scoped fixtures are built once: pytest-xdist runs the file on one worker
pytestmark = pytest.mark.xdist_group("test_dataset")


def _write_records(folder: Path, records: list[dict]) -> Path:
    """One stamps file of these rows (a column a row does not give is null)."""
    schema = output_schema(64)
    rows = {name: [r.get(name) for r in records] for name in schema.names}
    path = folder / "part-00000.parquet"
    write_stamps(pa.Table.from_pydict(rows, schema=schema), path, "zstd")
    return path


def _ids(data, workers: int = 0) -> list[int]:
    """The task ids of one pass over a stream, through a DataLoader as training reads it."""
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=workers)
    return [int(t) for *_, task in loader for t in task]


@pytest.fixture(scope="module")
def stamp_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[int]]:
    """Seven parquet files of synthetic stamps, row groups of uneven sizes (1,113 rows)."""
    root = tmp_path_factory.mktemp("stamps")
    rng = np.random.default_rng(0)
    schema = output_schema(64)
    files, ids, next_id = [], [], 0
    for f, n in enumerate([300, 17, 256, 1, 200, 83, 256]):
        rows = {name: [] for name in schema.names}
        for _ in range(n):
            for name, value in (
                ("task_id", next_id),
                ("split", "train"),
                ("brickname", "1499p022"),
                ("objid", 1),
                ("ra", 150.0),
                ("dec", 2.0),
                ("is_control", bool(next_id % 2)),
                ("config_id", 0),
                ("theta_e_arcsec", 1.0),
                ("src_dmag", 1.0),
                ("src_reff_arcsec", 0.1),
                ("src_e", 0.0),
                ("shear", 0.0),
                ("src_n", 1.0),
                ("src_mag_g", 22.4),
                ("src_mag_r", 22.2),
                ("src_mag_z", 22.0),
                ("src_clumps", 0),
                ("src_cat_ident", ""),
                ("supersample", 11),
                ("psfsize_r", 1.3),
                ("psfdepth_r", 2000.0),
                ("unit", "1499p022:1"),
                ("theta_over_psf", 0.8),
                ("mu", 2.0),
                ("arc_mag_r", 20.0),
                ("arc_snr", 10.0),
                ("ok", True),
                ("fail_reason", None),
                # every 14th row a known lens's own galaxy (a real positive, nothing added)
                ("known_tier", ("confirmed", "probable")[next_id // 14 % 2] if next_id % 14 == 0 else None),
            ):
                rows[name].append(value)
            rows["stamp"].append(rng.normal(0, 1, (3, 64, 64)).astype(np.float32).tobytes())
            ids.append(next_id)
            next_id += 1
        path = root / f"part-{f:05d}.parquet"
        write_stamps(pa.Table.from_pydict(rows, schema=schema), path, "zstd")
        files.append(str(path))
    return files, ids


def _read_epoch(files: list[str], world: int, workers: int, epoch: int = 0, buffer: int = 0) -> list[int]:
    seen: list[int] = []
    for rank in range(world):
        data = StampStream(
            files, split=None, rank=rank, world_size=world, shuffle_buffer=buffer, augment=True, batch_size=50
        )
        data.set_epoch(epoch)
        seen += _ids(data, workers)
    return seen


@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("workers", [0, 2, 3])
def test_every_row_is_read_exactly_once_per_epoch(stamp_files, world: int, workers: int) -> None:
    files, ids = stamp_files
    seen = _read_epoch(files, world, workers, buffer=64)
    assert len(seen) == len(ids) and sorted(seen) == ids


def test_epochs_are_shuffled_differently_and_each_complete(stamp_files) -> None:
    files, ids = stamp_files
    first, second = (
        _read_epoch(files, 2, 2, epoch=0, buffer=128),
        _read_epoch(files, 2, 2, epoch=1, buffer=128),
    )
    assert sorted(first) == sorted(second) == ids
    assert first != second


def test_the_leakage_guard_refuses_label_derived_metadata(stamp_files) -> None:
    files, _ = stamp_files
    for column in ("arc_snr", "theta_e_arcsec", "src_dmag", "is_control"):
        with pytest.raises(UsageError, match="would leak it"):
            StampStream(files, meta_cols=["psfsize_r", column])
    data = StampStream(files, split=None, meta_cols=["psfsize_r", "psfdepth_r"], batch_size=32)
    images, labels, meta, task = next(iter(data))
    assert images.shape == (32, 3, 64, 64) and labels.shape == task.shape == (32,)
    assert meta.shape == (32, 2) and float(meta[0, 0]) == pytest.approx(1.3)


def test_a_corrupt_file_is_reported_and_skipped(stamp_files, tmp_path: Path) -> None:
    files, ids = stamp_files
    bad = tmp_path / "part-99999.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    data = StampStream([*files, str(bad)], split=None)
    assert (
        data.skipped
        and data.skipped[0]["file"] == str(bad)
        and "not a readable parquet file" in data.skipped[0]["reason"]
    )
    assert sorted(_ids(data)) == ids


def test_normalisation_and_augmentation() -> None:
    rng = np.random.default_rng(1)
    stamp = rng.normal(5.0, 2.0, (3, 64, 64)).astype(np.float32)
    stamp[1, 10, 10] = 1e6
    out = robust_normalise(stamp[None])[0]
    assert out.max() == 10.0 and abs(np.median(out[0])) < 1e-5
    mad = np.median(np.abs(out[2] - np.median(out[2])))
    assert mad == pytest.approx(1 / 1.4826, rel=1e-3)
    turned = {augment(out[None], np.random.default_rng(s))[0].tobytes() for s in range(40)}
    assert len(turned) == 8  # 4 rotations x optional flip
    expected = [np.rot90(out[:, :, ::-1] if f else out, k, axes=(1, 2)) for f in (0, 1) for k in range(4)]
    assert turned == {np.ascontiguousarray(e).tobytes() for e in expected}


def test_numpy_and_torch_prepare_batches_alike() -> None:
    """The worker (numpy, CPU) and the GPU path (torch) normalise and augment a batch the
    same way from the same draws: one routine, two array libraries."""
    rng = np.random.default_rng(3)
    batch = rng.normal(2.0, 3.0, (40, 3, 64, 64)).astype(np.float32)
    a = robust_normalise(batch)
    b = robust_normalise(torch.from_numpy(batch)).numpy()
    assert np.allclose(a, b, atol=1e-5)
    c = augment(a, np.random.default_rng(9))
    d = augment(torch.from_numpy(a), np.random.default_rng(9)).numpy()
    assert np.array_equal(c, d) and not np.array_equal(c, a)


def test_the_sorted_median_is_numpys_median() -> None:
    from jobs.learn.dataset import _median

    rng = np.random.default_rng(2)
    for n in (4096, 4095, 2):
        values = rng.normal(0, 1, (5, 3, n)).astype(np.float32)
        assert np.allclose(_median(values), np.median(values, axis=-1))


def test_batches_are_whole_and_prepared_where_asked(stamp_files) -> None:
    files, ids = stamp_files
    raw = StampStream(files, split=None, batch_size=100, prepare_in_worker=False)
    sizes = [len(task) for *_, task in raw]
    assert sum(sizes) == len(ids) and all(n == 100 for n in sizes[:-1])
    images, *_ = next(iter(raw))
    prepared = StampStream(files, split=None, batch_size=100)
    normalised, *_ = next(iter(prepared))
    assert torch.allclose(robust_normalise(images), normalised, atol=1e-5)
    assert abs(float(images.std()) - 1.0) < 0.05  # raw: the synthetic stamps' own scale


def test_stamps_stream_from_s3(stamp_files, s3_env: str) -> None:
    import boto3

    files, ids = stamp_files
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="stamps")
    for path in files:
        s3.upload_file(path, "stamps", f"v4_sota/grid_sota/{Path(path).name}")
    data = StampStream("s3://stamps/v4_sota/grid_sota/", split=None, world_size=2, rank=0)
    other = StampStream("s3://stamps/v4_sota/grid_sota/", split=None, world_size=2, rank=1)
    seen = _ids(data) + _ids(other)
    assert sorted(seen) == ids


def test_min_theta_over_psf_drops_unresolved_positives_only(tmp_path: Path) -> None:
    ratios = [0.2, 0.6, 1.2, 0.0, 0.0]
    controls = [False, False, False, True, True]
    records = []
    for i, (ratio, ctrl) in enumerate(zip(ratios, controls, strict=True)):
        values = {
            "task_id": i,
            "split": "train",
            "brickname": "1499p022",
            "objid": i,
            "ra": 0.0,
            "dec": 0.0,
            "is_control": ctrl,
            "config_id": 0,
            "theta_e_arcsec": 0.0 if ctrl else ratio * 1.3,
            "src_dmag": 1.0,
            "src_reff_arcsec": 0.1,
            "src_e": 0.0,
            "shear": 0.0,
            "src_n": 1.0,
            "src_mag_g": 22.4,
            "src_mag_r": 22.2,
            "src_mag_z": 22.0,
            "supersample": 11,
            "psfsize_r": 1.3,
            "psfdepth_r": 1.0,
            "unit": f"1499p022:{i}",
            "theta_over_psf": ratio,
            "mu": 1.0,
            "arc_mag_r": 20.0,
            "arc_snr": 1.0,
            "ok": True,
            "fail_reason": None,
            "known_tier": None,
            "stamp": np.ones((3, 64, 64), np.float32).tobytes(),
        }
        records.append(values)
    path = _write_records(tmp_path, records)
    kept = sorted(_ids(StampStream([str(path)], min_theta_over_psf=0.5)))
    assert kept == [1, 2, 3, 4]


def test_focal_loss_is_bce_at_gamma_zero_and_down_weights_easy_examples() -> None:
    import torch.nn.functional as F

    from jobs.learn.training import focal_loss

    logits, targets = torch.tensor([4.0, -3.0, 0.2, -0.1]), torch.tensor([1.0, 0.0, 0.0, 1.0])
    assert torch.isclose(
        focal_loss(logits, targets, 0.0), F.binary_cross_entropy_with_logits(logits, targets)
    )
    easy = focal_loss(logits[:2], targets[:2], 2.0) / F.binary_cross_entropy_with_logits(
        logits[:2], targets[:2]
    )
    hard = focal_loss(logits[2:], targets[2:], 2.0) / F.binary_cross_entropy_with_logits(
        logits[2:], targets[2:]
    )
    assert easy < 0.01 < hard


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_get_equal_shares_of_few_uneven_row_groups(tmp_path: Path, world: int) -> None:
    """Two row groups (300 and 17 rows) for 2 or 3 ranks × 2 workers: every rank reads the same
    number of rows, ±1, and every row once (dealing whole row groups gave rank 0 all 300)."""
    from jobs.lensing.injection import output_schema

    schema = output_schema(64)
    rows = {name: [] for name in schema.names}
    stamp = np.zeros((3, 64, 64), np.float32).tobytes()
    for i in range(317):
        values = {name: None for name in schema.names}
        values.update(
            task_id=i, split="train", brickname="1499p022", objid=i, ra=0.0, dec=0.0, is_control=bool(i % 2),
            config_id=0, ok=True, stamp=stamp, theta_over_psf=1.0,
        )  # fmt: skip
        for name in schema.names:
            rows[name].append(values[name])
    path = tmp_path / "part-00000.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pydict(rows, schema=schema), path, row_group_size=300)
    counts, seen = [], []
    for rank in range(world):
        data = StampStream([str(path)], split="train", rank=rank, world_size=world, batch_size=16)
        got = _ids(data, workers=2)
        counts.append(len(got))
        seen += got
    assert sorted(seen) == list(range(317))
    assert max(counts) - min(counts) <= 1, counts


def test_a_variant_keeps_the_positives_it_chose_and_weighs_known_lenses_by_tier(stamp_files) -> None:
    """`[training] positives`: injections only drop the known lenses, known only drop the
    injections (controls stay); with `known_share` the known lenses carry that share of the
    positives' weight, confirmed above probable by their tier weights."""
    from core.config import Training
    from jobs.learn.dataset import row_weights

    files, ids = stamp_files
    ids = np.array(ids)
    known = ids % 14 == 0
    control = ids % 2 == 1
    for positives, expected in (
        ("all", ids),
        ("both", ids),
        ("injections", ids[~known]),
        ("known", ids[known | control]),
    ):
        assert sorted(_ids(StampStream(files, positives=positives))) == sorted(expected.tolist()), positives
    training = Training(positives="both", known_share=0.3)
    weigh = row_weights(files, "train", training)
    w = weigh(ids)
    injection = ~known & ~control
    assert np.allclose(w[control], 1.0)
    positives = injection.sum() + known.sum()
    assert w[known].sum() == pytest.approx(0.3 * positives)  # the known lenses' share
    assert w[injection].sum() == pytest.approx(0.7 * positives)
    tiers = np.where((ids // 14) % 2 == 0, "confirmed", "probable")
    assert w[known & (tiers == "confirmed")][0] / w[known & (tiers == "probable")][0] == pytest.approx(
        1.0 / 0.8
    )
    assert row_weights(files, "train", Training(positives="injections")) is None
    natural = row_weights(files, "train", Training(positives="both", known_share=None))(ids)
    assert np.allclose(natural[injection], 1.0) and set(np.round(natural[known], 6)) == {1.0, 0.8}


def test_the_asinh_stretch_keeps_bright_arcs_apart_where_the_clip_flattens_them() -> None:
    """Issue 23, part 8: the seed's ±10 MAD clip makes a bright arc and the lens's core one
    flat value; asinh keeps their order and shape (numpy and torch alike)."""
    rng = np.random.default_rng(0)
    stamps = rng.normal(0, 1, (2, 3, 64, 64)).astype(np.float32)
    stamps[:, :, 30, 30], stamps[:, :, 30, 40] = 50.0, 100.0  # two bright pixels, 50 and 100 σ
    clipped, stretched = robust_normalise(stamps, "clip"), robust_normalise(stamps, "asinh")
    assert clipped[0, 1, 30, 30] == clipped[0, 1, 30, 40] == 10.0
    assert stretched[0, 1, 30, 40] > stretched[0, 1, 30, 30] > 4.0
    z = robust_normalise(stamps, "clip")
    inside = np.abs(z) < 10
    assert np.allclose(np.arcsinh(z[inside]), stretched[inside], atol=1e-5)
    assert np.allclose(robust_normalise(torch.from_numpy(stamps), "asinh").numpy(), stretched, atol=1e-5)
    with pytest.raises(ValueError, match="stretch 'log'"):
        robust_normalise(stamps, "log")


def test_a_checkpoint_keeps_its_stretch_and_old_ones_read_as_the_seeds_clip(tmp_path: Path) -> None:
    from jobs.learn.models import build, load_run

    for stretch, saved in (("asinh", "asinh"), ("clip", None)):
        run = tmp_path / stretch
        run.mkdir()
        state = {"model": build("small_cnn", 0, stretch).state_dict(), "arch": "small_cnn", "meta_cols": []}
        if saved:
            state["stretch"] = saved
        torch.save(state, run / "best.pt")
        assert load_run(run)[0].stretch == stretch


def test_a_small_cnns_width_is_kept_in_its_checkpoint_and_only_small_cnn_has_one(tmp_path: Path) -> None:
    from core.config import Preset
    from jobs.learn.models import build, load_run

    run = tmp_path / "narrow"
    run.mkdir()
    model = build("small_cnn", 0, "asinh", 16)
    torch.save(
        {"model": model.state_dict(), "arch": "small_cnn", "meta_cols": [], "width": 16}, run / "best.pt"
    )
    loaded = load_run(run)[0]
    assert loaded.width == 16 and loaded.head.in_features == 64
    with pytest.raises(ValueError, match="width is small_cnn's"):
        Preset(arch="resnet18", lr=1e-3, weight_decay=0.0, batch_size=8, epochs=1, width=16)


def test_a_known_lens_stamp_is_never_a_simulated_blind(tmp_path: Path) -> None:
    """A known lens of a variant's own catalogue (not in the lens list blinds are given) is a
    real lens: blinds draw simulated lenses and non-lenses from the other rows only."""
    from jobs.learn.blinds import _eligible

    records = []
    for i in range(6):
        tier = "confirmed" if i < 2 else None
        values = {
            "task_id": i,
            "split": "test",
            "brickname": "1499p022",
            "objid": i,
            "ra": 150.0 + i / 100,
            "dec": 2.0,
            "is_control": i % 2 == 1 and tier is None,
            "ok": True,
            "known_tier": tier,
            "stamp": np.zeros((3, 64, 64), np.float32).tobytes(),
        }
        records.append(values)
    path = _write_records(tmp_path, records)
    nobody = {k: np.zeros(0, dtype=float if k in ("ra", "dec") else object) for k in ("name", "ra", "dec")}
    got = _eligible([path], [], nobody, 64)
    assert sorted(got["objid"].tolist()) == [2, 3, 4, 5]
