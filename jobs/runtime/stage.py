"""What every stage shares: its command line, atomic outputs, the up-to-date check, and the
`main` that turns bad input into one clear message and a non-zero exit (never a traceback)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from core import jobresult
from core.errors import DamagedFile, HaloError, UsageError, file_system_failure, naming

EXIT_DATA_ERROR = 1
EXIT_USAGE = 2
STAMP_FILE = "_stage.json"


class StageError(Exception):
    """Bad input data (a corrupt file, a missing column): named, recorded, never a traceback."""


def declaration(stage: str) -> Any:
    """The shipped stage named `stage` as core/stages.py declares it (with --mirror)."""
    from core.stages import registry

    return registry()[stage]


class _OneLine(argparse.ArgumentParser):
    """A bad command line is one line (and exit 2), as `halo` says it: not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def parser(stage: str) -> argparse.ArgumentParser:
    """The stage's command line, made from its declaration: --workspace, --variant where the
    stage takes one, then each declared option (its name, type, range, choices, default and
    help written once, in core/stages.py)."""
    declared = declaration(stage)
    p = _OneLine(prog=f"python -m {declared.module}", description=declared.description)
    p.add_argument(
        "--workspace",
        type=Path,
        default=Path(os.environ.get("HALO_WORKSPACE", ".")),
        help="workspace folder [default: $HALO_WORKSPACE or .]",
    )
    if declared.takes_variant:
        p.add_argument("--variant", required=declared.needs_variant, help="config variant, e.g. v4_sota")
    for param in declared.params:
        param.add_to(p)
    return p


def entry(stage: str, run: Callable[..., dict[str, Any]]) -> Callable[[list[str] | None], int]:
    """A stage's `main`: its command line from its declaration, then `run(workspace,
    [variant,] **options)` with every declared option by name (but --mirror, done here, and
    what the command line keeps for itself, `Param.cli_only`)."""

    def main_of_stage(argv: list[str] | None = None) -> int:
        return main(stage, run, parser(stage).parse_args(argv))

    return main_of_stage


def options_of(stage: str, args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of the stage's `run` from its parsed command line."""
    declared = declaration(stage)
    options = {p.name: getattr(args, p.name) for p in declared.params if not p.cli_only}
    if declared.takes_variant:
        options["variant"] = args.variant
    return options


def run_stage(stage: str, workspace: Path, variant: str | None = None, **options: Any) -> dict[str, Any]:
    """Another stage, run as the engine runs it: a process of its own (a stage never imports
    another), its declared options (None: left out) written by core.stages.Stage.argv, its
    output and errors passed through to this stage's. Returns its summary; a run that fails
    raises StageError with its last line."""
    import subprocess
    import tempfile

    from core.stages import SHIPPED

    declared = next(s for s in SHIPPED if s.name == stage)
    unknown = set(options) - {p.name for p in declared.params}
    if unknown:
        raise ValueError(f"{stage} declares no option {', '.join(sorted(unknown))}")
    argv = declared.argv(workspace, variant, {k: v for k, v in options.items() if v is not None})
    with tempfile.TemporaryDirectory(prefix=f"halo-{stage}-") as folder:
        result = Path(folder) / "result.json"
        sys.stdout.flush()
        done = subprocess.run(
            argv, env={**os.environ, jobresult.ENV_VAR: str(result)}, stderr=subprocess.PIPE, text=True
        )
        sys.stderr.write(done.stderr)
        if done.returncode != 0:
            said = done.stderr.strip().splitlines()
            raise StageError(said[-1] if said else f"{stage} exited with code {done.returncode}")
        _, summary = jobresult.read(result)
    return summary or {}


def declared_default(stage: str, name: str) -> Any:
    """An option's default as `core.stages` declares it: the one place it is written."""
    from core.stages import SHIPPED

    found = next(p for s in SHIPPED if s.name == stage for p in s.params if p.name == name)
    return found.default


def check_cuda(device: str) -> None:
    """Refuse `--device cuda` before launch where torch sees no CUDA device (exit 2)."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: torch sees no CUDA device on this machine")


def main(stage: str, run: Callable[..., dict[str, Any]], args: argparse.Namespace) -> int:
    """Run a stage (`run` with its declared options, `options_of`); print its summary as
    JSON; map errors to exit codes."""
    from jobs.runtime.allocator import keep_freed_memory

    started = time.monotonic()
    keep_freed_memory()
    name = stage
    try:
        check_declared(stage, args)
        summary = run(Path(args.workspace).resolve(), **options_of(stage, args))
    except DamagedFile as err:  # bad input data, named: as a StageError
        print(f"{name}: error: {err}", file=sys.stderr, flush=True)
        return EXIT_DATA_ERROR
    except HaloError as err:
        print(f"{name}: error: {err}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except StageError as err:
        print(f"{name}: error: {err}", file=sys.stderr, flush=True)
        return EXIT_DATA_ERROR
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr, flush=True)
        return 130
    except OSError as err:  # a full disk, a file-size limit, a file gone: the outputs as they were
        said = file_system_failure(err)
        print(f"{name}: error: {said}; nothing was replaced", file=sys.stderr, flush=True)
        return EXIT_DATA_ERROR
    if os.environ.get("RANK", "0") != "0":
        return 0  # a DDP worker: rank 0 reports for the job
    if getattr(args, "mirror", None):
        try:
            mirrored = mirror(Path(args.workspace).resolve(), summary.get("outputs", []), args.mirror)
        except HaloError as err:
            print(f"{name}: error: {err}", file=sys.stderr, flush=True)
            return 3
        summary = {**summary, "outputs": mirrored, "local_outputs": summary.get("outputs", [])}
    summary = {**summary, "seconds": round(time.monotonic() - started, 2)}
    jobresult.record(summary.get("outputs", []), summary)
    print(json.dumps(summary, indent=2, default=str), flush=True)
    return 0


def check_declared(stage: str, args: argparse.Namespace) -> None:
    """The options `core.stages` declares for this stage (type, range, name), checked here
    too: a stage run alone refuses what a launch through halo would (exit 2)."""
    for param in declaration(stage).params:
        value = getattr(args, param.name, None)
        if value is not None and param.kind not in ("bool", "path"):
            param.parse(value)


def mirror(workspace: Path, outputs: list[str], prefix: str) -> list[str]:
    """Upload each output (a file, or a folder's files) to `prefix` + its path in the
    workspace; return the outputs' S3 URIs."""
    from core import storage
    from core.names import check_path

    check_path("--mirror", prefix)
    if not storage.is_s3(prefix):
        raise HaloError(f"--mirror {prefix!r}: not an s3:// prefix")
    uris = []
    for output in outputs:
        local = Path(output)
        relative = (
            local.resolve().relative_to(workspace)
            if local.resolve().is_relative_to(workspace)
            else local.name
        )
        uri = f"{prefix.rstrip('/')}/{relative}"
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        for path in files:
            storage.upload(path, uri if path == local else f"{uri}/{path.relative_to(local)}")
        uris.append(uri)
    print(f"mirrored {len(outputs)} output(s) under {prefix}", flush=True)
    return uris


def load_config(workspace: Path):  # noqa: ANN201 - HaloConfig
    from core.config import load

    return load(workspace.resolve())


def resolve(workspace: Path, variant: str, grid: str | None = None) -> tuple[Any, str]:
    """The workspace's config, checked for the variant, and the grid to use (the variant's
    default unless named), checked too."""
    from core.layout import grid_of
    from core.names import check_name

    config = load_config(workspace)
    check_name("variant", variant)
    if variant not in config.variants:
        raise UsageError(f"unknown variant {variant!r}; known: {', '.join(config.variants)}")
    grid = check_name("grid", grid_of(config, variant, grid))
    if grid not in config.grids:
        raise UsageError(f"unknown grid {grid!r}; known: {', '.join(config.grids)}")
    return config, grid


def fingerprint(*parts: Any) -> str:
    """A stable digest of a stage's inputs (config, input files' sizes and times)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def files_fingerprint(paths: list[Path]) -> list[tuple[str, int, int]]:
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(paths)]


def up_to_date(folder: Path, digest: str, key: str | None = None) -> bool:
    """Whether `folder` was written by a run with the same inputs and still holds what it
    wrote: every file at its recorded size, every parquet file's footer readable. A damaged
    or truncated output is redone, never reported "up to date". `key` is the file name of one
    of several outputs sharing the folder (score's candidates and each catalogue's; eval's
    splits), each with its own inputs. What a killed run left beside it is cleared first
    (`recover`)."""
    recover(folder)
    if not folder.is_dir():
        return False  # never written: nothing to say
    try:
        stamp = json.loads((folder / STAMP_FILE).read_text())
        recorded = stamp["inputs"] if key is None else stamp.get("inputs_by", {}).get(key)
        if recorded != digest or (key is not None and key not in stamp.get("files", {})):
            return False
        for name, size in stamp.get("files", {}).items():
            path = folder / name
            if path.is_symlink() or path.stat().st_size != size:
                print(f"{folder}: {name} changed since it was written: redoing", flush=True)
                return False
            if name.endswith(".parquet"):
                import pyarrow.parquet as pq

                pq.read_metadata(path)
        return True
    except FileNotFoundError as err:
        print(f"{folder}: {Path(str(err.filename)).name} is missing: redoing", flush=True)
        return False
    except Exception:  # noqa: BLE001 - unreadable stamp or parquet footer: redo the output
        return False


def unchanged(what: str) -> None:
    """Say that a stage skipped its work, and how to redo it: the one wording for all."""
    print(f"{what} up to date: the inputs have not changed (--force redoes the work)", flush=True)


def signatures(*paths: Path | str | None) -> list[Any]:
    """The version (size and time, or ETag) of each input that exists, for a fingerprint."""
    from core import storage

    out: list[Any] = []
    for path in paths:
        if path is None:
            out.append(None)
            continue
        try:
            out.append(storage.signature(str(path)))
        except (OSError, HaloError):
            out.append((str(path), "missing"))
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(final: Path) -> None:
    """Clear what a killed run left beside `final`: its temporary folder (removed) and, if it
    died between the two renames of the swap, the previous output (renamed back into place)."""
    for leftover in sorted(final.parent.glob(f".{final.name}.*-*")):
        kind, _, pid = leftover.name.rpartition("-")
        if not pid.isdigit() or _pid_alive(int(pid)):
            continue
        if kind.endswith(".old") and not final.exists():
            leftover.rename(final)
            print(f"restored {final} from an interrupted swap", flush=True)
        elif kind.endswith((".tmp", ".old")):
            shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def atomic_dir(
    final: Path, digest: str, replaces: tuple[str, ...] | None = None, key: str | None = None
) -> Iterator[Path]:
    """Yield a temporary folder beside `final`; on success it replaces `final` in one rename
    (with the inputs' digest and its files' sizes stamped in it); on failure it is removed
    and `final` is untouched. With `replaces` (the names this stage writes), the temporary
    folder starts with `final`'s other files (hard links: never written through), so they
    stay in place; `key` records `digest` as that output's inputs beside the others' (see
    `up_to_date`). What a killed run left behind is cleared first (`recover`)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    recover(final)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    inputs_by: dict[str, str] = {}
    if key is not None:
        try:
            inputs_by = json.loads((final / STAMP_FILE).read_text()).get("inputs_by", {})
        except (OSError, ValueError):
            inputs_by = {}
        inputs_by[key] = digest
    try:
        if replaces is not None and final.is_dir():
            for old in final.iterdir():
                if old.is_file() and not old.is_symlink() and old.name not in (STAMP_FILE, *replaces):
                    try:
                        os.link(old, tmp / old.name)
                    except OSError:
                        shutil.copy2(old, tmp / old.name)
        yield tmp
        files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        stamp = {"inputs": digest, "written": time.time(), "files": files}
        if key is not None:
            stamp["inputs_by"] = inputs_by
        (tmp / STAMP_FILE).write_text(json.dumps(stamp))
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as err:  # named: pyarrow's and a write's own errors carry no file name
        shutil.rmtree(tmp, ignore_errors=True)
        raise naming(err, final) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_parquet(table: Any, path: Path, codec: str = "zstd") -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path, compression=codec)
