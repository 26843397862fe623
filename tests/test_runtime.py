"""`keep_freed_memory`: after it, a large block freed and allocated again reuses pages instead of faulting in new
ones. Runs in a fresh interpreter: the setting is process-wide."""

import json
import platform
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

PROBE = """
import json, resource, sys
sys.path.insert(0, {root!r})
import torch
from modeling_unicl.utils.runtime import keep_freed_memory

applied = keep_freed_memory() if sys.argv[1] == "on" else None

def faults_of_allocation():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones(64 * 2**20)  # 256 MiB, written: every page touched
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

# the first times the pages are new either way (and small allocations may settle above the freed block)
print(json.dumps({{"applied": applied, "faults": min(faults_of_allocation() for _ in range(5))}}))
"""


def probe(mode):
    out = subprocess.run([sys.executable, "-c", PROBE.format(root=str(REPO_ROOT)), mode],
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc malloc only")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    default, kept = probe("off"), probe("on")
    pages = 256 * 2**20 // 4096
    assert default["faults"] > pages // 2  # glibc unmapped the block: every allocation faults every page again
    assert kept["applied"] is True
    assert kept["faults"] < pages // 20  # reused: (almost) no new pages
