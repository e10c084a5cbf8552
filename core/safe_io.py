"""Writing the workspace's own files (job store, logs, exit codes, results) safely.

- Never through a link: files are created with O_NOFOLLOW, temporary files with O_EXCL under a
  fresh name, and renamed into place (a rename replaces a planted link itself, not its target).
- Private: folders 0700, files 0600, whatever the umask (job logs and results can hold
  paths, parameters and failure reasons that are nobody else's business); a stage's own
  outputs (a run's checkpoints and metrics, catalogues) take `SHARED_MODE`, the umask's say.

Standard library only: the job wrapper imports it and must start fast."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from core.errors import UsageError

FILE_MODE = 0o600
SHARED_MODE = 0o666  # less the umask: as any file a tool writes for its user's colleagues
DIR_MODE = 0o700
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class UnsafePath(UsageError, OSError):
    """A path the workspace will not write through (a link, or a folder that is a link)."""


def refuse_link(path: Path) -> None:
    """Refuse a file or folder of halo's own that someone made a link (to write, or read,
    elsewhere)."""
    if path.is_symlink():
        raise UnsafePath(f"{path}: is a symbolic link; halo uses its own files only as real files")


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) if needed; refuse it if it is a link; make it 0700."""
    refuse_link(path)
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def create_private(path: Path) -> None:
    """Create an empty private file if there is none; refuse a link in its place."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | _NOFOLLOW, FILE_MODE)
    except OSError as err:
        raise UnsafePath(f"{path}: cannot be created safely ({err.strerror})") from None
    os.close(fd)


def open_append(path: Path | str) -> int:
    """A file descriptor appending to `path` (created 0600), never through a link."""
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, FILE_MODE)
    except OSError as err:
        raise UnsafePath(f"{path}: will not write through it ({err.strerror})") from None


def atomic_write(path: Path | str, data: bytes | str, mode: int = FILE_MODE) -> None:
    """Replace `path` with `data`: a fresh temporary file beside it (never through a link),
    renamed over it; private unless `mode` says otherwise."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    payload = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
