"""The candidates screen's side panel (what is known of the selected item, the view, its
grades and notes) and its progress line. Never markup: names and reasons come from files and
users."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from core.figures import score as score_text
from core.grades import Consensus, GradeKey
from halo_tui.components.candidate_grid import META_WIDTH
from halo_tui.format import visible


def item_lines(info: dict[str, Any], blind: bool) -> list[Text]:
    """What the side panel says of one stream item, a line each. With blind items in the
    stream (`blind`) only the run, as every item has it alike: a blind item's score, split,
    position, ids and PSF would tell it apart (items drawn away from the candidates sit
    elsewhere on the sky and in the catalogue; it is never a known lens), so they are hidden
    for every item, and the inspector grades the pixels, as visual lens searches do."""
    if blind:
        return [
            Text("score, position, ids, PSF, split: hidden while blind items are in the stream"),
            Text(f"run    {visible(info.get('run') or '-')}"),
        ]
    out: list[Text] = []
    if info.get("known_lens"):
        grade, reference = (visible(info.get(k) or "") for k in ("known_lens_grade", "known_lens_reference"))
        out += [
            Text.assemble(("known lens ", "bold yellow"), (visible(info["known_lens"]), "yellow")),
            Text(f"  {grade}: {reference}"),
        ]
    psf = "-" if info.get("psfsize_r") is None else f'{info["psfsize_r"]:.2f}"'
    for line in (
        f"score  {score_text(info.get('score'))}",
        f"ra     {info['ra']:.5f}",
        f"dec    {info['dec']:.5f}",
        f"brick  {visible(str(info['brickname']))}",
        f"objid  {info['objid']}",
        f"psf_r  {psf}",
        f"split  {visible(info.get('split') or '-')}",
        f"run    {visible(info.get('run') or '-')}",
    ):
        out.append(Text(line))
    if not info.get("ok", True):
        out.append(Text(visible(info.get("fail_reason")), style="red"))
    return out


def progress_line(
    table: Any, consensus: dict[GradeKey, Consensus], who: str, filtered: str, listed: int, source: str
) -> str:
    """`graded 12/384 · 2 disagree · 3 known`: this inspector's grades among the stream's
    items, the disagreements, the known lenses, the filter (`filtered`, `listed` items) and the
    file (`source`, "" for the run's candidates)."""
    mine = disagree = 0
    for key, c in consensus.items():  # the graded items only
        if table.has(*key):
            mine += who in c.grades
            disagree += c.disagreement
    shown = f" · filter {filtered} ({listed})" if filtered != "all" else ""
    where = f" · {source}" if source else ""
    return f"graded {mine}/{len(table)} · {disagree} disagree · {table.known_lenses} known{shown}{where}"


class CandidatePanel(Static):
    """The selected item: its number and page, what is known of it, the view, this inspector,
    its notes and everyone's grades with their consensus."""

    # its width in CSS, not set once mounted: a screen pushed while the app closes never had
    # its children to query (the every-key test's random keys found it: '3' on a confirm)
    DEFAULT_CSS = f"CandidatePanel {{ width: {META_WIDTH}; }}"

    def show_item(
        self,
        info: dict[str, Any],
        *,
        of: int,
        page: tuple[int, int],
        blind: bool,
        settings: tuple[str, ...],
        notes: list[str],
        consensus: Any,
    ) -> None:
        text = Text()
        text.append(f"#{info['rank']}", style="bold")
        text.append(f" of {of}  page {page[0]}/{page[1]}\n")
        for line in item_lines(info, blind=blind):
            text.append_text(line)
            text.append("\n")
        for line in ("", *settings):
            text.append(line + "\n")
        for note in notes:
            text.append(f"note   {visible(note)}\n", style="italic")
        if consensus:
            grades = ", ".join(f"{k}:{v}" for k, v in sorted(consensus.grades.items()))
            text.append(f"grades {visible(grades)}\n")
            text.append(f"consensus {'-' if consensus.score is None else f'{consensus.score:.2f}'}")
            if consensus.disagreement:
                text.append(" disagree", style="red")
            text.append("\n")
        text.rstrip()
        self.update(text)
