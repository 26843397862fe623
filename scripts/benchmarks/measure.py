"""Measurement primitives: wall-clock timing, FLOP counting, profiling, resident memory and what the machine is.
Nothing here knows UniCL; every function takes the code to measure as a callable."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import time
from pathlib import Path

import torch


# ------------------------------------------------------------------------------------------------ time
def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def round_robin(fns: dict, warmup: int, steps: int) -> dict[str, list[float]]:
    """Calls every fn `warmup` times (untimed), then `steps` rounds of one timed call each, in turn (ABAB...)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(steps):
        for name, fn in fns.items():
            times[name].append(seconds(fn))
    return times


def matmul_peak(n: int, reps: int) -> float:
    """Best fp32 GFLOP/s of an n x n @ n x n `torch.matmul` over `reps` runs (after one warm-up)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = min(seconds(lambda: torch.matmul(a, b)) for _ in range(reps))
    return 2 * n**3 / best / 1e9


# ------------------------------------------------------------------------------------------------ counting
def count_flops(fn) -> int:
    """FLOPs of one call (`FlopCounterMode` counts matmuls, convolutions and attention, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


class CountForwards:
    """Counts forward calls of a module (the text tower: one per text batch encoded)."""

    def __init__(self, module):
        self.calls = 0
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        self.calls += 1


def profile_step(step, top: int = 12) -> dict:
    """Top ops by self CPU time of one step, and the share of matrix-multiply / attention kernels."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::") or "Backward" in e.key]
    total = sum(e.self_cpu_time_total for e in prof.key_averages()) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    gemm_words = ("mm", "matmul", "linear", "scaled_dot_product", "conv", "baddbmm")
    gemm = sum(e.self_cpu_time_total for e in prof.key_averages() if any(w in e.key for w in gemm_words))
    return {
        "top_ops": [
            {"op": e.key, "self_cpu_ms": e.self_cpu_time_total / 1e3, "share": e.self_cpu_time_total / total,
             "calls": e.count}
            for e in events[:top]
        ],
        "gemm_share": gemm / total,
        "total_self_cpu_ms": total / 1e3,
    }


# ------------------------------------------------------------------------------------------------ memory
def rss_kib(field: str) -> int | None:
    """A field of /proc/self/status in KiB (`VmRSS`: now, `VmHWM`: the peak); None without /proc."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def reset_peak_rss() -> bool:
    """Resets VmHWM (the peak) to the current RSS (Linux >= 4.0); False where that is not possible."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
        return True
    return False


def peak_rss_kib(reset: bool) -> int:
    """The peak RSS since `reset_peak_rss()` if it succeeded (`reset`), else the peak of the process's whole life."""
    peak = rss_kib("VmHWM") if reset else None
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ------------------------------------------------------------------------------------------------ machine
# CPU flags (Linux /proc/cpuinfo) of bf16 arithmetic in hardware: x86 AVX512-BF16 or AMX, Arm's BF16 extension.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (x86 "flags", Arm "Features"); None where there is no such file."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    return None


def native_bf16(flags: set[str] | None = None) -> bool:
    """Whether this CPU computes bf16 in hardware (`BF16_CPU_FLAGS`; `flags`: `cpu_flags()` by default). Elsewhere
    bf16 autocast is emulated: measured 22x slower than fp32 on an AVX2-only AMD EPYC and 3x slower on an AVX-512
    Xeon without AVX512-BF16, so the bf16 rows would only time the emulation. oneDNN's own check
    (`torch.ops.mkldnn._is_mkldnn_bf16_supported`) says yes on any AVX-512 CPU, emulation included: it is the answer
    only where the flags cannot be read."""
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def load_average() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine_info() -> dict:
    import transformers

    cpu = platform.processor() or "unknown"
    flags = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu in ("unknown", "x86_64", ""):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1]
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "amx_bf16": "amx_bf16" in flags.split(),
        "avx512f": "avx512f" in flags.split(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "load_average_at_start": load_average(),
    }
