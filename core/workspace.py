"""A workspace: a folder with an optional `halo.toml`, its job store and job logs in `.halo/`."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from core import layout
from core.errors import UsageError
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

    @cached_property
    def store(self) -> Store:
        return Store(self.halo_dir / "halo.db")

    @cached_property
    def config(self) -> HaloConfig:
        from core.config import load  # pydantic is imported only when config is needed

        return load(self.root)
