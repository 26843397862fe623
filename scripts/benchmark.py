#!/usr/bin/env python
"""UniCL speed on CPU. Every figure is a ratio against a named peer measured in the same run (no absolute claims).

    python scripts/benchmark.py [--quick] [--json PATH] [--num_classes N] [--templates N] [--threads N]
                                [--keep_freed_memory on|off] [--bf16 auto|on|off]
    python scripts/benchmark.py --malloc_ab STEPS     # keep_freed_memory off vs on, fresh single-model processes

1. Zero-shot with many classes: our `ZeroShotClassifier` (class matrix built once from class x template prompts,
   then per image batch one image forward + one matmul) vs transformers' `pipeline("zero-shot-image-classification")`
   with a same-size `CLIPModel` (ViT-B/32 vision, 12-layer 512-wide text; random weights), and the same pipeline on
   our UniCL model saved to a folder (its text-feature cache: the first call encodes the labels, later calls 0 text
   forwards, counted with a forward hook on `model.text_model`). Images/s include image preprocessing on both sides.
   The three are timed round-robin (ours, CLIP pipeline, cached pipeline, ours, ...), medians.
2. Training step (forward + backward + fused AdamW, fp32, SDPA): `UniCLModel` + `unicl_loss` vs the same towers in
   `transformers.VisionTextDualEncoderModel` with its CLIP loss, on identical 77-token inputs; ours on the same
   captions padded to the longest (as `UniCLCollator` does) vs the dual encoder on 77 tokens (transformers'
   contrastive example pads to a fixed length); ours with `trim_text_padding` off; both models under bf16 autocast
   (only on a CPU with native bf16 unless `--bf16 on`: elsewhere autocast emulates it, many times slower than fp32).
   Steps are interleaved round-robin (A B C D A B C D ...) after warm-up steps, so machine drift hits every variant
   alike; medians. Steps are profiled with `torch.profiler` (top ops by self CPU time) before anything else.
3. FLOPs of one training step (`FlopCounterMode`) / step time, as a fraction of a large fp32 `torch.matmul`'s rate
   (measured before, between and after the rest; the highest counts).
4. Peak RSS of two training steps (the first allocates AdamW's state) without vs with
   `gradient_checkpointing_enable()`, each in a fresh subprocess with glibc's default malloc, and once more without
   checkpointing under `keep_freed_memory()` (what the speed setting costs in memory).

Everything else runs with `modeling_unicl.utils.runtime.keep_freed_memory()` (glibc keeps freed memory for reuse), as
`scripts/train.py` does by default; `--keep_freed_memory off` measures without. It applies to every model alike.

`--quick` (<= 3 minutes on 2 cores) uses fewer classes and templates, a smaller batch and fewer steps; the JSON says
which settings ran (`settings`)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

GOALS = {  # figure -> minimum value the issue asks for
    "zero_shot_speedup_vs_pipeline": 100.0,
    "train_step_ratio_vs_dual_encoder": 1.0,
    "train_step_ratio_padded_to_longest_vs_77": 1.5,
    "flops_fraction_of_peak": 0.40,
    "grad_checkpointing_rss_reduction": 0.30,
}


@dataclass
class Settings:
    mode: str
    num_classes: int  # zero-shot candidate labels
    num_templates: int  # prompt templates per class for our classifier (the pipeline takes one template)
    zero_shot_batch: int  # images per batch for our classifier
    zero_shot_reps: int
    pipeline_images: int  # images timed through the pipelines (one call per image)
    train_batch: int
    warmup_steps: int  # per variant, not timed
    train_steps: int  # timed steps per variant
    matmul_size: int
    matmul_reps: int


FULL = Settings("full", 1000, 80, 32, 3, 2, 32, 1, 5, 4096, 5)
QUICK = Settings("quick", 100, 4, 4, 2, 1, 4, 1, 2, 2048, 3)


# ------------------------------------------------------------------------------------------------ timing helpers
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


def figure(ours: float, peer: float, peer_name: str, unit: str, **extra) -> dict:
    """One measured figure: ours, the peer measured in the same run, ratio = ours / peer (higher is better)."""
    ratio = ours / peer if ours is not None and peer else None
    return {"ours": ours, "peer": peer, "peer_name": peer_name, "unit": unit, "ratio": ratio, **extra}


def with_goal(name: str, fig: dict, value: float | None) -> dict:
    return {**fig, "value": value, "goal": GOALS[name], "goal_met": value is not None and value >= GOALS[name]}


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
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# ------------------------------------------------------------------------------------------------ models and data
def unicl_config(**overrides):
    from modeling_unicl import UniCLConfig

    return UniCLConfig(**overrides)  # paper's Swin-T 224 px + 12-layer 512-wide CLIP text tower


def clip_config(text_config: dict, image_size: int = 224, **vision_overrides):
    """A CLIP with ViT-B/32-sized vision and the given text tower (UniCL's by default)."""
    from transformers import CLIPConfig

    vision = {**dict(image_size=image_size, patch_size=32, hidden_size=768, intermediate_size=3072,
                     num_hidden_layers=12, num_attention_heads=12), **vision_overrides}
    return CLIPConfig(vision_config=vision, text_config=text_config, projection_dim=512)


def dual_encoder(config):
    """`VisionTextDualEncoderModel` built from the same tower configs as a UniCL config (same projection dim)."""
    from transformers import AutoConfig, VisionTextDualEncoderConfig, VisionTextDualEncoderModel

    vision = AutoConfig.for_model(**config.vision_config.to_dict())
    text = AutoConfig.for_model(**config.text_config.to_dict())
    dual_config = VisionTextDualEncoderConfig.from_vision_text_configs(vision, text, projection_dim=config.projection_dim)
    dual_config._attn_implementation = "sdpa"
    return VisionTextDualEncoderModel(config=dual_config)


@functools.lru_cache(maxsize=1)
def word_list() -> tuple[str, ...]:
    """Real English words: the CLIP BPE vocabulary's whole-word alphabetic tokens, in merge (≈ frequency) order."""
    from modeling_unicl.processing_unicl import clip_bpe_vocab_and_merges

    vocab, _ = clip_bpe_vocab_and_merges()
    words = [t[:-4] for t in vocab if t.endswith("</w>") and t[:-4].isalpha() and t[:-4].islower()]
    return tuple(w for w in words if len(w) >= 4)


def class_names(n: int) -> list[str]:
    """n distinct, ImageNet-like names: one or two real words ("harbor", "golden tiger")."""
    words = word_list()[200:]  # skip the most frequent function words
    return [words[i] if i % 3 else f"{words[i]} {words[i + n]}" for i in range(n)]


def random_images(n: int, seed: int = 0, size=(320, 256)):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


def captions(n: int, seed: int = 0, min_words: int = 5, max_words: int = 15) -> list[str]:
    """'a photo of' + 5-15 real words: 10-20 CLIP tokens with start/end tokens, like web captions."""
    rng = np.random.default_rng(seed)
    words = list(word_list()[:5000])
    return [
        "a photo of " + " ".join(rng.choice(words, int(rng.integers(min_words, max_words + 1))))
        for _ in range(n)
    ]


def train_batches(processor, config, batch_size: int, seed: int = 0) -> dict[str, dict]:
    """The same images and captions, collated by `UniCLCollator` (padded to the longest caption) and padded to 77."""
    from modeling_unicl.data.dataset import UniCLCollator

    g = torch.Generator().manual_seed(seed)
    vision = config.vision_config
    pixels = torch.randn(batch_size, vision.num_channels, vision.image_size, vision.image_size, generator=g)
    texts = captions(batch_size, seed)
    samples = [{"pixel_values": p, "text": t, "labels": i} for i, (p, t) in enumerate(zip(pixels, texts))]
    longest = UniCLCollator(processor)(samples)
    context = config.text_config.max_position_embeddings
    tokens = processor.tokenizer(texts, padding="max_length", truncation=True, max_length=context, return_tensors="pt")
    padded = {**longest, "input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}
    return {"longest": longest, "77": padded}


# ------------------------------------------------------------------------------------------------ training step
def training_step(model, optimizer, forward_kwargs: dict, autocast_dtype=None):
    """A closure running one step: zero grads, forward (under CPU autocast if `autocast_dtype`), backward, optimizer."""

    def step():
        optimizer.zero_grad(set_to_none=True)
        ctx = torch.autocast("cpu", dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
        with ctx:
            loss = model(**forward_kwargs).loss
        loss.backward()
        optimizer.step()
        return loss

    return step


def _inputs(batch) -> dict:
    return {"input_ids": batch["input_ids"], "pixel_values": batch["pixel_values"],
            "attention_mask": batch["attention_mask"]}


def unicl_step(model, optimizer, batch, autocast_dtype=None):
    """One step of `UniCLModel` + `unicl_loss` (labels given: every pair its own label, as a caption batch)."""
    return training_step(model, optimizer, {**_inputs(batch), "labels": batch["labels"]}, autocast_dtype)


def dual_encoder_step(model, optimizer, batch, autocast_dtype=None):
    """One step of `VisionTextDualEncoderModel` with its built-in CLIP loss (`return_loss=True`)."""
    return training_step(model, optimizer, {**_inputs(batch), "return_loss": True}, autocast_dtype)


def adamw(model):
    """Fused AdamW: what transformers' Trainer uses by default (`optim="adamw_torch_fused"`), for both models."""
    return torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.05, fused=True)


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


def tower_times(model, batch) -> dict:
    """Forward + backward time of each tower alone (which tower the step's time goes to)."""

    def image():
        model.zero_grad(set_to_none=True)
        model.get_image_features(pixel_values=batch["pixel_values"]).pooler_output.sum().backward()

    def text():
        model.zero_grad(set_to_none=True)
        model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output.sum().backward()

    times = round_robin({"image_tower_s": image, "text_tower_s": text}, 0, 1)  # kernels warmed by the steps before
    model.zero_grad(set_to_none=True)
    return {name: t[0] for name, t in times.items()}


def count_flops(step) -> int:
    """FLOPs of one step (forward + backward; `FlopCounterMode` counts matmuls, convolutions and attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())


def matmul_peak(n: int, reps: int) -> float:
    """Best fp32 GFLOP/s of an n x n @ n x n `torch.matmul` over `reps` runs (after one warm-up)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = min(seconds(lambda: torch.matmul(a, b)) for _ in range(reps))
    return 2 * n**3 / best / 1e9


class Untrimmed(contextlib.ContextDecorator):
    """Runs a `UniCLModel` step with `config.trim_text_padding` off (the text tower sees every padding token)."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.previous = self.model.config.trim_text_padding
        self.model.config.trim_text_padding = False

    def __exit__(self, *exc):
        self.model.config.trim_text_padding = self.previous


def native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX; oneDNN's own check). Elsewhere bf16 autocast is
    emulated: measured 22x slower than fp32 on an AVX2-only AMD EPYC, so the bf16 rows would only time the emulation
    (and take most of the run)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def bench_train(config, processor, settings: Settings, bf16: bool = True) -> dict:
    """Round-robin steps of: ours and the dual encoder on identical 77-token inputs, ours without cutting the
    padding, ours padded to the longest caption (the collator), and (with `bf16`) both models under bf16 autocast."""
    from modeling_unicl import UniCLModel

    torch.manual_seed(0)
    ours = UniCLModel._from_config(config, attn_implementation="sdpa").train()
    peer = dual_encoder(config).train()
    ours_opt, peer_opt = adamw(ours), adamw(peer)
    batches = train_batches(processor, config, settings.train_batch)
    steps = {
        "ours_77": unicl_step(ours, ours_opt, batches["77"]),
        "dual_encoder_77": dual_encoder_step(peer, peer_opt, batches["77"]),
        "ours_77_untrimmed": Untrimmed(ours)(unicl_step(ours, ours_opt, batches["77"])),
        "ours_longest": unicl_step(ours, ours_opt, batches["longest"]),
    }
    if bf16:
        steps["ours_longest_bf16_autocast"] = unicl_step(ours, ours_opt, batches["longest"], torch.bfloat16)
        steps["dual_encoder_77_bf16_autocast"] = dual_encoder_step(peer, peer_opt, batches["77"], torch.bfloat16)
    steps["ours_77_untrimmed"]()  # first call allocates optimizer state: keep it out of the profile
    profile = profile_step(steps["ours_77_untrimmed"])
    with Untrimmed(ours):
        profile["towers_77_untrimmed"] = tower_times(ours, batches["77"])
    steps["ours_77"]()
    profile["towers_77_untrimmed"]["adamw_step_s"] = seconds(ours_opt.step)  # the optimizer alone
    profile["after_trimming"] = profile_step(steps["ours_77"])
    flops = {name: count_flops(steps[name]) for name in ("ours_77", "dual_encoder_77", "ours_longest")}
    times = round_robin(steps, settings.warmup_steps, settings.train_steps)
    median = {name: statistics.median(t) for name, t in times.items()}
    batch = settings.train_batch
    ips = {name: batch / t for name, t in median.items()}
    attn = {"ours_text": ours.text_model.config._attn_implementation,
            "ours_vision": ours.vision_model.config._attn_implementation,
            "dual_encoder_text": peer.text_model.config._attn_implementation,
            "dual_encoder_vision": peer.vision_model.config._attn_implementation}
    del ours, peer, ours_opt, peer_opt, steps
    gc.collect()
    return {
        "images_per_s": ips,
        "step_s": times,
        "median_step_s": median,
        "flops_per_step": flops,
        "text_tokens": {"77": int(batches["77"]["input_ids"].shape[1]),
                        "longest": int(batches["longest"]["input_ids"].shape[1])},
        "attn_implementation": attn,
        "profile": profile,
    }


# ------------------------------------------------------------------------------------------------ peak RSS
def _rss_kib(field: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _peak_kib(reset: bool) -> int:
    peak = _rss_kib("VmHWM") if reset else None
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc: whole life


def _maybe_keep_freed_memory(spec: dict) -> bool:
    if not spec.get("keep_freed_memory"):
        return False
    from modeling_unicl.utils.runtime import keep_freed_memory

    return keep_freed_memory()


def rss_worker(spec: dict) -> dict:
    """In a fresh process: two training steps of `spec`'s config (the first allocates gradients and AdamW's state, the
    second is a steady-state step); RSS before them and the peak during them."""
    import warnings

    from modeling_unicl import UniCLConfig, UniCLModel, UniCLProcessor

    kept = _maybe_keep_freed_memory(spec)
    torch.manual_seed(0)
    config = UniCLConfig.from_dict(spec["config"])
    model = UniCLModel._from_config(config, attn_implementation="sdpa").train()
    if spec["checkpointing"]:
        with warnings.catch_warnings():  # transformers 5 renames it activation_checkpointing_enable (same thing)
            warnings.simplefilter("ignore", FutureWarning)
            model.gradient_checkpointing_enable()
    batch = train_batches(UniCLProcessor(), config, spec["batch"])[spec["padding"]]
    optimizer = adamw(model)
    gc.collect()
    before = _rss_kib("VmRSS") or 0
    reset = False
    with contextlib.suppress(OSError):  # resets VmHWM (the peak) to the current RSS (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    loss = model(input_ids=batch["input_ids"], pixel_values=batch["pixel_values"],
                 attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    loss.backward()
    forward_backward_peak = _peak_kib(reset)  # activations + gradients, before any optimizer state exists
    optimizer.step()
    unicl_step(model, optimizer, batch)()
    peak = _peak_kib(reset)
    return {"rss_before_mib": before / 1024, "peak_rss_mib": peak / 1024, "step_increase_mib": (peak - before) / 1024,
            "first_forward_backward_increase_mib": (forward_backward_peak - before) / 1024, "peak_reset": reset,
            "keep_freed_memory": kept}


def run_worker(flag: str, spec: dict, name: str) -> dict:
    """Runs this script with `flag spec` in a fresh interpreter (same torch threads); its last stdout line is JSON."""
    command = [sys.executable, str(Path(__file__).resolve()), "--threads", str(torch.get_num_threads()),
               flag, json.dumps(spec)]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{flag} worker ({name}) failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


RSS_VARIANTS = {  # name -> (gradient checkpointing, keep_freed_memory)
    "without": (False, False),
    "with": (True, False),
    "without_keep_freed": (False, True),
}


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
        if not fresh_processes:
            results[name] = rss_worker(spec)
            continue
        results[name] = run_worker("--rss_worker", spec, name)
    return results


def malloc_worker(spec: dict) -> dict:
    """In a fresh process: `spec["steps"]` timed training steps of `UniCLModel` (77-token inputs) after one untimed
    one, with or without `keep_freed_memory()`; step times and the minor page faults of each step."""
    from modeling_unicl import UniCLConfig, UniCLModel, UniCLProcessor

    kept = _maybe_keep_freed_memory(spec)
    torch.manual_seed(0)
    config = UniCLConfig.from_dict(spec["config"])
    model = UniCLModel._from_config(config, attn_implementation="sdpa").train()
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


# ------------------------------------------------------------------------------------------------ zero-shot
class CountForwards:
    """Counts forward calls of a module (the text tower: one per text batch encoded)."""

    def __init__(self, module):
        self.calls = 0
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        self.calls += 1


def bench_zero_shot(config, processor, clip_cfg, settings: Settings, workdir: Path, bf16: bool = True) -> dict:
    from transformers import CLIPModel, pipeline
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from modeling_unicl import UniCLModel
    from modeling_unicl.processing_unicl import build_clip_tokenizer
    from modeling_unicl.prompts import IMAGENET_TEMPLATES
    from modeling_unicl.evaluation.zero_shot import ZeroShotClassifier

    names = class_names(settings.num_classes)
    templates = list(IMAGENET_TEMPLATES[: settings.num_templates])
    pipe_template = "a photo of a {}."
    images = random_images(settings.zero_shot_batch, seed=1)
    rounds = max(2, settings.zero_shot_reps, settings.pipeline_images)
    pipe_images = random_images(rounds + 1, seed=2)  # one per timed call, + the untimed warm-up
    tokens = processor.tokenizer([pipe_template.format(n) for n in names])["input_ids"]

    # (a) ours: class matrix once, then per batch: preprocess + image forward + matmul
    torch.manual_seed(0)
    model = UniCLModel._from_config(config, attn_implementation="sdpa").eval()
    start = time.perf_counter()
    classifier = ZeroShotClassifier(model, processor, names, templates)
    class_matrix_s = time.perf_counter() - start
    counter = CountForwards(model.text_model)
    classify = lambda: classifier.logits(classifier.pixel_values(images))  # noqa: E731
    classify()
    flops_per_image = count_flops(classify) / len(images)  # the image forward + the class matmul

    def pipe_call(pipe, labels, image):
        return pipe(image, candidate_labels=labels, hypothesis_template=pipe_template)

    # (b) transformers' pipeline with a same-size CLIPModel: every call encodes all labels
    torch.manual_seed(0)
    clip = CLIPModel._from_config(clip_cfg, attn_implementation="sdpa").eval()
    clip_processor = CLIPImageProcessorPil(size={"shortest_edge": clip_cfg.vision_config.image_size},
                                           crop_size={"height": clip_cfg.vision_config.image_size,
                                                      "width": clip_cfg.vision_config.image_size})
    clip_pipe = pipeline("zero-shot-image-classification", model=clip, tokenizer=build_clip_tokenizer(),
                         image_processor=clip_processor, device="cpu")
    clip_counter = CountForwards(clip.text_model)
    pipe_call(clip_pipe, names, pipe_images[0])  # warm-up

    # (c) the same pipeline on our model saved to a folder: the text cache encodes the labels once
    folder = workdir / "unicl"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    unicl_pipe = pipeline("zero-shot-image-classification", model=str(folder), device="cpu")
    unicl_counter = CountForwards(unicl_pipe.model.text_model)
    pipe_call(unicl_pipe, names[:2], pipe_images[0])  # warm-up, other labels
    unicl_counter.calls = 0
    first_s = seconds(lambda: pipe_call(unicl_pipe, names, pipe_images[0]))
    first_forwards = unicl_counter.calls

    # Timed round-robin (ours, CLIP pipeline, cached pipeline, ours, ...): drift of a shared machine hits all alike.
    next_image = {"clip": iter(pipe_images[1:]), "cached": iter(pipe_images[1:])}
    times = round_robin({
        "ours": classify,
        "clip_pipeline": lambda: pipe_call(clip_pipe, names, next(next_image["clip"])),
        "cached_pipeline": lambda: pipe_call(unicl_pipe, names, next(next_image["cached"])),
    }, warmup=0, steps=rounds)
    assert counter.calls == 0, "classifying images must not run the text tower"
    ours_ips = len(images) / statistics.median(times["ours"])
    clip_times = times["clip_pipeline"]
    clip_ips = 1 / statistics.median(clip_times)
    clip_text_forwards = clip_counter.calls
    later_times = times["cached_pipeline"]
    later_forwards = unicl_counter.calls - first_forwards
    cached_ips = 1 / statistics.median(later_times)
    del clip_pipe, clip, unicl_pipe
    gc.collect()

    ours_bf16_ips = None
    if bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the image side only; the class matrix stays the fp32 one
            classify()
            ours_bf16_ips = len(images) / statistics.median(seconds(classify) for _ in range(settings.zero_shot_reps))
    del model, classifier
    gc.collect()

    compared = (
        f"ours: ZeroShotClassifier over {len(names)} classes x {len(templates)} templates (class matrix built once, "
        f"{class_matrix_s:.1f} s, not in images/s), batches of {len(images)} PIL images (preprocess + image forward + "
        f"matmul); pipeline: {len(names)} candidate labels with ONE template ({pipe_template!r}), one call per PIL "
        f"image, every call encodes all {len(names)} labels"
    )
    return {
        "num_classes": len(names),
        "num_templates_ours": len(templates),
        "pipeline_template": pipe_template,
        "mean_prompt_tokens": float(np.mean([len(t) for t in tokens])),
        "class_matrix_s": class_matrix_s,
        "class_matrix_break_even_images": class_matrix_s * clip_ips,
        "flops_per_image_ours": flops_per_image,
        "round_robin_times_s": times,
        "speedup": figure(ours_ips, clip_ips, "pipeline('zero-shot-image-classification') + CLIPModel ViT-B/32 "
                          "(random init)", "images/s", compared=compared, clip_text_forwards=clip_text_forwards,
                          clip_images=len(clip_times)),
        "bf16": figure(ours_bf16_ips, clip_ips, "pipeline('zero-shot-image-classification') + CLIPModel ViT-B/32 "
                       "(random init), fp32", "images/s",
                       note="ours with torch.autocast('cpu', bfloat16) around preprocessing + image forward + matmul"),
        "vs_cached_pipeline": figure(ours_ips, cached_ips, "pipeline('zero-shot-image-classification') + UniCL "
                                     "folder, later calls (text cache warm)", "images/s"),
        "pipeline_cache": {
            "first_call_s": first_s,
            "first_call_text_forwards": first_forwards,
            "later_calls_images_per_s": cached_ips,
            "later_calls": len(later_times),
            "later_calls_text_forwards": later_forwards,
            "first_vs_later_speedup": first_s * cached_ips,
            "cached_pipeline_vs_clip_pipeline": cached_ips / clip_ips,
        },
    }


# ------------------------------------------------------------------------------------------------ run + report
def run_benchmark(settings: Settings, config=None, clip_cfg=None, processor=None, workdir: Path | None = None,
                  log=print, fresh_processes: bool = True, keep_freed: bool = False, bf16: bool | None = None) -> dict:
    """Every measurement; `config` / `clip_cfg` / `processor` default to the paper's sizes (tests pass tiny ones).
    `keep_freed` says whether this process runs with `keep_freed_memory()`; it applies to ours and to every peer
    alike. The RSS workers choose their own setting (`RSS_VARIANTS`). `bf16` runs the bf16-autocast rows (default:
    only where the CPU has native bf16, `native_bf16()`); skipped rows say why."""
    from modeling_unicl import UniCLProcessor

    config = config if config is not None else unicl_config()
    clip_cfg = clip_cfg if clip_cfg is not None else clip_config(config.text_config.to_dict())
    processor = processor if processor is not None else UniCLProcessor()
    started = time.perf_counter()
    results = {"mode": settings.mode, "settings": asdict(settings), "machine": machine_info()}
    results["machine"]["keep_freed_memory"] = keep_freed
    results["machine"]["native_bf16"] = native_bf16()
    bf16 = results["machine"]["native_bf16"] if bf16 is None else bf16
    bf16_skipped = None if bf16 else (
        "not measured: this CPU has no native bf16 (oneDNN: no AVX512-BF16 / AMX), autocast would time an emulation; "
        "--bf16 on measures it anyway")

    # The machine's matmul rate drifts (shared hosts): measured before, between and after; the best one is the peak.
    peaks = [matmul_peak(settings.matmul_size, settings.matmul_reps)]
    log("training steps (profile, FLOPs, round-robin timing) ...")
    train = bench_train(config, processor, settings, bf16=bf16)
    ips, median, flops = train["images_per_s"], train["median_step_s"], train["flops_per_step"]
    log("fp32 matmul peak ...")
    peaks.append(matmul_peak(settings.matmul_size, settings.matmul_reps))
    log("peak RSS with / without gradient checkpointing (fresh processes) ...")
    rss = measure_rss(config, settings.train_batch, fresh_processes=fresh_processes)
    plain, ckpt = rss["without"], rss["with"]
    log("zero-shot ...")
    with tempfile.TemporaryDirectory() if workdir is None else contextlib.nullcontext(workdir) as tmp:
        zero_shot = bench_zero_shot(config, processor, clip_cfg, settings, Path(tmp), bf16=bf16)
    peaks.append(matmul_peak(settings.matmul_size, settings.matmul_reps))
    peak = max(peaks)

    results["zero_shot_speedup_vs_pipeline"] = with_goal(
        "zero_shot_speedup_vs_pipeline", zero_shot["speedup"], zero_shot["speedup"]["ratio"])
    results["zero_shot_bf16_autocast_vs_pipeline"] = zero_shot["bf16"] if bf16 else {"skipped": bf16_skipped}
    results["zero_shot_vs_cached_pipeline"] = zero_shot["vs_cached_pipeline"]
    results["zero_shot_pipeline_cache"] = zero_shot["pipeline_cache"]
    results["zero_shot"] = {k: v for k, v in zero_shot.items() if k not in ("speedup", "bf16", "vs_cached_pipeline", "pipeline_cache")}
    results["zero_shot_speedup_ceiling"] = figure(
        peak * 1e9 / zero_shot["flops_per_image_ours"], zero_shot["speedup"]["peer"], zero_shot["speedup"]["peer_name"],
        "images/s", bounds="zero_shot_speedup_vs_pipeline", flops_per_image=zero_shot["flops_per_image_ours"],
        note="an upper bound, not a measurement of ours: our images/s if every FLOP of the image forward (matmuls, "
             "convolutions, attention: FlopCounterMode) ran at the fp32 matmul peak and nothing else took time")

    peer_77 = "VisionTextDualEncoderModel (same Swin + CLIP-text configs, CLIP loss), 77 tokens"
    fig = figure(ips["ours_77"], ips["dual_encoder_77"], peer_77, "images/s",
                 note="identical inputs: the same images and 77-token texts")
    results["train_step_ratio_vs_dual_encoder"] = with_goal("train_step_ratio_vs_dual_encoder", fig, fig["ratio"])
    fig = figure(ips["ours_longest"], ips["dual_encoder_77"], peer_77 + " (transformers' contrastive example pads "
                 "to max_seq_length)", "images/s", tokens=train["text_tokens"],
                 note="ours: the same captions collated by UniCLCollator (padded to the batch's longest)")
    results["train_step_ratio_padded_to_longest_vs_77"] = with_goal(
        "train_step_ratio_padded_to_longest_vs_77", fig, fig["ratio"])
    results["train_step_padded_to_longest_ceiling"] = figure(
        settings.train_batch * peak * 1e9 / flops["ours_longest"], ips["dual_encoder_77"], peer_77, "images/s",
        bounds="train_step_ratio_padded_to_longest_vs_77", flops_per_step=flops["ours_longest"],
        note="an upper bound, not a measurement of ours: our images/s if every FLOP of the step (FlopCounterMode) ran "
             "at the fp32 matmul peak and nothing else (elementwise ops, copies, the optimizer) took time")
    results["train_step_trim_padding_vs_untrimmed"] = figure(
        ips["ours_77"], ips["ours_77_untrimmed"], "UniCLModel with trim_text_padding=False, 77 tokens", "images/s",
        note="what cutting the padding after the batch's last end-of-text token gains on 77-token inputs")
    if bf16:
        results["train_step_bf16_autocast_vs_fp32"] = figure(
            ips["ours_longest_bf16_autocast"], ips["ours_longest"], "UniCLModel fp32, padded to longest", "images/s",
            note="torch.autocast('cpu', bfloat16) around forward + loss")
        results["train_step_bf16_ratio_vs_dual_encoder_bf16"] = figure(
            ips["ours_longest_bf16_autocast"], ips["dual_encoder_77_bf16_autocast"], peer_77 + ", bf16 autocast",
            "images/s", note="both under torch.autocast('cpu', bfloat16); ours padded to the longest caption")
    else:
        results["train_step_bf16_autocast_vs_fp32"] = {"skipped": bf16_skipped}
        results["train_step_bf16_ratio_vs_dual_encoder_bf16"] = {"skipped": bf16_skipped}
    bf16_step = median.get("ours_longest_bf16_autocast")
    achieved = {name: flops[name] / median[name] / 1e9 for name in flops}
    fig = figure(achieved["ours_77"], peak, f"fp32 torch.matmul {settings.matmul_size}x{settings.matmul_size} (best "
                 f"of {settings.matmul_reps}, measured {len(peaks)} times: before, between and after; the highest)",
                 "GFLOP/s", flops_per_step=flops["ours_77"], step_s=median["ours_77"], peaks_gflops=peaks,
                 fraction_fastest_step=flops["ours_77"] / min(train["step_s"]["ours_77"]) / 1e9 / peak,
                 fraction_ours_longest=achieved["ours_longest"] / peak,
                 fraction_dual_encoder_77=achieved["dual_encoder_77"] / peak,
                 fraction_bf16_autocast_step=flops["ours_longest"] / bf16_step / 1e9 / peak if bf16_step else None,
                 note="ours: FLOPs of one fp32 training step as run (FlopCounterMode: matmuls + attention, forward + "
                      "backward; the cut padding is not counted) / the median step time (ours, 77-token inputs)")
    results["flops_fraction_of_peak"] = with_goal("flops_fraction_of_peak", fig, fig["ratio"])
    fig = figure(ckpt["step_increase_mib"], plain["step_increase_mib"], "same step without gradient checkpointing",
                 "MiB: peak RSS of 2 steps - RSS before them", with_checkpointing=ckpt, without=plain,
                 without_keep_freed=rss["without_keep_freed"],
                 keep_freed_memory_peak_rss_increase=rss["without_keep_freed"]["peak_rss_mib"] / plain["peak_rss_mib"] - 1,
                 note="both with glibc's default malloc (train.py turns keep_freed_memory off with gradient "
                      "checkpointing); without_keep_freed: the step without checkpointing, keep_freed_memory on",
                 peak_rss_reduction=1 - ckpt["peak_rss_mib"] / plain["peak_rss_mib"],
                 forward_backward_reduction=1 - ckpt["first_forward_backward_increase_mib"]
                 / max(plain["first_forward_backward_increase_mib"], 1e-9))
    reduction = None if fig["ratio"] is None else 1 - fig["ratio"]
    results["grad_checkpointing_rss_reduction"] = with_goal("grad_checkpointing_rss_reduction", fig, reduction)
    results["train"] = train
    results["machine"]["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    results["elapsed_s"] = time.perf_counter() - started
    return results


def markdown(results: dict) -> str:
    def num(x):
        return f"{x:.3g}" if isinstance(x, float) and abs(x) < 1000 else f"{x:,.0f}" if isinstance(x, float) else str(x)

    rows = [
        ("zero_shot_speedup_vs_pipeline", "images/s"),
        ("zero_shot_speedup_ceiling", "images/s"),
        ("zero_shot_vs_cached_pipeline", "images/s"),
        ("train_step_ratio_vs_dual_encoder", "images/s"),
        ("train_step_ratio_padded_to_longest_vs_77", "images/s"),
        ("train_step_padded_to_longest_ceiling", "images/s"),
        ("train_step_trim_padding_vs_untrimmed", "images/s"),
        ("zero_shot_bf16_autocast_vs_pipeline", "images/s"),
        ("train_step_bf16_autocast_vs_fp32", "images/s"),
        ("train_step_bf16_ratio_vs_dual_encoder_bf16", "images/s"),
        ("flops_fraction_of_peak", "GFLOP/s"),
        ("grad_checkpointing_rss_reduction", "MiB per step"),
    ]
    lines = ["| figure | ours | peer | peer | value | goal |", "| --- | ---: | ---: | --- | ---: | --- |"]
    for key, unit in rows:
        fig = results[key]
        if "skipped" in fig:
            lines.append(f"| `{key}` | | | | | {fig['skipped']} |")
            continue
        value = fig.get("value", fig["ratio"])
        goal = f">= {fig['goal']:g}: {'met' if fig['goal_met'] else 'NOT met'}" if "goal" in fig else ""
        if "bounds" in fig:
            goal = f"upper bound of `{fig['bounds']}` (goal {GOALS[fig['bounds']]:g})"
        lines.append(f"| `{key}` | {num(fig['ours'])} {unit} | {num(fig['peer'])} {unit} | {fig['peer_name']} | "
                     f"{num(value)} | {goal} |")
    cache = results["zero_shot_pipeline_cache"]
    lines.append(f"\nPipeline on the UniCL folder: first call {cache['first_call_s']:.2f} s/image "
                 f"({cache['first_call_text_forwards']} text forward), later calls "
                 f"{cache['later_calls_images_per_s']:.2f} images/s ({cache['later_calls_text_forwards']} text forwards).")
    m = results["machine"]
    lines.append(f"Machine: {m['cpu']}, {m['cpu_count']} cores, {m['torch_threads']} torch threads, torch {m['torch']}, "
                 f"transformers {m['transformers']}, keep_freed_memory {'on' if m['keep_freed_memory'] else 'off'} "
                 f"(every model alike). Mode: {results['mode']} ({results['elapsed_s']:.0f} s).")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="<= 3 min on 2 cores: fewer classes, batch 4, 2 steps")
    parser.add_argument("--json", dest="json_path", default=None, help="write the results as JSON to this file")
    parser.add_argument("--num_classes", type=int, default=None, help="zero-shot classes (default 1000, quick 100)")
    parser.add_argument("--templates", type=int, default=None, help="templates for our classifier (default 80, quick 4)")
    parser.add_argument("--train_batch", type=int, default=None, help="training batch (default 32, quick 4)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's, one per core); on a machine where other jobs hold "
                             "cores, use the number of idle cores: OpenMP barriers stall on busy ones")
    parser.add_argument("--keep_freed_memory", choices=("on", "off"), default="on",
                        help="run with modeling_unicl.utils.runtime.keep_freed_memory() (as scripts/train.py does by "
                             "default); it applies to every model measured, ours and the peers")
    parser.add_argument("--bf16", choices=("auto", "on", "off"), default="auto",
                        help="the bf16-autocast rows: auto (default) runs them only on a CPU with native bf16 "
                             "(AVX512-BF16 / AMX); elsewhere autocast emulates bf16 and is many times slower than fp32")
    parser.add_argument("--malloc_ab", type=int, default=None, metavar="STEPS",
                        help="only compare training steps with keep_freed_memory off vs on (fresh processes, STEPS "
                             "timed steps each) and print the JSON")
    parser.add_argument("--malloc_worker", default=None, help=argparse.SUPPRESS)  # internal
    parser.add_argument("--rss_worker", default=None, help=argparse.SUPPRESS)  # internal: one step in a fresh process
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            print("error: --threads must be >= 1", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    if args.rss_worker is not None:
        print(json.dumps(rss_worker(json.loads(args.rss_worker))))
        return 0
    if args.malloc_worker is not None:
        print(json.dumps(malloc_worker(json.loads(args.malloc_worker))))
        return 0
    if args.malloc_ab is not None:
        if args.malloc_ab < 1:
            print("error: --malloc_ab must be >= 1", file=sys.stderr)
            return 2
        ab = malloc_ab(unicl_config(), args.train_batch or FULL.train_batch, args.malloc_ab)
        print(json.dumps(ab, indent=2))
        if args.json_path:
            Path(args.json_path).write_text(json.dumps(ab, indent=2) + "\n")
        return 0
    settings = QUICK if args.quick else FULL
    overrides = {k: v for k, v in (("num_classes", args.num_classes), ("num_templates", args.templates),
                                   ("train_batch", args.train_batch)) if v is not None}
    if any(v < 1 for v in overrides.values()):
        print("error: --num_classes, --templates and --train_batch must be >= 1", file=sys.stderr)
        return 2
    settings = Settings(**{**asdict(settings), **overrides})
    keep_freed = args.keep_freed_memory == "on"
    if keep_freed:
        from modeling_unicl.utils.runtime import keep_freed_memory

        keep_freed = keep_freed_memory()
    bf16 = {"auto": None, "on": True, "off": False}[args.bf16]
    results = run_benchmark(settings, log=lambda msg: print(msg, file=sys.stderr, flush=True), keep_freed=keep_freed,
                            bf16=bf16)
    print(markdown(results))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
