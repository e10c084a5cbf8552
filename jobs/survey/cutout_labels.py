"""Labels for a folder of FITS cutouts (`eval --cutouts DIR --labels CSV`): which files show a
lens and which do not.

A CSV with a `name` column (the cutout's file name; `file` is accepted too), a `label` column
(lens: `lens`, `1`, `true`, `yes`; not a lens: `not_lens`, `nonlens`, `0`, `false`, `no`) and,
optionally, the lens's catalogue `grade` (its tier then comes from the variant's `[training]
tiers`). A row that names no file, or whose label is none of these, is one line and left out;
the rest is used."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

LENS = frozenset({"lens", "1", "true", "yes", "y"})
NOT_LENS = frozenset({"not_lens", "nonlens", "non-lens", "not a lens", "0", "false", "no", "n"})


@dataclass(frozen=True)
class Label:
    lens: bool
    grade: str


def read(path: Path) -> tuple[dict[str, Label], list[str]]:
    """The labels by file name, and a line for each row left out."""
    from jobs.runtime.stage import StageError

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise StageError(f"{path}: not a readable CSV ({type(err).__name__})") from None
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(lines)
    fields = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
    name_col = fields.get("name") or fields.get("file")
    if name_col is None or "label" not in fields:
        raise StageError(
            f"{path}: needs columns name (or file) and label; it has {', '.join(fields) or 'none'}"
        )
    out: dict[str, Label] = {}
    said = []
    for number, row in enumerate(reader, start=2):
        name = (row.get(name_col) or "").strip()
        value = (row.get(fields["label"]) or "").strip().lower()
        if not name:
            said.append(f"{path}: row {number}: no file name; left out")
        elif value not in LENS | NOT_LENS:
            said.append(f"{path}: row {number}: label {value[:40]!r} is not lens or not_lens; left out")
        else:
            grade = (row.get(fields["grade"]) or "").strip() if "grade" in fields else ""
            out[Path(name).name] = Label(value in LENS, grade)
    return out, said
