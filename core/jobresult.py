"""How a running stage reports its outputs and summary back to the engine.

The engine gives each job `HALO_RESULT_FILE`; a stage calls `record()` before it exits and
the engine stores the outputs (paths) and the summary with the job once it has ended."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ENV_VAR = "HALO_RESULT_FILE"


def record(outputs: list[str], summary: dict[str, Any] | None = None) -> None:
    """Write the job's result atomically; does nothing when run outside the engine."""
    target = os.environ.get(ENV_VAR)
    if not target:
        return
    from core.safe_io import atomic_write  # never through a planted link, 0600

    atomic_write(target, json.dumps({"outputs": [str(o) for o in outputs], "summary": summary or {}}))


def read(path: Path) -> tuple[list[str], dict[str, Any] | None]:
    """The outputs and summary a job recorded, or nothing if it recorded none (or garbage)."""
    try:
        data = json.loads(path.read_text())
        return [str(o) for o in data.get("outputs", [])], data.get("summary")
    except (OSError, ValueError, AttributeError):
        return [], None
