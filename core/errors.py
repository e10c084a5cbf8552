"""User-facing errors and the exit codes the CLI maps them to."""

from __future__ import annotations

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_BACKEND = 3
EXIT_INTERRUPTED = 130


class HaloError(Exception):
    """An error a user can act on: shown as one message, never as a traceback."""

    exit_code = EXIT_USAGE


class UsageError(HaloError):
    """Bad arguments: unknown names, hostile strings, refused launches."""


class DamagedFile(HaloError):
    """An input file that cannot be read as what it should be (a truncated parquet file)."""

    exit_code = EXIT_JOB_FAILED


class StoreError(HaloError):
    """A workspace store that cannot be used: damaged, locked, newer than this halo, a link."""


class ConfigError(HaloError):
    """A config file that cannot be read or does not validate."""


class BackendUnreachable(HaloError):
    """A backend (EMR, S3) that cannot be reached."""

    exit_code = EXIT_BACKEND


class IllegalTransition(HaloError):
    """A job state change the state machine does not allow."""


def file_system_said(err: OSError) -> str:
    """What the file system said, in words, whoever wrapped it (pyarrow puts the errno's
    text in its message and none in `errno`)."""
    import errno

    said = {errno.ENOSPC: "no space left on the device", errno.EFBIG: "file too large for the size limit"}
    if err.errno in said:
        return said[err.errno]
    text = str(err)
    for code, words in (("No space left", said[errno.ENOSPC]), ("File too large", said[errno.EFBIG])):
        if code in text:
            return words
    if err.strerror:
        return err.strerror
    return text.strip().splitlines()[0][:200] if text.strip() else type(err).__name__


def naming(err: OSError, path: object) -> OSError:
    """`err` naming `path` where it names no file (a write's own error, pyarrow's, astropy's
    carry none): raise it `from None` in its place."""
    if err.filename:
        return err
    return OSError(err.errno, err.strerror or str(err), str(path))


def file_system_failure(err: OSError) -> str:
    """An OSError in words: the file, when the error names one, and what the system said."""
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{file_system_said(err)}"
