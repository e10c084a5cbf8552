"""What the console asks of the engine (core/engine.py `Engine`), and nothing more: the screens
and the CLI are typed against this, so a change of the engine that breaks the console is a
type error (`Engine` satisfies it; tests/halo_tui/test_app.py checks it does)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from core.backends.base import Backend
    from core.stages import Stage
    from core.store import Job, Store
    from core.workspace import Workspace


class ConsoleEngine(Protocol):
    """Launch, follow and cancel jobs in a workspace; its store, config and logs."""

    workspace: Workspace
    remote_error: str | None

    @property
    def store(self) -> Store: ...

    def backend(self, name: str) -> Backend: ...

    def job_log(self, job_id: int) -> Path: ...

    def stages(self) -> dict[str, Stage]: ...

    def stage(self, name: str) -> Stage: ...

    def validate(
        self, stage_name: str, variant: str | None, params: dict[str, Any], backend: str | None
    ) -> tuple[Stage, str | None, dict[str, Any], str]: ...

    def launch(
        self,
        stage_name: str,
        variant: str | None = None,
        params: dict[str, Any] | None = None,
        backend: str | None = None,
        force: bool = False,
    ) -> Job: ...

    def fetch_logs(self, job: Job) -> bool: ...

    def refresh(self, remote: bool = True, strict: bool = True) -> list[Job]: ...

    def get(self, job_id: int, patient: bool = True) -> Job: ...

    def wait(
        self,
        job_id: int,
        poll: float = 0.2,
        on_change: Callable[[Job], None] | None = None,
        stop: Any = None,
    ) -> Job: ...

    def cancel(self, job_id: int) -> Job: ...
