"""A workspace: a folder with an optional `halo.toml`, its job store and job logs in `.halo/`."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from core import layout
from core.errors import UsageError
from core.safe_io import refuse_link
from core.store import Store

if TYPE_CHECKING:
    from core.config import HaloConfig

ENV_VAR = "HALO_WORKSPACE"


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @classmethod
    def resolve(cls, path: str | Path | None = None, create: bool = False) -> Workspace:
        """The workspace named by `path`, else $HALO_WORKSPACE, else the current folder."""
        chosen = Path(path or os.environ.get(ENV_VAR) or ".").expanduser()
        if create:
            chosen.mkdir(parents=True, exist_ok=True)
        if not chosen.is_dir():
            raise UsageError(f"workspace {str(chosen)!r} is not a folder")
        return cls(chosen)

    @property
    def halo_dir(self) -> Path:
        return layout.halo_dir(self.root)

    @property
    def logs_dir(self) -> Path:
        return layout.logs_dir(self.root)

    @property
    def has_store(self) -> bool:
        """Whether this folder is a workspace yet: its job store exists (halo creates it on the
        first launch, never on a look)."""
        refuse_link(self.halo_dir)  # a planted `.halo` link is refused on a look too
        return layout.store_path(self.root).is_file()

    @property
    def in_use(self) -> bool:
        """Whether the folder shows any sign of being a workspace: a job store, a `halo.toml`
        or stage outputs (a stage run alone, `python -m jobs.stages.score`, writes no store)."""
        return (
            self.has_store
            or (self.root / layout.WORKSPACE_FILE).is_file()
            or layout.data_dir(self.root).is_dir()
        )

    def not_yet(self) -> str:
        """What to say where a look finds no workspace: where it looked, and where to go (a
        demo workspace beside it, the flag and the variable)."""
        text = f"{self.root} is not a halo workspace yet (no .halo/ there: nothing was launched here)"
        demo = self.root / layout.DEMO_DIR
        if layout.store_path(demo).is_file():
            text += f"; the demo's workspace is {demo}: halo -w {layout.DEMO_DIR}"
        return text + f"; choose one with -w DIR or ${ENV_VAR}"

    @cached_property
    def store(self) -> Store:
        """The job store, created (with `.halo/`) on first use."""
        return Store(layout.store_path(self.root))

    @cached_property
    def config(self) -> HaloConfig:
        from core.config import load  # pydantic is imported only when config is needed

        return load(self.root)
