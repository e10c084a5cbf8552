"""The streaming dataset over stamps parquet (local or `s3://`).

Fragments are the files' row groups. Each epoch they are shuffled with the epoch's seed and
their usable rows dealt out by DDP rank × DataLoader worker in equal runs, so every row is
read exactly once per epoch — the seed's loader sharded by rank only, and its 8 workers read
everything 8 times. A worker decodes whole row groups (no Python object per stamp), mixes
them in a shuffle pool and yields whole batches. The seed's per-channel robust normalisation
(median / 1.4826·MAD, clipped to ±10) and the flip + rot90 augmentation work on whole
batches, numpy or torch alike: in the worker (on the CPU), or — with `prepare_in_worker`
off — where the consumer calls `prepare`, on the GPU when training there.
`min_theta_over_psf` drops unresolved positives; `positives` keeps the injections, the known
lenses (real positives: a stamp whose `known_tier` is set), or both; metadata columns are
allowed only when they are observing conditions (core.leakage). A corrupt file is reported
and skipped; the rest of the epoch goes on."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch.utils.data

from core import storage
from core.leakage import check_meta_cols
from core.stamps import stamp_meta
from core.storage import parquet_file

COLUMNS = ("task_id", "stamp", "is_control", "ok", "split", "theta_over_psf")
FILTER_COLUMNS = ("is_control", "ok", "split", "theta_over_psf")
KNOWN = "known_tier"  # read where a file has it (stamps made before known lenses lack it)
POSITIVES = ("all", "both", "injections", "known")  # which positives a stream keeps
MAD_SCALE = 1.4826
CLIP = 10.0


def _median(values: Any) -> Any:
    """The median over the last axis (the mean of the two middle values for an even count,
    as np.median), by sorting: numpy's vectorised float32 sort is about 3x faster than the
    partition np.median uses on stamp-sized rows; torch's sort is the GPU's."""
    ordered = np.sort(values, axis=-1) if isinstance(values, np.ndarray) else values.sort(dim=-1).values
    n = ordered.shape[-1]
    upper = ordered[..., n // 2]
    return upper if n % 2 else 0.5 * (ordered[..., n // 2 - 1] + upper)


STRETCHES = ("asinh", "clip")


def robust_normalise(stamps: Any, stretch: str = "clip") -> Any:
    """Per stamp and channel: z = (x − median) / (1.4826 · MAD + ε), then `clip`: z clipped to
    ±10 (the seed's: a bright arc or core saturates), or `asinh`: asinh(z), which keeps their
    shape on a log scale. A numpy array or a torch tensor (on any device) of shape
    (..., C, H, W), in float32."""
    numpy = isinstance(stamps, np.ndarray)
    flat = stamps.reshape(*stamps.shape[:-2], -1)
    flat = flat.astype(np.float32, copy=False) if numpy else flat.float()
    median = _median(flat)[..., None]
    deviation = flat - median
    mad = _median(abs(deviation))[..., None]
    out = deviation / (MAD_SCALE * mad + 1e-8)
    if stretch == "asinh":
        out = np.arcsinh(out) if numpy else torch.asinh(out)
    elif stretch == "clip":
        out = np.clip(out, -CLIP, CLIP) if numpy else out.clamp(-CLIP, CLIP)
    else:
        raise ValueError(f"stretch {stretch!r}: one of {', '.join(STRETCHES)}")
    return out.reshape(stamps.shape)


def augment(images: Any, rng: np.random.Generator) -> Any:
    """Each image of a batch (numpy or torch, (N, C, H, W)) given a random flip and a random
    quarter-turn (a lens's arcs have no preferred direction); the draws come from `rng`."""
    n = len(images)
    flips, turns = rng.random(n) < 0.5, rng.integers(4, size=n)
    numpy = isinstance(images, np.ndarray)
    out = images.copy() if numpy else images.clone()
    for flip in (False, True):
        for k in range(4):
            rows = np.flatnonzero((flips == flip) & (turns == k))
            if rows.size == 0 or (not flip and k == 0):
                continue
            if numpy:
                part = images[rows][..., ::-1] if flip else images[rows]
                out[rows] = np.rot90(part, k, axes=(-2, -1))
            else:
                import torch

                index = torch.from_numpy(rows).to(images.device)
                part = images[index].flip(-1) if flip else images[index]
                out[index] = torch.rot90(part, k, dims=(-2, -1))
    return out


def meta_features(columns: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """Observing conditions as model inputs: depths as 5σ magnitudes minus 24, sizes as is."""
    from core.schemas import depth_to_mag5

    out = []
    for name in names:
        value = np.asarray(columns[name], dtype=np.float64)
        out.append(depth_to_mag5(value) - 24.0 if "depth" in name else value)
    return (
        np.stack(out, axis=1).astype(np.float32)
        if names
        else np.zeros((len(columns["task_id"]), 0), np.float32)
    )


@dataclass
class Fragment:
    uri: str
    row_group: int
    rows: int


@dataclass
class Block:
    """Rows of a stream: stamps (n, C, H, W), labels, metadata features, task ids."""

    images: np.ndarray
    labels: np.ndarray
    meta: np.ndarray
    task: np.ndarray

    def __len__(self) -> int:
        return len(self.task)


def _gather(blocks: list[Block], rows: np.ndarray) -> Block:
    """The rows `rows` (indices into the blocks laid end to end), copied once into a Block."""
    starts = np.cumsum([0] + [len(b) for b in blocks])
    which = np.searchsorted(starts, rows, side="right") - 1
    first = blocks[0]
    out = Block(
        np.empty((len(rows), *first.images.shape[1:]), np.float32),
        np.empty(len(rows), np.float32),
        np.empty((len(rows), first.meta.shape[1]), np.float32),
        np.empty(len(rows), np.int64),
    )
    for b in np.unique(which):
        mine = which == b
        local = rows[mine] - starts[b]
        for name in ("images", "labels", "meta", "task"):
            getattr(out, name)[mine] = getattr(blocks[b], name)[local]
    return out


@dataclass(eq=False)
class StampStream(torch.utils.data.IterableDataset):
    """An iterable over batches (images, labels, meta, task_ids) of one split, as tensors;
    give it to a DataLoader with `batch_size=None`.

    `rank`/`world_size` come from DDP; the DataLoader worker is read from torch at iteration.
    With `prepare_in_worker` (the default) images come normalised (and augmented); without,
    raw, and the consumer calls `prepare` where it wants the work done."""

    location: str | list[str]
    split: str | None = "train"
    augment: bool = False
    shuffle_buffer: int = 0
    min_theta_over_psf: float = 0.0
    meta_cols: list[str] = field(default_factory=list)
    positives: str = "all"
    stretch: str = "clip"  # robust_normalise's: the model's own (LensClassifier.stretch)
    rank: int = 0
    world_size: int = 1
    seed: int = 0
    epoch: int = 0
    batch_size: int = 256
    prepare_in_worker: bool = True
    skipped: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_meta_cols(self.meta_cols)
        if self.positives not in POSITIVES:
            raise ValueError(f"positives {self.positives!r}: one of {', '.join(POSITIVES)}")
        uris = (
            self.location
            if isinstance(self.location, list)
            else storage.list_files(self.location, "*.parquet")
        )
        self.fragments: list[Fragment] = []
        for uri in sorted(uris):
            try:
                meta = parquet_file(uri).metadata
            except Exception as err:  # pyarrow raises several kinds for a damaged file
                self._skip(uri, f"not a readable parquet file ({type(err).__name__}: {err})")
                continue
            self.fragments += [
                Fragment(uri, i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)
            ]
        self.usable = self._count_usable()

    def _skip(self, uri: str, reason: str) -> None:
        self.skipped.append({"file": uri, "reason": reason})
        print(f"dataset: skipped {uri}: {reason}", file=sys.stderr, flush=True)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _keep(self, data: dict[str, np.ndarray]) -> np.ndarray:
        """The usable rows of a row group: ok, in the split, resolved enough."""
        keep = data["ok"].astype(bool)
        if self.split is not None:
            keep &= data["split"] == self.split
        known = np.array([bool(v) for v in data.get(KNOWN, np.zeros(keep.size))], dtype=bool)
        if self.min_theta_over_psf > 0:
            ratio = np.nan_to_num(data["theta_over_psf"].astype(np.float64), nan=0.0)
            keep &= data["is_control"].astype(bool) | known | (ratio >= self.min_theta_over_psf)
        if self.positives == "injections":
            keep &= ~known
        elif self.positives == "known":
            keep &= data["is_control"].astype(bool) | known
        return keep

    def _count_usable(self) -> list[int]:
        """Each fragment's usable rows, from the small columns (no stamps): counted once, here,
        so DataLoader workers inherit them instead of reading them again every epoch."""
        counts = []
        handle, opened = None, None
        for fragment in self.fragments:  # sorted by file: each file opened once
            try:
                if fragment.uri != opened:
                    handle, opened = parquet_file(fragment.uri), fragment.uri
                table = handle.read_row_group(fragment.row_group, columns=_with_known(FILTER_COLUMNS, handle))
                data = {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}
                counts.append(int(self._keep(data).sum()))
            except Exception as err:  # a damaged row group: report, skip, go on
                self._skip(f"{fragment.uri}#{fragment.row_group}", f"{type(err).__name__}: {err}")
                counts.append(0)
        return counts

    def my_fragments(self, worker: int = 0, num_workers: int = 1) -> list[tuple[Fragment, int, int]]:
        """This rank × worker's share of the epoch: the usable rows of the (shuffled) fragments
        laid end to end and cut in equal runs, so every shard gets the same number of rows, ±1,
        however few or uneven the row groups. Each piece is (fragment, first, stop) in that
        fragment's usable rows."""
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.fragments))
        counts = self.usable
        shard, shards = self.rank * num_workers + worker, self.world_size * num_workers
        total = sum(counts)
        low, high = shard * total // shards, (shard + 1) * total // shards
        pieces, start = [], 0
        for i in order:
            first, stop = max(low, start), min(high, start + counts[i])
            if first < stop:
                pieces.append((self.fragments[i], first - start, stop - start))
            start += counts[i]
        return pieces

    def prepare(self, images: Any, rng: np.random.Generator) -> Any:
        """Normalise a batch (numpy or torch, on any device) and, when training, augment it."""
        images = robust_normalise(images, self.stretch)
        return augment(images, rng) if self.augment else images

    def batches(self, num_workers: int) -> int:
        """How many batches this rank's DataLoader yields in an epoch (each worker ends on
        its own partial batch)."""
        workers = max(1, num_workers)
        return sum(
            -(-sum(stop - first for _, first, stop in self.my_fragments(w, workers)) // self.batch_size)
            for w in range(workers)
        )

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
        pool: list[Block] = []
        pooled = 0
        fill = max(self.shuffle_buffer, self.batch_size) if self.shuffle_buffer > 1 else self.batch_size
        for fragment, first, stop in self.my_fragments(worker, num_workers):
            block = self._read(fragment, first, stop)
            if block is None:
                continue
            pool.append(block)
            pooled += len(block)
            if pooled >= fill:
                yield from self._emit(pool, rng, last=False)
                pooled = sum(len(b) for b in pool)
        if pool:
            yield from self._emit(pool, rng, last=True)

    def _emit(self, pool: list[Block], rng: np.random.Generator, last: bool) -> Iterator[tuple[Any, ...]]:
        """Whole batches from the pool (shuffled across it when shuffling); the rows short
        of a batch stay in the pool, unless this is the end of the epoch."""
        total = sum(len(b) for b in pool)
        order = rng.permutation(total) if self.shuffle_buffer > 1 else np.arange(total)
        whole = total if last else total - total % self.batch_size
        for start in range(0, whole, self.batch_size):
            yield self._batch(_gather(pool, order[start : start + self.batch_size]), rng)
        rest = _gather(pool, order[whole:]) if whole < total else None
        pool.clear()
        if rest is not None:
            pool.append(rest)

    def _batch(self, block: Block, rng: np.random.Generator) -> tuple[Any, ...]:
        images = self.prepare(block.images, rng) if self.prepare_in_worker else block.images
        return (
            torch.from_numpy(np.ascontiguousarray(images)),
            torch.from_numpy(block.labels),
            torch.from_numpy(block.meta),
            torch.from_numpy(block.task),
        )

    def _read(self, fragment: Fragment, first: int, stop: int) -> Block | None:
        """This share's usable rows of one row group, decoded (a view of Arrow's memory)."""
        from core.stamps import decode

        try:
            pf = parquet_file(fragment.uri)
            columns = _with_known(list(dict.fromkeys((*COLUMNS, *self.meta_cols))), pf)
            table = pf.read_row_group(fragment.row_group, columns=columns)
            meta = stamp_meta(pf.schema_arrow)
            data = {
                name: table.column(name).to_numpy(zero_copy_only=False) for name in columns if name != "stamp"
            }
            rows = np.flatnonzero(self._keep(data))[first:stop]
            if rows.size == 0:
                return None
            images = decode(table.column("stamp"), meta, copy=False)  # a view: no copy yet
            contiguous = rows[-1] - rows[0] + 1 == rows.size
            images = images[rows[0] : rows[-1] + 1] if contiguous else images[rows]
        except Exception as err:  # a damaged row group: report, skip, go on
            self._skip(f"{fragment.uri}#{fragment.row_group}", f"{type(err).__name__}: {err}")
            return None
        labels = (~data["is_control"][rows].astype(bool)).astype(np.float32)
        metas = meta_features({k: v[rows] for k, v in data.items()}, self.meta_cols)
        return Block(
            images.astype(np.float32, copy=False), labels, metas, data["task_id"][rows].astype(np.int64)
        )


def _with_known(columns: Any, handle: Any) -> list[str]:
    """`columns`, and the known-lens tier where the file has it."""
    return [*columns, KNOWN] if KNOWN in handle.schema_arrow.names else list(columns)


def read_columns(
    location: str | list[str], columns: list[str], optional: tuple[str, ...] = ()
) -> tuple[Any, list[dict[str, str]]]:
    """Some columns of every readable stamps file (and the `optional` ones where a file has
    them: null elsewhere) as one Arrow table, and the files that could not be read (named,
    with the reason): a damaged part is skipped, never a crash."""
    import pyarrow as pa

    uris = location if isinstance(location, list) else storage.list_files(location, "*.parquet")
    tables, skipped = [], []
    for uri in sorted(uris):
        try:
            handle = parquet_file(uri)
            present = [c for c in optional if c in handle.schema_arrow.names]
            tables.append(handle.read(columns=[*columns, *present]))
        except Exception as err:  # pyarrow raises several kinds for a damaged file
            skipped.append(
                {"file": str(uri), "reason": f"not a readable parquet file ({type(err).__name__})"}
            )
    if not tables:
        return None, skipped
    return pa.concat_tables(tables, promote_options="default"), skipped


def row_weights(location: str | list[str], split: str, training: Any) -> Any:
    """A function mapping task ids of `split` to their training weights (`[training]`,
    core.config.Training): controls and injections 1; a known lens its tier's weight; with
    `known_share`, the kept positives' total weight split between injections and known lenses
    in that share (their sum stays the number of positive rows). None when all weigh 1."""
    table, _ = read_columns(location, ["task_id", "split", "is_control", "ok"], optional=(KNOWN,))
    if table is None or KNOWN not in table.column_names:
        return None
    mine = (table.column("split").to_numpy(zero_copy_only=False) == split) & table.column("ok").to_numpy(
        zero_copy_only=False
    )
    tier = np.array([v or "" for v in table.column(KNOWN).to_pylist()], dtype=object)[mine]
    control = table.column("is_control").to_numpy(zero_copy_only=False)[mine].astype(bool)
    ids = table.column("task_id").to_numpy()[mine]
    known = tier != ""
    if not known.any() or training.positives == "injections":
        return None
    weight = np.ones(ids.size)
    weight[known] = [training.tier_weights.get(t, 0.0) for t in tier[known]]
    injection = ~control & ~known
    if training.positives == "both" and training.known_share is not None and injection.any():
        positives = injection.sum() + known.sum()
        weight[injection] = (1.0 - training.known_share) * positives / injection.sum()
        weight[known] *= training.known_share * positives / max(weight[known].sum(), 1e-12)
    order = np.argsort(ids)
    ids, weight = ids[order], weight[order]

    def lookup(tasks: np.ndarray) -> np.ndarray:
        where = np.clip(np.searchsorted(ids, tasks), 0, max(ids.size - 1, 0))
        return np.where(ids[where] == tasks, weight[where], 1.0)

    return lookup


def task_galaxies(location: str | list[str], split: str | None = None) -> Any:
    """A function mapping task ids (of `split`, or all) to their independent units (small
    integer codes: the stamps' `unit` where they carry one, else the galaxy): validation
    counts units, not rows."""
    from core.schemas import unit_keys

    uris = location if isinstance(location, list) else storage.list_files(location, "*.parquet")
    ids, keys = [], []
    for uri in sorted(uris):
        try:
            handle = parquet_file(uri)
            wanted = ["task_id", "brickname", "objid", "split"]
            table = handle.read(columns=wanted + (["unit"] if "unit" in handle.schema_arrow.names else []))
        except Exception:  # noqa: S112 - a damaged file is reported by the stream itself
            continue
        if split is not None:
            import pyarrow.compute as pc

            table = table.filter(pc.equal(table.column("split"), split))
        ids.append(table.column("task_id").to_numpy())
        unit = table.column("unit").to_pylist() if "unit" in table.column_names else None
        keys.append(unit_keys(table.column("brickname").to_pylist(), table.column("objid").to_pylist(), unit))
    task = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    codes = np.unique(np.concatenate(keys), return_inverse=True)[1].reshape(-1) if keys else task
    order = np.argsort(task)
    task, codes = task[order], codes[order]

    def lookup(tasks: np.ndarray) -> np.ndarray:
        where = np.clip(np.searchsorted(task, tasks), 0, max(task.size - 1, 0))
        found = task[where] == tasks if task.size else np.zeros(len(tasks), bool)
        return np.where(found, codes[where] if task.size else 0, -1 - np.arange(len(tasks)))

    return lookup


class CutoutBatches(torch.utils.data.IterableDataset):
    """Batches of usable real-galaxy cutouts (jobs/stages/cutouts.py) for scoring: each DataLoader
    worker reads its share of the row groups, decodes and normalises them, and yields
    (images, rows, meta); the main process only moves them to the model."""

    def __init__(self, files: list[str], batch: int, meta_cols: list[str], stretch: str = "clip") -> None:
        self.files, self.batch, self.meta_cols = files, batch, check_meta_cols(meta_cols)
        self.stretch = stretch
        self.fragments, self.rows = [], 0
        for uri in files:
            meta = parquet_file(uri).metadata
            self.fragments += [(uri, g) for g in range(meta.num_row_groups)]
            self.rows += meta.num_rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        from core.stamps import decode

        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        handle, opened = None, None
        for uri, group in self.fragments[worker::workers]:
            if uri != opened:
                handle, opened = parquet_file(uri), uri
            table = handle.read_row_group(group, columns=["row", "ok", "stamp", *self.meta_cols])
            table = table.filter(table.column("ok"))
            if not table.num_rows:
                continue
            images = robust_normalise(
                decode(table.column("stamp"), stamp_meta(handle.schema_arrow)), self.stretch
            )
            rows = table.column("row").to_numpy().copy()  # writable, for torch
            meta = None
            if self.meta_cols:
                values = {c: table.column(c).to_numpy() for c in self.meta_cols} | {"task_id": rows}
                meta = meta_features(values, self.meta_cols)
            for start in range(0, len(rows), self.batch):
                part = slice(start, start + self.batch)
                yield (
                    torch.from_numpy(images[part]),
                    torch.from_numpy(rows[part]),
                    torch.from_numpy(meta[part]) if meta is not None else torch.zeros(0),
                )
