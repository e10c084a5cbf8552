"""Candidates as the console and the demo read them: `data/candidates/<run>/candidates.parquet`
(the top-scoring galaxies and every known lens, ranked among all, with their stamps; the whole
ranking, without stamps, is beside it in `candidates.scores.parquet`)."""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from typing import Any

# The share of the triage stream that is blind items: halo.toml's [triage] blind_rate (its
# default) and `halo --blind-rate` (its range), both from here
BLIND_RATE, BLIND_RATE_RANGE = 0.05, (0.0, 0.5)


def scored_files(workspace: Path, run: str) -> list[Path]:
    """What `score` wrote for a run that the console can page: its candidates, then each
    catalogue's (`catalog-*.parquet`) and each folder of FITS cutouts' (`cutouts-*.parquet`)."""
    from core.layout import SCORES_SUFFIX, candidates_dir, candidates_file

    folder = candidates_dir(workspace, run)
    found = [candidates_file(workspace, run)] if candidates_file(workspace, run).is_file() else []
    for pattern in ("catalog-*.parquet", "cutouts-*.parquet"):
        found += sorted(p for p in folder.glob(pattern) if not p.name.endswith(SCORES_SUFFIX))
    return found


class CandidateTable:
    """A candidates parquet for browsing: the small columns in memory (Arrow), stamps read
    per row group only for the rows on screen, so a 1,000,000-row file browses in bounded
    memory."""

    INFO = (
        "rank",
        "brickname",
        "objid",
        "ra",
        "dec",
        "split",
        "psfsize_r",
        "score",
        "run",
        "ok",
        "fail_reason",
        "known_lens",
        "known_lens_grade",
        "known_lens_reference",
    )

    def __init__(self, path: Path | str) -> None:
        import numpy as np
        import pyarrow.compute as pc

        from core.stamps import stamp_meta
        from core.storage import parquet_file

        self.path = path
        self.file = parquet_file(path)
        self.meta = stamp_meta(self.file.schema_arrow)
        present = [c for c in self.INFO if c in self.file.schema_arrow.names]
        self.info = self.file.read(columns=present)
        sizes = [self.file.metadata.row_group(i).num_rows for i in range(self.file.metadata.num_row_groups)]
        self.group_start = np.concatenate([[0], np.cumsum(sizes)])
        bricks = pc.dictionary_encode(self.info.column("brickname")).combine_chunks()
        self.brick_names = bricks.dictionary.to_pylist()
        brick_index = bricks.indices.to_numpy().astype(np.int64)
        self.keys = brick_index << 32 | self.info.column("objid").to_numpy().astype(np.int64)
        self._brick_code = {name: i for i, name in enumerate(self.brick_names)}
        self._reading = threading.Lock()

    def __len__(self) -> int:
        return self.info.num_rows

    @cached_property
    def row_of_key(self) -> dict[int, int]:
        """Each key's row (the first, should a galaxy repeat), for lookups (built once)."""
        rows: dict[int, int] = {}
        for row, key in enumerate(self.keys.tolist()):
            rows.setdefault(key, row)
        return rows

    def has(self, brickname: str, objid: int) -> bool:
        return self.key(brickname, objid) in self.row_of_key

    @cached_property
    def known_lenses(self) -> int:
        """How many rows are known lenses (counted once)."""
        if "known_lens" not in self.info.column_names:
            return 0
        import pyarrow.compute as pc

        names = self.info.column("known_lens")
        return int(pc.sum(pc.and_(pc.is_valid(names), pc.not_equal(names, ""))).as_py() or 0)

    def key(self, brickname: str, objid: int) -> int | None:
        code = self._brick_code.get(brickname)
        return None if code is None else code << 32 | int(objid)

    def row(self, i: int) -> dict[str, Any]:
        return self.info.slice(i, 1).to_pylist()[0]

    def stamps(self, rows: list[int]) -> Any:
        """The stamps of `rows` as (n, 3, H, W), reading only the row groups they sit in.
        One thread at a time: a parquet reader read from two threads at once fails ("did not
        find matching cache entry") or crashes."""
        with self._reading:
            return self._stamps(rows)

    def _stamps(self, rows: list[int]) -> Any:
        import numpy as np

        from core.stamps import decode

        out = np.zeros((len(rows), *self.meta["shape"]), dtype=self.meta["dtype"])
        by_group: dict[int, list[tuple[int, int]]] = {}
        for position, row in enumerate(rows):
            group = int(np.searchsorted(self.group_start, row, side="right") - 1)
            by_group.setdefault(group, []).append((position, row - int(self.group_start[group])))
        for group, wanted in by_group.items():
            column = self.file.read_row_group(group, columns=["stamp"]).column("stamp")
            picked = decode(column.take([offset for _, offset in wanted]), self.meta)
            for (position, _), stamp in zip(wanted, picked, strict=True):
                out[position] = stamp
        return out

    def find(self, brickname: str, objid: int) -> int | None:
        """The row of a candidate, or None."""
        key = self.key(brickname, objid)
        return None if key is None else self.row_of_key.get(key)

    def rows_of(self, pairs: Any) -> list[dict[str, Any]]:
        """The rows of the (brickname, objid) pairs that are candidates here."""
        rows = (self.find(brick, objid) for brick, objid in pairs)
        return [self.row(r) for r in rows if r is not None]


def blinds_path(candidates: Path) -> Path | None:
    """The blind items `score` wrote beside a run's candidates (none beside a catalogue's)."""
    from core.layout import BLINDS_FILE, CANDIDATES_FILE

    return candidates.with_name(BLINDS_FILE) if Path(candidates).name == CANDIDATES_FILE else None


def blind_truths(blinds: CandidateTable) -> list[str]:
    """Each blind item's truth, in the items' order: from `blinds.truth.parquet` beside them
    (keyed by galaxy), or the items' own `truth` column (files written before it)."""
    import pyarrow.parquet as pq

    if "truth" in blinds.file.schema_arrow.names:
        return blinds.file.read(columns=["truth"]).column("truth").to_pylist()
    from core.layout import BLINDS_TRUTH_FILE

    path = Path(blinds.path).with_name(BLINDS_TRUTH_FILE)
    if not path.is_file():
        return []
    table = pq.read_table(path, columns=["brickname", "objid", "truth"]).to_pylist()
    truth = {(r["brickname"], int(r["objid"])): r["truth"] for r in table}
    ids = blinds.info.select(["brickname", "objid"]).to_pylist()
    return [truth.get((r["brickname"], int(r["objid"])), "") for r in ids]


class TriageStream:
    """What an inspector grades: the run's candidates in rank order and, mixed in at `rate`
    (the fraction of the stream), blind items (jobs/learn/blinds.py), half each truth, at fixed
    pseudo-random positions (the same for every inspector of the run). With blind items in
    it the stream is numbered by position and `scored` is False: a model score would tell a
    blind item from the candidates around it (and grading blind to the score is the field's
    practice). Without, the numbers are the candidates' ranks. A grade's key is (brickname,
    objid) for a candidate and (brickname, objid, truth) for a blind item. No galaxy is in it
    twice: a candidate that is also a chosen blind item (a known non-lens: graded X in an earlier
    round, or a catalogued lookalike) is left out as a candidate."""

    def __init__(
        self,
        candidates: CandidateTable,
        blinds: CandidateTable | None = None,
        rate: float = 0.0,
        seed: str = "",
    ) -> None:
        import hashlib

        import numpy as np

        from core.schemas import hash_order

        self.candidates, self.blinds = candidates, blinds
        n = len(candidates)
        chosen: list[int] = []
        truth: list[str] = []
        if blinds is not None and len(blinds) and 0 < rate < 1:
            want = min(len(blinds), round(rate * n / (1 - rate)))
            truth = blind_truths(blinds)
            ids = blinds.info.select(["brickname", "objid"]).to_pylist()
            order = hash_order(
                [f"{seed}:{r['brickname']}:{r['objid']}:{t}" for r, t in zip(ids, truth, strict=True)]
            )
            by_truth = [[int(i) for i in order if truth[i] == t] for t in ("lens", "not_lens")]
            lens = min(len(by_truth[0]), (want + 1) // 2)
            dud = min(len(by_truth[1]), want - lens)
            lens = min(len(by_truth[0]), want - dud)  # one truth short: the other makes it up
            picked = by_truth[0][:lens] + by_truth[1][:dud]
            chosen = [picked[i] for i in hash_order([f"{seed}:{j}" for j in picked])]  # truths mixed
        self.truth = {j: truth[j] for j in chosen}
        real_rows = np.arange(n)
        # a known non-lens among the candidates, here a blind item, is not also a candidate
        if blinds is not None and chosen:
            held = [candidates.key(r["brickname"], r["objid"]) for r in map(blinds.row, chosen)]
            real_rows = np.flatnonzero(~np.isin(candidates.keys, [k for k in held if k is not None]))
        n = len(real_rows)
        m = len(chosen)
        self.scored = m == 0
        source = np.zeros(n + m, dtype=np.int64)
        if m:
            digest = hashlib.blake2b(f"blinds:{seed}".encode(), digest_size=8).digest()
            rng = np.random.default_rng(int.from_bytes(digest, "little"))
            source[rng.choice(n + m, m, replace=False)] = 1
        self.source = source
        self.index = np.zeros(n + m, dtype=np.int64)  # the row in its table
        self.index[source == 0] = real_rows
        self.index[source == 1] = np.array(chosen, dtype=np.int64)
        self.ranks = np.arange(1, n + m + 1) if m else candidates.info.column("rank").to_numpy()
        real = candidates.keys[np.where(source == 0, self.index, 0)]
        self.keys = np.where(source == 1, -(1 + self.index), real)  # a blind item's key: negative
        self._blind_key = {
            (row["brickname"], row["objid"], self.truth[j]): -(1 + j)
            for j, row in ((j, blinds.row(j)) for j in chosen if blinds is not None)
        }

    def __len__(self) -> int:
        return len(self.source)

    @property
    def n_blind(self) -> int:
        return len(self.truth)

    @property
    def known_lenses(self) -> int:
        return self.candidates.known_lenses

    def key(self, brickname: str, objid: int, blind: str | None = None) -> int | None:
        if blind is None:
            return self.candidates.key(brickname, objid)
        return self._blind_key.get((brickname, objid, blind))

    def has(self, brickname: str, objid: int, blind: str | None = None) -> bool:
        key = self.key(brickname, objid, blind)
        return key is not None and (key < 0 or key in self.candidates.row_of_key)

    def row(self, position: int) -> dict[str, Any]:
        """The item at `position`: its table row with `rank` its number in the stream, and
        `blind` (its truth, None for a candidate: for grading, never to be shown)."""
        j = int(self.index[position])
        if self.source[position] == 1 and self.blinds is not None:  # a blind item: there are blinds
            info = self.blinds.row(j) | {"blind": self.truth[j]}
        else:
            info = self.candidates.row(j) | {"blind": None}
        return info | {"rank": int(self.ranks[position])}

    def stamps(self, positions: list[int]) -> Any:
        import numpy as np

        out = np.zeros((len(positions), *self.candidates.meta["shape"]), dtype=self.candidates.meta["dtype"])
        for which, table in ((0, self.candidates), (1, self.blinds)):
            mine = [i for i, p in enumerate(positions) if self.source[p] == which]
            if mine and table is not None:
                out[mine] = table.stamps([int(self.index[positions[i]]) for i in mine])
        return out
