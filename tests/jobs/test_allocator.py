"""The allocator setting every stage makes: a freed large block is reused, not re-faulted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # the checkout, whose jobs/ the script imports
SCRIPT = """
import resource, sys
import numpy as np
if sys.argv[1] == "kept":
    from jobs.runtime.allocator import keep_freed_memory
    if not keep_freed_memory():
        print("unset")
        sys.exit()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
before = faults()
rng = np.random.default_rng(0)
for _ in range(40):  # a step's temporaries: four blocks of 128 KiB to 48 MiB, then freed
    blocks = [np.ones(int(n)) for n in rng.integers(1 << 14, 6 << 20, 4)]
    del blocks
print(faults() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.skipif("malloc" in os.environ.get("LD_PRELOAD", ""), reason="another allocator preloaded")
def test_a_freed_block_is_reused_instead_of_faulted_in_again() -> None:
    # 4 KiB pages in both runs: huge pages numpy asks for may be granted to one run and not the other
    env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0"}

    def faults(mode: str) -> str:
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT, mode],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=env,
        )
        return out.stdout.strip()

    kept = faults("kept")
    if kept == "unset":
        pytest.skip("this C library takes no mallopt thresholds (not glibc)")
    default = faults("default")
    assert int(kept) < 0.2 * int(default), (default, kept)  # here: ~690,000 page faults against ~47,000


def test_every_stage_sets_it_before_its_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """stage_runtime.main, every stage's entry, sets the allocator before the stage runs."""
    import argparse

    from jobs.runtime import allocator
    from jobs.runtime import stage as stage_runtime

    order: list[str] = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: order.append("allocator") or True)
    monkeypatch.setattr(stage_runtime, "check_declared", lambda *_: None)
    monkeypatch.setattr(stage_runtime.jobresult, "record", lambda *_: None)
    args = argparse.Namespace(workspace=".", run="r", out=None, mirror=None)
    assert stage_runtime.main("triage", lambda *_, **__: order.append("work") or {"outputs": []}, args) == 0
    assert order == ["allocator", "work"]


RELEASE = """
import sys
import numpy as np
from jobs.runtime.allocator import keep_freed_memory, release_freed_memory
def rss_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) // 1024
if not keep_freed_memory():
    print("unset")
    sys.exit()
block = np.ones(200 << 17)  # 200 MiB from the heap, touched
kept = rss_mb()
del block
freed = rss_mb()
release_freed_memory()
print(kept, freed, rss_mb())
"""


def test_score_gives_the_streams_freed_blocks_back() -> None:
    """What keep_freed_memory keeps, release_freed_memory (score calls it once its stream of
    stamp batches ends) gives back: the ranking after it starts from what is live."""
    done = subprocess.run(
        [sys.executable, "-c", RELEASE], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True
    )
    if done.stdout.strip() == "unset":
        pytest.skip("this C library takes no mallopt thresholds (not glibc)")
    kept, freed, released = map(int, done.stdout.split())
    assert freed > kept - 50  # kept in the process after it was freed
    assert released < freed - 150  # and given back
