"""Two crashes of Textual 8 that keys or settings of ours reach, mended where they happen
(each found by tests/halo_tui/test_every_key.py):

- NO_COLOR's Monochrome filter fails on a segment without a style (`'NoneType' object has no
  attribute 'color'`); blank strips (a log's empty lines, a tile's padding) have none.
  `monochrome` is the filter the app uses instead.
- An OptionList (the command palette's list, a Select's menu) fails on pgup/pgdn pressed
  before its lines are laid out (`KeyError: 0` in `_move_page`); such a key now does nothing,
  as `scroll_to_highlight` already does in the same case."""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.filter import Monochrome
from textual.widgets import OptionList


class SafeMonochrome(Monochrome):
    """NO_COLOR's filter, also for segments without a style."""

    def apply(self, segments: list[Segment], background: Any) -> list[Segment]:
        null = Style.null()
        return super().apply([Segment(t, s or null, c) for t, s, c in segments], background)


def monochrome_filters(filters: list[Any]) -> list[Any]:
    """An app's line filters with Textual's Monochrome replaced by SafeMonochrome."""
    return [SafeMonochrome() if type(f) is Monochrome else f for f in filters]


_move_page = OptionList._move_page


def _move_page_when_laid_out(self: OptionList, direction: Any) -> None:
    if (self.highlighted or 0) in self._index_to_line:
        _move_page(self, direction)


OptionList._move_page = _move_page_when_laid_out  # type: ignore[method-assign]
