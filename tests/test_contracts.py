"""The house rules a grep can hold: ruff is clean, the packages import only what DESIGN.md
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
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
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
