"""The launch form: stage, variant, backend and options, validated against the config
before it submits."""

from __future__ import annotations

import shlex
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from core.backends import BACKENDS
from core.errors import HaloError
from halo_tui.engine_protocol import ConsoleEngine
from halo_tui.format import visible


class LaunchScreen(ModalScreen[Any]):
    """Stage, variant, backend and options; validated against the config before it submits."""

    DEFAULT_CSS = """
    LaunchScreen { align: center middle; }
    LaunchScreen #launch-row { height: auto; }
    LaunchScreen #launch-error { width: 1fr; height: auto; max-height: 3; overflow-y: auto; padding-left: 2; }
    """  # the button and the reason it refused side by side: at 80×24 a reason under the
    # button pushed it off the dialog

    BINDINGS = [Binding("escape", "app.pop_screen", "Cancel", id="launch.cancel")]

    def __init__(self, engine: ConsoleEngine) -> None:
        super().__init__()
        self.engine = engine

    def compose(self) -> ComposeResult:
        stages = [
            (f"{s.name} — {s.description}", s.name)
            for s in self.engine.stages().values()
            if s.available(self.engine.workspace.root)
        ]
        variants = [(v, v) for v in self.engine.workspace.config.variants]
        with Vertical(id="dialog"):
            yield Label("Launch a stage")
            yield Select(stages, prompt="stage", id="launch-stage")
            yield Select(variants, prompt="variant", id="launch-variant")
            yield Select(
                [(name, name) for name in BACKENDS],
                value=self.engine.workspace.config.backends.default,
                id="launch-backend",
                allow_blank=False,
            )
            yield Input(placeholder="options, e.g. --grid grid_sota --preset demo_cpu", id="launch-options")
            with Horizontal(id="launch-row"):
                yield Button("Launch", variant="primary", id="launch-go")
                yield Static("", id="launch-error")

    class SubmitRequest(Message):
        """Launch asked for by the button: sent through the options box, so that it arrives
        after every key the box still has to process (each widget has its own queue: read
        at once, the box's value could lack the options just typed — they were lost so)."""

    @on(Button.Pressed, "#launch-go")
    def request_submit(self) -> None:
        self.query_one("#launch-options", Input).post_message(self.SubmitRequest())

    @on(Input.Submitted, "#launch-options")
    @on(SubmitRequest)
    def submit(self) -> None:
        stage = _chosen(self.query_one("#launch-stage", Select))
        variant_name = _chosen(self.query_one("#launch-variant", Select))
        backend = _chosen(self.query_one("#launch-backend", Select))
        error = self.query_one("#launch-error", Static)
        if stage is None:
            error.update("[red]choose a stage[/]")
            return
        try:
            params = parse_options(self.engine.stage(stage), self.query_one("#launch-options", Input).value)
            self.engine.validate(stage, variant_name, params, backend)
        except (HaloError, ValueError) as err:
            error.update(Text(visible(str(err)), style="red"))
            return
        self.dismiss((str(stage), variant_name, params, str(backend)))


def _chosen(select: Select[Any]) -> str | None:
    value = select.value
    return None if value in (Select.BLANK, getattr(Select, "NULL", Select.BLANK)) else str(value)


def parse_options(stage: Any, text: str) -> dict[str, Any]:
    """`--name VALUE` pairs (and bare `--flag`s) for a stage, as `halo stage` takes them."""
    words, params, i = shlex.split(text), {}, 0
    while i < len(words):
        if not words[i].startswith("--"):
            raise ValueError(f"unexpected {words[i]!r}: options look like --name VALUE")
        key, eq, value = words[i][2:].partition("=")
        param = stage.param(key)
        if not eq:
            if param.kind == "bool":
                value = "true"
            else:
                i += 1
                if i >= len(words):
                    raise ValueError(f"option {param.flag} needs a value")
                value = words[i]
        params[param.name] = value
        i += 1
    return params
