"""The README holds up against the program (issue 15: a table broken by a blank line, cells of
790 characters, figures and claims that had drifted): its tables render as tables, every
option it documents exists, and the files, pictures and make targets it names are there."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from core.stages import registry

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
HALO = str(Path(sys.executable).with_name("halo"))
LONGEST_CELL = 300  # characters: a longer note belongs in the text below its table
# `halo stage`'s own options, taken by every stage
STAGE_COMMAND = {"--variant", "--backend", "--force", "--wait", "--json", "--workspace", "--help"}


def _prose(text: str) -> str:
    """The README without its fenced code blocks (output pasted there is not Markdown)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _tables(text: str) -> list[list[str]]:
    """Each run of consecutive lines that start with `|`, outside code blocks."""
    blocks: list[list[str]] = []
    previous = False
    for line in _prose(text).splitlines():
        row = line.startswith("|")
        if row and not previous:
            blocks.append([])
        if row:
            blocks[-1].append(line)
        previous = row
    return blocks


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_every_table_renders_as_one_table_of_short_cells() -> None:
    tables = _tables(README)
    assert len(tables) >= 5
    for table in tables:
        header = _cells(table[0])
        assert len(table) > 2 and re.fullmatch(r"\|( *:?-{3,}:? *\|)+", table[1].strip()), table[0]
        for line in table[2:]:
            cells = _cells(line)
            assert len(cells) == len(header), f"{len(cells)} cells, {len(header)} headers: {line[:120]}"
            assert max(map(len, cells)) <= LONGEST_CELL, f"a cell of {max(map(len, cells))}: {line[:120]}"


def _flags(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))


def test_each_stage_option_it_documents_is_declared() -> None:
    stages = registry()
    documented: dict[str, set[str]] = {}
    for table in _tables(README):
        if _cells(table[0])[:2] != ["stage", "writes"]:
            continue
        for line in table[2:]:
            usage = _cells(line)[0].strip("`")
            documented.setdefault(usage.split()[0], set()).update(_flags(usage))
    for match in re.finditer(r"halo stage ([a-z_]+)([^`\n]*)", README):
        documented.setdefault(match.group(1), set()).update(_flags(match.group(2)))
    assert set(documented) >= {"select", "manifest", "coadds", "inject", "train", "eval", "score", "triage"}
    for name, flags in documented.items():
        assert name in stages, f"the README documents a stage {name!r} that does not exist"
        declared = {p.flag for p in stages[name].params} | STAGE_COMMAND
        assert flags <= declared, f"{name}: {sorted(flags - declared)} are not options of the stage"


@cache
def _help(words: tuple[str, ...]) -> str:
    done = subprocess.run([HALO, *words, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (words, done.stderr)
    return done.stdout


def _commands() -> list[tuple[tuple[str, ...], set[str]]]:
    out = []
    for table in _tables(README):
        if _cells(table[0]) != ["command", "does"]:
            continue
        for line in table[2:]:
            usage = _cells(line)[0].strip("`").replace("\\|", "|")
            words = tuple(re.match(r"halo((?: [a-z]+)*)", usage).group(1).split())
            out.append((words, _flags(usage)))
    return out


def _name(value: object) -> str:
    return " ".join(value) if isinstance(value, tuple) else ""


@pytest.mark.parametrize("words, flags", _commands(), ids=_name)
def test_each_command_and_option_it_documents_exists(words: tuple[str, ...], flags: set[str]) -> None:
    shown = _help(words)
    missing = {f for f in flags if f not in shown}
    assert not missing, f"halo {' '.join(words)}: {sorted(missing)} not in its --help"


def test_the_files_pictures_and_make_targets_it_names_exist() -> None:
    named = set(re.findall(r"\((docs/[^)\s]+)\)", README)) | set(re.findall(r"\b(bench/[\w]+\.py)", README))
    assert any(n.endswith(".svg") for n in named)
    for path in named:
        assert (ROOT / path).is_file(), f"the README names {path}, which is not in the repository"
    targets = set(re.findall(r"^([a-z]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    for target in set(re.findall(r"\bmake ([a-z]+)\b", README)):
        assert target in targets, f"the README says `make {target}`; the Makefile has no such target"
