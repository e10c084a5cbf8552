"""Messages the console's workers post to their screens (as toolong's messages.py): a worker
does the slow part off the UI thread — reading a parquet, rendering stamps, writing grades to
the store — and posts what it found; the screen's handler only applies it."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class StreamLoaded(Message):
    """The triage stream is open, with the run's grades as they stand."""

    def __init__(self, table: Any, grades: tuple[Any, Any, Any]) -> None:
        super().__init__()
        self.table, self.grades = table, grades


class PageRendered(Message):
    """A page's stamps are rendered (strips by row) and can be placed."""

    def __init__(self, page: int, rendered: dict[int, Any]) -> None:
        super().__init__()
        self.page, self.rendered = page, rendered


class GradesChanged(Message):
    """The run's grades changed: `grades` is (version, consensus, notes). `said` is what to
    tell the inspector (their own action's outcome), `undone` what an undo took back, and
    `refilter` whether the filter is redone (another inspector's grades: yes; your own: no,
    the candidate stays where you are until you cycle the filter)."""

    def __init__(
        self,
        grades: tuple[Any, Any, Any],
        said: str | None = None,
        undone: Any = None,
        refilter: bool = False,
    ) -> None:
        super().__init__()
        self.grades, self.said, self.undone, self.refilter = grades, said, undone, refilter


class Exported(Message):
    """An export was written (or failed: `said` names why)."""

    def __init__(self, said: str, ok: bool = True) -> None:
        super().__init__()
        self.said, self.ok = said, ok
