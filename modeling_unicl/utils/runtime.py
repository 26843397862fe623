"""Process-level settings for fast CPU training and inference; opt-in, called by the scripts, never on import.

On Linux, glibc's malloc serves every allocation above 32 MiB with a fresh `mmap` and unmaps it on free. A training
step of Swin-T at batch 32 allocates and frees about 5 GiB of activations, so every step faults in (and zero-fills)
more than a million fresh pages: about a fifth of the image tower's step time (measured by
`scripts/benchmark.py --no_keep_freed_memory`). Keeping freed memory in malloc's heap lets the next step reuse it.
The cost: the heap stays at its high-water mark until the process ends and fragments, so the peak RSS grows (about
12% for that step) and gradient checkpointing saves much less (its step grows from 3.3 to 4.5 GiB): use one or the
other."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

__all__ = ["keep_freed_memory"]

# mallopt(3) parameter numbers (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@functools.lru_cache(maxsize=1)
def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:  # pragma: no cover - a Linux without a loadable libc
        return None


def keep_freed_memory() -> bool:
    """Makes glibc's malloc keep freed memory for reuse instead of returning it to the OS: no `mmap` for large
    blocks (`M_MMAP_MAX=0`) and no trimming of the heap top below 2 GiB (`M_TRIM_THRESHOLD`). Affects the whole
    process from now on. Returns False (and changes nothing) where malloc is not glibc's (macOS, Windows, musl)."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
