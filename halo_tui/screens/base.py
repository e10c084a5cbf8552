"""What every full screen of the console shares: its footer leads with the keys a newcomer
needs (`?` help, `q` quit, `1 2 3` screens), then the screen's own, so that at 80 columns the
way to every other key is still on screen."""

from __future__ import annotations

from textual.binding import ActiveBinding
from textual.screen import Screen

FIRST = ("app.help", "app.quit", "app.jobs", "app.runs", "app.candidates")  # binding ids, in order


class HaloScreen(Screen[None]):
    """A full screen of the console (its footer ordered as above)."""

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        found = super().active_bindings
        rank = {ident: i for i, ident in enumerate(FIRST)}
        first = sorted(
            (k for k, b in found.items() if b.binding.id in rank), key=lambda k: rank[found[k].binding.id]
        )
        return {k: found[k] for k in first} | {k: b for k, b in found.items() if k not in first}
