"""Messages the console's workers post to their screens (as toolong's messages.py): a worker
does the slow part off the UI thread — reading a parquet, rendering stamps, writing grades to
the store — and posts what it found; the screen's handler only applies it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from textual.message import Message

if TYPE_CHECKING:
    from array import array

    import numpy as np
    from textual.strip import Strip

    from core.candidates import TriageStream
    from core.grades import Consensus, GradeKey, Undone
    from core.store import Job

# a job as the jobs table shows it: id, stage, state, progress, duration, exit code, started,
# variant, backend
JobRow = tuple[str, str, str, str, str, str, str, str, str]
# a run as the runs table shows it: core.runs.overview's row, and whether it has candidates
RunRow = tuple[dict[str, Any], bool]


class RunGrades(NamedTuple):
    """A run's grades as the candidates screen keeps them, candidates and blind items keyed
    alike (screens/candidates.py `ident`)."""

    version: tuple[int, int]  # core.grades.version: changes whenever a grade or note does
    consensus: dict[GradeKey, Consensus]
    notes: dict[GradeKey, list[str]]


class StreamLoaded(Message):
    """The triage stream is open, with the run's grades as they stand."""

    def __init__(self, table: TriageStream, grades: RunGrades) -> None:
        super().__init__()
        self.table, self.grades = table, grades


class PageRendered(Message):
    """A page's stamps are rendered (strips by row) and can be placed; zoomed in a terminal
    that draws images, `pixels` is the stamp's RGB; `asked`: the redraw it answers (a newer
    one makes it stale)."""

    def __init__(
        self, page: int, rendered: dict[int, list[Strip]], pixels: np.ndarray | None = None, asked: int = 0
    ) -> None:
        super().__init__()
        self.page, self.rendered, self.pixels, self.asked = page, rendered, pixels, asked


class GradesChanged(Message):
    """The run's grades changed: `grades` as they now stand. `said` is what to
    tell the inspector (their own action's outcome), `undone` what an undo took back, and
    `refilter` whether the filter is redone (another inspector's grades: yes; your own: no,
    the candidate stays where you are until you cycle the filter)."""

    def __init__(
        self,
        grades: RunGrades,
        said: str | None = None,
        undone: Undone | None = None,
        refilter: bool = False,
    ) -> None:
        super().__init__()
        self.grades, self.said, self.undone, self.refilter = grades, said, undone, refilter


class Exported(Message):
    """An export was written (or failed: `said` names why)."""

    def __init__(self, said: str, ok: bool = True) -> None:
        super().__init__()
        self.said, self.ok = said, ok


class JobsLoaded(Message):
    """The store's jobs as the jobs table shows them (`rows`), and a remote backend's
    trouble to warn of once (`warning`)."""

    def __init__(self, jobs: dict[str, Job], rows: list[JobRow], warning: str | None) -> None:
        super().__init__()
        self.jobs, self.rows, self.warning = jobs, rows, warning


class JobActed(Message):
    """A launch or cancel done by a worker: what to tell the operator, and the job launched
    (the cursor goes to it)."""

    def __init__(self, said: str, ok: bool = True, job_id: int | None = None) -> None:
        super().__init__()
        self.said, self.ok, self.job_id = said, ok, job_id


class MetricsRead(Message):
    """A run's metrics.jsonl looked at: `epochs` (and the `bad` line numbers) when it changed
    since the last look (`mtime`), None when it did not; `live`: (progress, time left) as the
    running train job's log says them."""

    def __init__(
        self,
        mtime: float | None,
        epochs: list[dict[str, Any]] | None,
        bad: list[int],
        live: tuple[str | None, str | None] = (None, None),
    ) -> None:
        super().__init__()
        self.mtime, self.epochs, self.bad, self.live = mtime, epochs, bad, live


class LogRead(Message):
    """A log looked at: its last `lines` (the first look), how far the index got (`event`),
    or a warning (logs a remote backend could not fetch)."""

    def __init__(
        self, lines: list[str] | None = None, event: str | None = None, warning: str | None = None
    ) -> None:
        super().__init__()
        self.lines, self.event, self.warning = lines, event, warning


class MatchesCounted(Message):
    """The lines of a log that match a search `pattern`, counted in a worker."""

    def __init__(self, pattern: str, lines: array[int]) -> None:
        super().__init__()
        self.pattern, self.lines = pattern, lines


class RunsLoaded(Message):
    """The training runs as the runs table shows them."""

    def __init__(self, rows: list[RunRow]) -> None:
        super().__init__()
        self.rows = rows
