"""Candidates as the console and the demo read them: `data/candidates/<run>/candidates.parquet`
(one row per parent-sample galaxy, ranked by score) and the mock survey's planted truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def candidates_path(workspace: Path, run: str) -> Path:
    return workspace / "data" / "candidates" / run / "candidates.parquet"


def planted_ranks(candidates: Path, truth: Path) -> list[dict[str, Any]]:
    """Where the mock survey's planted lenses landed among the candidates (rank 1 = top)."""
    import pyarrow.parquet as pq

    ranked = pq.read_table(candidates, columns=["rank", "brickname", "objid", "score"]).to_pylist()
    where = {(r["brickname"], r["objid"]): r for r in ranked}
    out = []
    for row in pq.read_table(truth).to_pylist():
        if row["kind"] != "lens":
            continue
        found = where.get((row["brickname"], row["objid"]))
        out.append(
            {
                "brickname": row["brickname"],
                "objid": row["objid"],
                "theta_e_arcsec": row["theta_e_arcsec"],
                "rank": found["rank"] if found else None,
                "score": found["score"] if found else None,
                "of": len(ranked),
            }
        )
    return sorted(out, key=lambda r: (r["rank"] is None, r["rank"] or 0))
