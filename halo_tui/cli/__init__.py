"""`halo`: the headless commands (Typer), one module per command group. Bare `halo` opens the
console.

Exit codes: 0 ok, 1 job failed (or cancelled), 2 usage or config error, 3 backend
unreachable, 130 interrupted. `--json` prints machine output on stdout; human output is Rich.
Heavy imports (pydantic, rich, textual) happen inside the commands that need them."""

from __future__ import annotations

import sqlite3
import sys

import typer

from core.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, HaloError
from halo_tui.cli import config, demo, jobs, root, runs, stages  # noqa: F401 - their commands register
from halo_tui.cli.common import app, emit_json

app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(config.config_app, name="config")
app.add_typer(demo.demo_app, name="demo")
app.add_typer(runs.runs_app, name="runs")


def main(argv: list[str] | None = None) -> None:
    """Run `halo`; map user errors to one line (with --json, one JSON object on stdout:
    {"error": ..., "exit": N}) and the documented exit code."""
    args = sys.argv[1:] if argv is None else argv
    try:
        result = app(args=args, prog_name="halo", standalone_mode=False)
        code = result if isinstance(result, int) else EXIT_OK
    except HaloError as err:
        code = _error(str(err), err.exit_code, args)
    except sqlite3.DatabaseError as err:  # the store, locked or damaged after it was opened
        from core.store import unusable

        failure = unusable(err)
        code = _error(str(failure), failure.exit_code, args)
    except OSError as err:  # the file system said no (a read-only workspace, say): name the file
        code = _error(_file_system(err), EXIT_USAGE, args)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.TyperException as exc:  # the command line did not parse: one line, not usage
        command = getattr(getattr(exc, "ctx", None), "command_path", "halo")
        code = _error(f"{exc.format_message().rstrip('.')} (see {command} --help)", EXIT_USAGE, args)
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("interrupted", err=True)
        code = EXIT_INTERRUPTED
    sys.exit(code)


def _file_system(err: OSError) -> str:
    """An OSError in one line: the file, what the system said, and what halo needs."""
    import errno

    from core.errors import file_system_failure

    said = file_system_failure(err)
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{said}: halo writes its store and logs in the workspace (.halo/); use a writable one"
    if err.errno == errno.ENOSPC:
        return f"{said}: free some space and run it again"
    return said


def _error(message: str, code: int, args: list[str]) -> int:
    """A user error: `halo: error: …` on stderr, or with --json one object on stdout."""
    if "--json" in args:
        emit_json({"error": message, "exit": code})
    else:
        typer.echo(f"halo: error: {message}", err=True)
    return code
