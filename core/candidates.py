"""Candidates as the console and the demo read them: `data/candidates/<run>/candidates.parquet`
(the top-scoring galaxies and every known lens, ranked among all, with their stamps; the whole
ranking, without stamps, is beside it in `candidates.scores.parquet`)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any


def candidates_path(workspace: Path, run: str) -> Path:
    from core.layout import candidates_dir

    return candidates_dir(workspace, run) / "candidates.parquet"


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

    def __len__(self) -> int:
        return self.info.num_rows

    @cached_property
    def key_set(self) -> frozenset[int]:
        """Every row's key, for membership tests (built once)."""
        return frozenset(self.keys.tolist())

    def has(self, brickname: str, objid: int) -> bool:
        return self.key(brickname, objid) in self.key_set

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
        """The stamps of `rows` as (n, 3, H, W), reading only the row groups they sit in."""
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
