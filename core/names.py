"""Validation of names and paths before they reach a command line, S3 key or file system."""

from __future__ import annotations

import re

from core.errors import UsageError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_VALUE = re.compile(r"^[A-Za-z0-9_.,:=+@%/-]{1,1024}$")


def check_name(kind: str, value: str) -> str:
    """Return `value` if it is a safe name (variant, grid, preset, stage), else raise."""
    if not is_name(value):
        raise UsageError(
            f"{kind} {value!r} is not a valid name: use letters, digits, '_', '-' and '.' "
            "(at most 64, starting with a letter or digit)"
        )
    return value


def is_name(value: str) -> bool:
    """Whether `value` passes `check_name` (a folder named otherwise is no run, variant …: a
    stage's hidden staging folder, say)."""
    return isinstance(value, str) and bool(_NAME.match(value)) and ".." not in value


def check_module(value: str) -> str:
    """Return `value` if it is a dotted Python module name, else raise."""
    if not _MODULE.match(value):
        raise UsageError(f"module {value!r} is not a dotted Python module name")
    return value


def check_path(kind: str, value: str) -> str:
    """Return `value` if it is a path, glob or `s3://` URI free of `..`, control and shell
    characters and leading dashes, else raise. Relative paths are resolved in the workspace."""
    parts = value.removeprefix("s3://").split("/")
    if (
        not value
        or value.startswith("-")
        or ".." in parts
        or any(ord(ch) < 32 or ch in "\\;&|`$<>'\"" for ch in value)
    ):
        raise UsageError(
            f"{kind} {value!r} is not an acceptable path (no '..', no control or shell characters)"
        )
    return value


def check_value(kind: str, value: str) -> str:
    """Return a free-form option value if it holds only plain characters, else raise."""
    if not _VALUE.match(value) or value.startswith("-") or ".." in value.split("/"):
        raise UsageError(f"{kind} {value!r} holds characters that are not allowed")
    return value
