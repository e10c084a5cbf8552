"""Fault suite, bad input: every option is checked for type and range before anything runs
(exit 2, one line, no traceback), names and stage paths stay inside the workspace, and a
config file that is not UTF-8 is named, not a traceback. (Issue 11, items 2, 9 and 16.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("stage", "inject", "--variant", "v4_sota", "--supersample", "0"),
            "--supersample: 0 is out of range [3, 33]",
        ),
        (("stage", "train", "--variant", "v4_sota", "--epochs", "-1"), "--epochs: -1 is out of range"),
        (("stage", "coadds", "--variant", "v4_sota", "--workers", "0"), "--workers: 0 is out of range"),
        (("stage", "eval", "--variant", "v4_sota", "--prevalence", "2"), "--prevalence: 2.0 is out of range"),
        (("stage", "eval", "--variant", "v4_sota", "--prevalence", "nan"), "not a finite number"),
        (("stage", "demo", "--bricks", "1.5"), "--bricks: '1.5' is not an integer"),
    ],
)
def test_a_numeric_option_out_of_range_is_refused_before_anything_runs(halo, args, message) -> None:
    done = halo(*args, check=2)
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert halo.json("jobs", "list") == []  # nothing was launched, nothing replaced


@pytest.mark.parametrize("name", ["/abs", "a/b", "..", "x;rm"])
def test_a_run_name_that_is_a_path_is_refused_at_the_command_line(halo, name: str) -> None:
    for stage in ("train", "eval", "score"):
        done = halo("stage", stage, "--variant", "v4_sota", "--run", name, check=2)
        assert "is not a valid name" in done.stderr
    assert halo.json("jobs", "list") == []


def test_a_stage_run_alone_checks_the_same_declared_ranges(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.stages.inject",
            "--workspace",
            str(tmp_path),
            "--variant",
            "v4_sota",
            "--supersample",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "--supersample: 0 is out of range [3, 33]" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("entry", ["../../..", "/usr/lib/python3", "tools/../../x", "~/bin"])
def test_a_workspace_stage_cannot_import_from_outside_the_workspace(halo, entry: str) -> None:
    toml = halo.root / "halo.toml"
    toml.write_text(toml.read_text() + f'\n[stages.escape]\nmodule = "escape"\npythonpath = ["{entry}"]\n')
    done = halo("config", "check", check=2)
    assert "stages.escape.pythonpath" in done.stderr and "inside the workspace" in done.stderr


def test_a_halo_toml_that_is_not_utf8_is_one_line_and_exit_2(halo) -> None:
    (halo.root / "halo.toml").write_bytes(b'[grids.grid_sota]\ndescription = "caf\xe9"\n')
    for args in (("config", "check"), ("stages",), ("stage", "select", "--variant", "v4_sota")):
        done = halo(*args, check=2)
        assert "halo.toml: not UTF-8 text" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_halo_toml_nested_thousands_deep_is_one_line_and_exit_2(halo) -> None:
    """Issue 26, item 10: `a = [[[…]]]` 5,000 deep was a RecursionError of 2,998 lines."""
    (halo.root / "halo.toml").write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    done = halo("config", "check", check=2)
    assert "halo.toml: not valid TOML here: nested too deeply" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
