"""The allocator setting every stage makes: a freed large block is reused, not re-faulted."""

from __future__ import annotations

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
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
before = faults()
rng = np.random.default_rng(0)
for _ in range(100):  # a step's temporaries: four blocks of 128 KiB to 48 MiB, then freed
    blocks = [np.ones(int(n)) for n in rng.integers(1 << 14, 6 << 20, 4)]
    del blocks
print(faults() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_block_is_reused_instead_of_faulted_in_again() -> None:
    def faults(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True, cwd=ROOT
        )
        return int(out.stdout)

    default, kept = faults("default"), faults("kept")
    assert kept < 0.3 * default, (default, kept)  # here: ~48,000 page faults against ~6,000
