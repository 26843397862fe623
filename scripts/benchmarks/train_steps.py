"""Benchmarks 2 and 3's measurements: training steps of ours and of the dual encoder (with and without cutting the
padding, padded to 77 or to the longest caption, fp32 or bf16 autocast), profiled, FLOP-counted and timed
round-robin."""

from __future__ import annotations

import gc
import statistics

import torch

from .measure import count_flops, profile_step, round_robin, seconds
from .workloads import Settings, Untrimmed, adamw, dual_encoder, dual_encoder_step, train_batches, unicl_step


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


def profile_ours(ours, ours_opt, steps: dict, batches: dict) -> dict:
    """The untrimmed step's top ops and its towers' times, then the trimmed step's top ops (as the README reports)."""
    steps["ours_77_untrimmed"]()  # first call allocates optimizer state: keep it out of the profile
    profile = profile_step(steps["ours_77_untrimmed"])
    with Untrimmed(ours):
        profile["towers_77_untrimmed"] = tower_times(ours, batches["77"])
    steps["ours_77"]()
    profile["towers_77_untrimmed"]["adamw_step_s"] = seconds(ours_opt.step)  # the optimizer alone
    profile["after_trimming"] = profile_step(steps["ours_77"])
    return profile


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
    profile = profile_ours(ours, ours_opt, steps, batches)
    flops = {name: count_flops(steps[name]) for name in ("ours_77", "dual_encoder_77", "ours_longest")}
    times = round_robin(steps, settings.warmup_steps, settings.train_steps)
    median = {name: statistics.median(t) for name, t in times.items()}
    attn = {"ours_text": ours.text_model.config._attn_implementation,
            "ours_vision": ours.vision_model.config._attn_implementation,
            "dual_encoder_text": peer.text_model.config._attn_implementation,
            "dual_encoder_vision": peer.vision_model.config._attn_implementation}
    del ours, peer, ours_opt, peer_opt, steps
    gc.collect()
    return {
        "images_per_s": {name: settings.train_batch / t for name, t in median.items()},
        "step_s": times,
        "median_step_s": median,
        "flops_per_step": flops,
        "text_tokens": {"77": int(batches["77"]["input_ids"].shape[1]),
                        "longest": int(batches["longest"]["input_ids"].shape[1])},
        "attn_implementation": attn,
        "profile": profile,
    }
