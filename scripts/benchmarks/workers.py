"""The measurements that need a fresh process (benchmark 4's peak RSS, the `--malloc_ab` comparison): what each
worker does in its process, and how the parent launches it (through the front script's hidden worker flags)."""

from __future__ import annotations

import gc
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from .measure import peak_rss_kib, reset_peak_rss, rss_kib, seconds
from .workloads import adamw, train_batches, unicl_step

# Workers start as `python scripts/benchmark.py --rss_worker SPEC` does, so they find their modules as the parent did.
FRONT_SCRIPT = Path(__file__).resolve().parents[1] / "benchmark.py"

RSS_VARIANTS = {  # name -> (gradient checkpointing, keep_freed_memory)
    "without": (False, False),
    "with": (True, False),
    "without_keep_freed": (False, True),
}


def run_worker(flag: str, spec: dict, name: str) -> dict:
    """Runs the front script with `flag spec` in a fresh interpreter (same torch threads); its last stdout line is
    the worker's JSON."""
    command = [sys.executable, str(FRONT_SCRIPT), "--threads", str(torch.get_num_threads()), flag, json.dumps(spec)]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{flag} worker ({name}) failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _maybe_keep_freed_memory(spec: dict) -> bool:
    if not spec.get("keep_freed_memory"):
        return False
    from modeling_unicl.utils.runtime import keep_freed_memory

    return keep_freed_memory()


def _model(spec: dict):
    """A fresh `UniCLModel` of `spec["config"]` in training mode (seed 0, SDPA) and its config."""
    from modeling_unicl import UniCLConfig, UniCLModel

    torch.manual_seed(0)
    config = UniCLConfig.from_dict(spec["config"])
    return UniCLModel._from_config(config, attn_implementation="sdpa").train(), config


# ------------------------------------------------------------------------------------------------ peak RSS
def rss_worker(spec: dict) -> dict:
    """In a fresh process: two training steps of `spec`'s config (the first allocates gradients and AdamW's state, the
    second is a steady-state step); RSS before them and the peak during them."""
    from modeling_unicl import UniCLProcessor

    kept = _maybe_keep_freed_memory(spec)
    model, config = _model(spec)
    if spec["checkpointing"]:
        model.activation_checkpointing_enable()
    batch = train_batches(UniCLProcessor(), config, spec["batch"])[spec["padding"]]
    optimizer = adamw(model)
    gc.collect()
    before = rss_kib("VmRSS") or 0
    reset = reset_peak_rss()
    loss = model(input_ids=batch["input_ids"], pixel_values=batch["pixel_values"],
                 attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    loss.backward()
    forward_backward_peak = peak_rss_kib(reset)  # activations + gradients, before any optimizer state exists
    optimizer.step()
    unicl_step(model, optimizer, batch)()
    peak = peak_rss_kib(reset)
    return {"rss_before_mib": before / 1024, "peak_rss_mib": peak / 1024, "step_increase_mib": (peak - before) / 1024,
            "first_forward_backward_increase_mib": (forward_backward_peak - before) / 1024, "peak_reset": reset,
            "keep_freed_memory": kept}


def measure_rss(config, batch: int, padding: str = "77", fresh_processes: bool = True) -> dict[str, dict]:
    """Two steps per variant of `RSS_VARIANTS`, each in its own fresh process, one after the other (side by side they
    would add up to the machine's peak). Checkpointing is compared with glibc's default malloc, as `train.py` runs
    it: `keep_freed_memory` keeps a fragmented heap at its high-water mark and takes back much of what checkpointing
    saves; its own cost is the third variant. `fresh_processes=False` (tests: no interpreter start-up) runs every
    variant here without touching malloc: the schema is the same, the numbers are not comparable."""
    results = {}
    for name, (checkpointing, keep_freed) in RSS_VARIANTS.items():
        spec = {"config": config.to_dict(), "batch": batch, "checkpointing": checkpointing, "padding": padding,
                "keep_freed_memory": keep_freed and fresh_processes}
        results[name] = run_worker("--rss_worker", spec, name) if fresh_processes else rss_worker(spec)
    return results


# ------------------------------------------------------------------------------------------------ malloc A/B
def malloc_worker(spec: dict) -> dict:
    """In a fresh process: `spec["steps"]` timed training steps of `UniCLModel` (77-token inputs) after one untimed
    one, with or without `keep_freed_memory()`; step times and the minor page faults of each step."""
    from modeling_unicl import UniCLProcessor

    kept = _maybe_keep_freed_memory(spec)
    model, config = _model(spec)
    optimizer = adamw(model)
    step = unicl_step(model, optimizer, train_batches(UniCLProcessor(), config, spec["batch"])["77"])
    step()
    times, faults = [], []
    for _ in range(spec["steps"]):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        times.append(seconds(step))
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return {"keep_freed_memory": kept, "step_s": times, "minor_faults": faults}


def malloc_ab(config, batch: int, steps: int) -> dict:
    """`keep_freed_memory()` off vs on, each in a fresh single-model process (as a training run is), one after the
    other; the ratio of median step times."""
    results = {}
    for name, keep in (("off", False), ("on", True)):
        spec = {"config": config.to_dict(), "batch": batch, "steps": steps, "keep_freed_memory": keep}
        results[name] = run_worker("--malloc_worker", spec, f"keep_freed_memory {name}")
    results["speedup_on_vs_off"] = statistics.median(results["off"]["step_s"]) / statistics.median(results["on"]["step_s"])
    return results
