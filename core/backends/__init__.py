"""Where jobs run, behind one interface (core/backends/base.py): `local` (detached processes)
and `emr` (Spark steps on a running cluster)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from core.errors import UsageError

if TYPE_CHECKING:
    from core.backends.base import Backend
    from core.workspace import Workspace

# name -> "module:class"; the config's `backends.default` and every launch are checked here.
DEFAULT_BACKEND = "local"
BACKENDS = {"local": "core.backends.local:LocalBackend", "emr": "core.backends.emr:EmrBackend"}


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    return name


def open_backend(name: str, workspace: Workspace) -> Backend:
    module, cls = BACKENDS[check_backend(name)].split(":")
    return getattr(importlib.import_module(module), cls)(workspace)
