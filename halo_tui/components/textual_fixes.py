"""Two crashes of Textual 8 that keys or settings of ours reach, mended where they happen
(each found by tests/halo_tui/test_every_key.py):

- NO_COLOR's Monochrome filter fails on a segment without a style (`'NoneType' object has no
  attribute 'color'`); blank strips (a log's empty lines, a tile's padding) have none. It also
  turns colours that differ only in hue into the same grey: red text on a dark panel became
  grey 237 on 234, a grade badge's letter the grey of its badge. `LegibleMonochrome` is the
  filter the app uses instead: greys, then text whose grey is too near its background's is
  drawn white on dark and black on light (pixels, the stamps' half blocks and the plots'
  marks, keep their greys).
- An OptionList (the command palette's list, a Select's menu) fails on pgup/pgdn pressed
  before its lines are laid out (`KeyError: 0` in `_move_page`); such a key now does nothing,
  as `scroll_to_highlight` already does in the same case."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.color import BLACK, WHITE, Color
from textual.filter import Monochrome, monochrome_style
from textual.widgets import OptionList

# the least difference in brightness (0-1) between text and its background in NO_COLOR
LEGIBLE = 0.4


def _is_text(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


@lru_cache(1024)
def _legible(style: Style, background: Color) -> Style:
    grey = monochrome_style(style)
    fg = Color.from_rich_color(grey.color) if grey.color and not grey.color.is_default else WHITE
    bg = Color.from_rich_color(grey.bgcolor) if grey.bgcolor and not grey.bgcolor.is_default else background
    if abs(fg.brightness - bg.brightness) >= LEGIBLE:
        return grey
    return grey + Style(color=(WHITE if bg.brightness < 0.5 else BLACK).rich_color)


class LegibleMonochrome(Monochrome):
    """NO_COLOR's filter: greys for every segment (those without a style too), text kept
    readable against its background."""

    def apply(self, segments: list[Segment], background: Any) -> list[Segment]:
        base = background.monochrome
        null = Style.null()
        return [
            Segment(t, _legible(s or null, base) if _is_text(t) else monochrome_style(s or null), None)
            for t, s, _ in segments
        ]


def monochrome_filters(filters: list[Any]) -> list[Any]:
    """An app's line filters with Textual's Monochrome replaced by LegibleMonochrome."""
    return [LegibleMonochrome() if type(f) is Monochrome else f for f in filters]


_move_page = OptionList._move_page


def _move_page_when_laid_out(self: OptionList, direction: Any) -> None:
    if (self.highlighted or 0) in self._index_to_line:
        _move_page(self, direction)


OptionList._move_page = _move_page_when_laid_out  # type: ignore[method-assign]
