"""The report: turns the raw measurements into the results (each figure ours vs a named peer measured in the same
run, checked against its goal) and renders them as a markdown table. Needs no torch: it renders a saved JSON too."""

from __future__ import annotations

from dataclasses import asdict

GOALS = {  # figure -> minimum value the issue asks for
    "zero_shot_speedup_vs_pipeline": 100.0,
    "train_step_ratio_vs_dual_encoder": 1.0,
    "train_step_ratio_padded_to_longest_vs_77": 1.5,
    "flops_fraction_of_peak": 0.40,
    "grad_checkpointing_rss_reduction": 0.30,
}

BF16_SKIPPED = ("not measured: this CPU has no native bf16 (oneDNN: no AVX512-BF16 / AMX), autocast would time an "
                "emulation; --bf16 on measures it anyway")
CLIP_PIPELINE = "pipeline('zero-shot-image-classification') + CLIPModel ViT-B/32 (random init)"
DUAL_ENCODER_77 = "VisionTextDualEncoderModel (same Swin + CLIP-text configs, CLIP loss), 77 tokens"
CEILING_NOTE = ("an upper bound, not a measurement of ours: our images/s if every FLOP of {what} ran at the fp32 "
                "matmul peak and nothing else{others} took time")

ROWS = [  # the markdown table: figure, unit of its ours / peer columns
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


def figure(ours: float, peer: float, peer_name: str, unit: str, **extra) -> dict:
    """One measured figure: ours, the peer measured in the same run, ratio = ours / peer (higher is better)."""
    ratio = ours / peer if ours is not None and peer else None
    return {"ours": ours, "peer": peer, "peer_name": peer_name, "unit": unit, "ratio": ratio, **extra}


def with_goal(name: str, fig: dict, value: float | None) -> dict:
    return {**fig, "value": value, "goal": GOALS[name], "goal_met": value is not None and value >= GOALS[name]}


# ------------------------------------------------------------------------------------------------ results
def results(settings, machine: dict, train: dict, rss: dict, zero_shot: dict, peaks: list[float], bf16: bool) -> dict:
    """Every figure from the measurements: `train` (`train_steps.bench_train`), `rss` (`workers.measure_rss`),
    `zero_shot` (`zero_shot.bench_zero_shot`) and the fp32 matmul `peaks` (GFLOP/s; the highest counts). Without
    `bf16` the bf16-autocast rows say why they were not measured."""
    peak = max(peaks)
    return {
        "mode": settings.mode,
        "settings": asdict(settings),
        "machine": machine,
        **zero_shot_figures(settings, zero_shot, peak, bf16),
        **train_figures(settings, train, peak, bf16),
        "flops_fraction_of_peak": flops_figure(settings, train, peaks),
        "grad_checkpointing_rss_reduction": rss_figure(rss),
        "train": train,
    }


def zero_shot_figures(settings, zero_shot: dict, peak: float, bf16: bool) -> dict:
    section, ips = zero_shot["zero_shot"], zero_shot["images_per_s"]
    compared = (
        f"ours: ZeroShotClassifier over {section['num_classes']} classes x {section['num_templates_ours']} templates "
        f"(class matrix built once, {section['class_matrix_s']:.1f} s, not in images/s), batches of "
        f"{settings.zero_shot_batch} PIL images (preprocess + image forward + matmul); pipeline: "
        f"{section['num_classes']} candidate labels with ONE template ({section['pipeline_template']!r}), one call per "
        f"PIL image, every call encodes all {section['num_classes']} labels"
    )
    speedup = figure(ips["ours"], ips["clip_pipeline"], CLIP_PIPELINE, "images/s", compared=compared,
                     clip_text_forwards=zero_shot["clip_text_forwards"],
                     clip_images=len(section["round_robin_times_s"]["clip_pipeline"]))
    bf16_figure = figure(ips["ours_bf16_autocast"], ips["clip_pipeline"], CLIP_PIPELINE + ", fp32", "images/s",
                         note="ours with torch.autocast('cpu', bfloat16) around preprocessing + image forward + matmul")
    return {
        "zero_shot_speedup_vs_pipeline": with_goal("zero_shot_speedup_vs_pipeline", speedup, speedup["ratio"]),
        "zero_shot_bf16_autocast_vs_pipeline": bf16_figure if bf16 else {"skipped": BF16_SKIPPED},
        "zero_shot_vs_cached_pipeline": figure(
            ips["ours"], ips["cached_pipeline"], "pipeline('zero-shot-image-classification') + UniCL folder, later "
            "calls (text cache warm)", "images/s"),
        "zero_shot_pipeline_cache": zero_shot["pipeline_cache"],
        "zero_shot": section,
        "zero_shot_speedup_ceiling": figure(
            peak * 1e9 / section["flops_per_image_ours"], ips["clip_pipeline"], CLIP_PIPELINE, "images/s",
            bounds="zero_shot_speedup_vs_pipeline", flops_per_image=section["flops_per_image_ours"],
            note=CEILING_NOTE.format(what="the image forward (matmuls, convolutions, attention: FlopCounterMode)",
                                     others="")),
    }


def train_figures(settings, train: dict, peak: float, bf16: bool) -> dict:
    ips, flops = train["images_per_s"], train["flops_per_step"]
    fig = figure(ips["ours_77"], ips["dual_encoder_77"], DUAL_ENCODER_77, "images/s",
                 note="identical inputs: the same images and 77-token texts")
    figures = {"train_step_ratio_vs_dual_encoder": with_goal("train_step_ratio_vs_dual_encoder", fig, fig["ratio"])}
    fig = figure(ips["ours_longest"], ips["dual_encoder_77"], DUAL_ENCODER_77 + " (transformers' contrastive example "
                 "pads to max_seq_length)", "images/s", tokens=train["text_tokens"],
                 note="ours: the same captions collated by UniCLCollator (padded to the batch's longest)")
    figures["train_step_ratio_padded_to_longest_vs_77"] = with_goal(
        "train_step_ratio_padded_to_longest_vs_77", fig, fig["ratio"])
    figures["train_step_padded_to_longest_ceiling"] = figure(
        settings.train_batch * peak * 1e9 / flops["ours_longest"], ips["dual_encoder_77"], DUAL_ENCODER_77, "images/s",
        bounds="train_step_ratio_padded_to_longest_vs_77", flops_per_step=flops["ours_longest"],
        note=CEILING_NOTE.format(what="the step (FlopCounterMode)",
                                 others=" (elementwise ops, copies, the optimizer)"))
    figures["train_step_trim_padding_vs_untrimmed"] = figure(
        ips["ours_77"], ips["ours_77_untrimmed"], "UniCLModel with trim_text_padding=False, 77 tokens", "images/s",
        note="what cutting the padding after the batch's last end-of-text token gains on 77-token inputs")
    if not bf16:
        return {**figures, "train_step_bf16_autocast_vs_fp32": {"skipped": BF16_SKIPPED},
                "train_step_bf16_ratio_vs_dual_encoder_bf16": {"skipped": BF16_SKIPPED}}
    figures["train_step_bf16_autocast_vs_fp32"] = figure(
        ips["ours_longest_bf16_autocast"], ips["ours_longest"], "UniCLModel fp32, padded to longest", "images/s",
        note="torch.autocast('cpu', bfloat16) around forward + loss")
    figures["train_step_bf16_ratio_vs_dual_encoder_bf16"] = figure(
        ips["ours_longest_bf16_autocast"], ips["dual_encoder_77_bf16_autocast"], DUAL_ENCODER_77 + ", bf16 autocast",
        "images/s", note="both under torch.autocast('cpu', bfloat16); ours padded to the longest caption")
    return figures


def flops_figure(settings, train: dict, peaks: list[float]) -> dict:
    """Achieved GFLOP/s of our step (FLOPs / median step time) against the fp32 matmul peak."""
    flops, median, peak = train["flops_per_step"], train["median_step_s"], max(peaks)
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
    return with_goal("flops_fraction_of_peak", fig, fig["ratio"])


def rss_figure(rss: dict) -> dict:
    """Peak RSS growth of two steps with vs without gradient checkpointing; value: the reduction (1 - ratio)."""
    plain, ckpt = rss["without"], rss["with"]
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
    return with_goal("grad_checkpointing_rss_reduction", fig, reduction)


# ------------------------------------------------------------------------------------------------ markdown
def _num(x) -> str:
    return f"{x:.3g}" if isinstance(x, float) and abs(x) < 1000 else f"{x:,.0f}" if isinstance(x, float) else str(x)


def markdown(results: dict) -> str:
    """The figures as a table (ours, peer, value, goal), then the pipeline cache and the machine in two lines."""
    lines = ["| figure | ours | peer | peer | value | goal |", "| --- | ---: | ---: | --- | ---: | --- |"]
    for key, unit in ROWS:
        fig = results[key]
        if "skipped" in fig:
            lines.append(f"| `{key}` | | | | | {fig['skipped']} |")
            continue
        value = fig.get("value", fig["ratio"])
        goal = f">= {fig['goal']:g}: {'met' if fig['goal_met'] else 'NOT met'}" if "goal" in fig else ""
        if "bounds" in fig:
            goal = f"upper bound of `{fig['bounds']}` (goal {GOALS[fig['bounds']]:g})"
        lines.append(f"| `{key}` | {_num(fig['ours'])} {unit} | {_num(fig['peer'])} {unit} | {fig['peer_name']} | "
                     f"{_num(value)} | {goal} |")
    cache = results["zero_shot_pipeline_cache"]
    lines.append(f"\nPipeline on the UniCL folder: first call {cache['first_call_s']:.2f} s/image "
                 f"({cache['first_call_text_forwards']} text forward), later calls "
                 f"{cache['later_calls_images_per_s']:.2f} images/s ({cache['later_calls_text_forwards']} text forwards).")
    m = results["machine"]
    lines.append(f"Machine: {m['cpu']}, {m['cpu_count']} cores, {m['torch_threads']} torch threads, torch {m['torch']}, "
                 f"transformers {m['transformers']}, keep_freed_memory {'on' if m['keep_freed_memory'] else 'off'} "
                 f"(every model alike). Mode: {results['mode']} ({results['elapsed_s']:.0f} s).")
    return "\n".join(lines)
