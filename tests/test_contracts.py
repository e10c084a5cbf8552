"""The house rules a grep can hold: ruff is clean, the packages import only what docs/ARCHITECTURE.md
allows (core neither jobs nor halo_tui; halo_tui never jobs), and the CLI starts without the
heavy libraries (torch, lenstronomy, astropy, pyspark, boto3)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "lenstronomy", "astropy", "pyspark", "boto3", "sklearn", "scipy", "timm")
FORBIDDEN = {"core": ("jobs", "halo_tui"), "halo_tui": ("jobs",)}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module `path` imports, at its top or inside a function, relative imports resolved
    against its own package; `from a import b` counts as both `a` and `a.b` (b may be a module)."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(
                [*package[: len(package) - node.level + 1], *([node.module] if node.module else [])]
            )
            if node.level == 0:
                base = node.module or ""
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_only_what_the_layout_allows(package: str) -> None:
    broken = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, name in _imports(path)
        if name.split(".")[0] in FORBIDDEN[package]
    ]
    assert not broken, "\n".join(broken)


def test_no_stage_imports_another_stage_and_no_library_imports_a_stage() -> None:
    """jobs/stages/ holds one module per stage, each an entry point over the libraries
    (lensing/, survey/, learn/, stats/, runtime/); a stage that needs another's work runs it
    as a process (jobs/runtime/stage.py's run_stage), as the engine does."""
    stages = {
        f"jobs.stages.{p.stem}" for p in (ROOT / "jobs" / "stages").glob("*.py") if p.stem != "__init__"
    }
    broken = []
    for path in sorted((ROOT / "jobs").rglob("*.py")):
        own = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for line, name in _imports(path):
            if name in stages and name != own:
                broken.append(f"{path.relative_to(ROOT)}:{line}: imports the stage {name}")
    assert not broken, "\n".join(broken)


def test_every_jobs_module_lives_in_a_package_named_for_its_concept() -> None:
    """No flat room: jobs/ holds packages only (a newcomer finds an idea by its folder)."""
    loose = sorted(p.name for p in (ROOT / "jobs").glob("*.py") if p.name != "__init__.py")
    assert loose == []
    assert {p.name for p in (ROOT / "jobs").iterdir() if p.is_dir() and not p.name.startswith("_")} == {
        "stages", "lensing", "survey", "mock", "learn", "stats", "runtime"
    }  # fmt: skip


def test_the_jobs_packages_import_one_way() -> None:
    """The packages of jobs/ are layers: no two import each other, however indirectly
    (stages on top; runtime, stats and survey at the bottom), so each can be read without
    the ones above it."""
    import graphlib

    arrows: dict[str, set[str]] = {}
    for path in sorted((ROOT / "jobs").rglob("*.py")):
        here = path.relative_to(ROOT / "jobs").parts[0]
        if here.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jobs."):
                there = node.module.split(".")[1]
                if there != here:
                    arrows.setdefault(here, set()).add(there)
    order = list(graphlib.TopologicalSorter(arrows).static_order())  # CycleError names a cycle
    assert order.index("runtime") < order.index("stages") and order.index("survey") < order.index("lensing")


def test_the_mock_surveys_lens_generator_is_not_reachable_from_injection() -> None:
    """The planted lenses' source model is the mock survey's truth: the injector that a finder
    learns from (the inject stage and everything in lensing/) must not draw its sources from it,
    directly or through another module (a shortcut the realism figures would miss)."""
    reach: dict[str, set[str]] = {}
    for path in sorted((ROOT / "jobs").rglob("*.py")):
        own = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        reach[own] = {name for _, name in _imports(path) if name.startswith("jobs.")}
    seen, todo = set(), ["jobs.stages.inject", *(m for m in reach if m.startswith("jobs.lensing."))]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += sorted(reach.get(module, ()))
    assert not seen & {"jobs.mock.planted_sources", "jobs.mock.survey", "jobs.stages.demo"}


def test_the_files_stages_share_are_named_only_in_the_layout() -> None:
    """core/layout.py names each file one stage writes for others (its *_FILE constants and the
    functions over them); no other module spells one out."""
    from core import layout

    names = {value for key, value in vars(layout).items() if key.endswith("_FILE") and isinstance(value, str)}
    names |= {layout.scores_file(Path(layout.CANDIDATES_FILE)).name, layout.SCORES_SUFFIX}  # the ranking
    assert {"parent.parquet", "manifest.parquet", "candidates.parquet", "candidates.scores.parquet"} <= names
    spelt = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
        for package in ("core", "jobs", "halo_tui")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "core" / "layout.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in names
    ]
    assert spelt == []


def test_the_cli_starts_without_the_heavy_libraries(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")}
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    for args in (
        ["--help"],
        ["jobs", "list", "--json", "-w", str(tmp_path)],
        ["stages", "-w", str(tmp_path)],
    ):
        done = subprocess.run(
            [str(Path(sys.executable).with_name("halo")), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-1000:]
        imported = {
            line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line
        }
        assert not imported & set(HEAVY), (args, sorted(imported & set(HEAVY)))


def test_ruff_is_clean() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run(
        [str(ruff), "check", "--no-cache", str(ROOT)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-3000:]


def _argparse_options(path: Path) -> dict[str, ast.Call]:
    """A stage module's `add_argument` calls, by flag."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found[first.value] = node
    return found


def test_the_engine_is_what_the_console_asks_of_it() -> None:
    """halo_tui types the engine as its protocol (halo_tui/engine_protocol.py): each method
    it names is core.engine.Engine's, with the same parameters and defaults."""
    import inspect

    from core.engine import Engine
    from halo_tui.engine_protocol import ConsoleEngine

    asked = [n for n, v in vars(ConsoleEngine).items() if callable(v) or isinstance(v, property)]
    asked = [n for n in asked if not n.startswith("_")]
    assert {"launch", "cancel", "refresh", "get", "store"} <= set(asked)
    for name in asked:
        theirs, ours = getattr(Engine, name), getattr(ConsoleEngine, name)
        if isinstance(ours, property):
            assert isinstance(theirs, property), name
            continue
        wanted = [(p.name, p.default) for p in inspect.signature(ours).parameters.values()]
        given = [(p.name, p.default) for p in inspect.signature(theirs).parameters.values()]
        assert given == wanted, name
    assert set(ConsoleEngine.__annotations__) <= set(Engine.__annotations__) | {"workspace"}


def test_mypy_is_clean_on_core() -> None:
    """The engine's types hold (pyproject's [tool.mypy], the pydantic plugin): core/ is what
    the console and the stages both stand on."""
    mypy = Path(sys.executable).with_name("mypy")
    done = subprocess.run(
        [str(mypy), "--cache-dir", os.devnull, "core"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]


def test_every_stage_option_is_declared_once_with_its_default() -> None:
    """Each stage's command line (its argparse) and core.stages (the CLI's options, the
    console's launch form, the checks before launch) agree: every option is declared there,
    with the same choices, and no default is written a second time as a literal."""
    from core.stages import SHIPPED

    common = {"--workspace", "--variant", "--force", "--mirror"}
    problems = []
    for stage in SHIPPED:
        path = ROOT / Path(*stage.module.split(".")).with_suffix(".py")
        if stage.name == "demo" or not path.exists():
            continue
        declared = {p.flag: p for p in stage.params}
        for flag, call in _argparse_options(path).items():
            if flag in common:
                continue
            if flag not in declared:
                problems.append(f"{stage.name}: {flag} is not declared in core/stages.py")
                continue
            keywords = {k.arg: k.value for k in call.keywords}
            default = keywords.get("default")
            if isinstance(default, ast.Constant) and default.value is not None:
                if declared[flag].kind != "choice" or default.value != declared[flag].default:
                    problems.append(f"{stage.name}: {flag}'s default {default.value!r} is a second copy")
            choices = keywords.get("choices")
            if isinstance(choices, ast.Tuple | ast.List) and declared[flag].choices:
                if tuple(ast.literal_eval(choices)) != tuple(declared[flag].choices):
                    problems.append(f"{stage.name}: {flag}'s choices differ from the declaration")
    assert problems == []
    by_stage = {s.name: {p.name: p for p in s.params} for s in SHIPPED}
    assert by_stage["inject"]["rows_per_part"].default == by_stage["cutouts"]["rows_per_part"].default
    from jobs.lensing.engines import ENGINES

    assert by_stage["inject"]["engine"].choices == tuple(ENGINES)


STAGE_NAMES = "demo select manifest coadds inject train eval cutouts score triage retrain".split()


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_each_stages_run_takes_its_declared_options_by_name(name: str) -> None:
    """A stage's `run(workspace, [variant,] *, ...)` takes every declared option (but those
    its command line keeps, --mirror and train's --nproc) as a keyword of the same name and
    default: its `main` passes them by name (jobs/runtime/stage.py `entry`), no positional
    list maps them a second time."""
    import importlib
    import inspect

    from core.stages import registry

    stage = registry()[name]
    assert {s.name for s in registry().values() if s.seed_name != "workspace"} == set(STAGE_NAMES)
    module = importlib.import_module(stage.module)
    assert not hasattr(module, "_run_args")
    signature = inspect.signature(module.run)
    positional = [p.name for p in signature.parameters.values() if p.kind is not p.KEYWORD_ONLY]
    assert positional == ["workspace", *(["variant"] if stage.takes_variant else [])]
    keywords = {p.name: p for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY}
    for param in stage.params:
        if param.cli_only:
            assert param.name not in keywords, param.name
            continue
        assert param.name in keywords, f"{name}: run() does not take --{param.name}"
        default = keywords[param.name].default
        if param.required:
            assert default is inspect.Parameter.empty, param.name
        else:
            assert default == param.default, f"{name}: --{param.name} {default!r} against {param.default!r}"
    extra = [k for k, p in keywords.items() if k not in {q.name for q in stage.params}]
    assert all(keywords[k].default is not inspect.Parameter.empty for k in extra), extra  # library-only


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_each_stage_command_line_is_made_from_its_declaration(name: str, monkeypatch) -> None:
    """A stage's argparse (`python -m jobs.<stage> --help`) holds exactly the common options
    and the declared ones, with the declared defaults, choices and types; a value out of the
    declared range is refused by the stage itself (exit 2), as a launch refuses it."""
    import argparse
    import importlib

    from core.stages import registry

    stage = registry()[name]
    module = importlib.import_module(stage.module)
    captured = {}

    def keep(parser, *args, **kwargs):  # the stage's parser, as its main built it
        captured["parser"] = parser
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", keep)
    with pytest.raises(SystemExit):
        module.main([])
    parser = captured["parser"]
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    common = {"workspace"} | ({"variant"} if stage.takes_variant else set())
    assert set(actions) == common | {p.name for p in stage.params}
    for param in stage.params:
        action = actions[param.name]
        if param.kind == "bool":
            assert action.const is True and action.default is False, param.name
            continue
        assert action.default == param.default and action.required == param.required, param.name
        assert tuple(action.choices or ()) == param.choices, param.name
        if param.kind == "int" and param.low is not None:
            with pytest.raises(argparse.ArgumentTypeError, match="out of range"):
                action.type(str(int(param.low) - 1))
            assert action.type(str(int(param.low))) == int(param.low)
    assert parser.description == stage.description
