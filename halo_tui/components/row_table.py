"""A table of rows (jobs, runs) whose `enter` is the screen's: the screen binds it to what a
row opens (details, the monitor), and `?` and the footer then name that, not the table's
generic "Select"."""

from __future__ import annotations

from textual.widgets import DataTable

# every key a DataTable has (its own and those it inherits from scrolling), enter left out
_KEYS = [b for bs in DataTable._merge_bindings().key_to_bindings.values() for b in bs if b.key != "enter"]


class RowTable(DataTable, inherit_bindings=False):
    """A DataTable without its own `enter`: the key goes on to the screen's binding. A click
    on the highlighted row still posts RowSelected."""

    BINDINGS = _KEYS
