"""The report: turns the raw measurements into the results (each figure ours vs a named peer measured in the same
run, checked against its goal) and renders them as a markdown table. Needs no torch: it renders a saved JSON too."""

from __future__ import annotations

import math
from dataclasses import asdict

GOALS = {  # figure -> minimum value the issue asks for
    "zero_shot_speedup_vs_pipeline": 100.0,
    "zero_shot_onnx_int8_speedup_vs_pipeline": 100.0,
    "zero_shot_fraction_of_ceiling": 0.60,
    "train_step_ratio_vs_dual_encoder": 1.0,
    "train_step_ratio_padded_to_longest_vs_77": 1.5,
    "flops_fraction_of_peak": 0.40,
    "grad_checkpointing_rss_reduction": 0.30,
    "data_path_speedup_vs_full_decode": 2.0,
}

BF16_SKIPPED = ("not measured: this CPU has no native bf16 (no AVX512-BF16, AMX or Arm BF16 flag), autocast would time an "
                "emulation; --bf16 on measures it anyway")
CLIP_PIPELINE = "pipeline('zero-shot-image-classification') + CLIPModel ViT-B/32 (random init)"
DUAL_ENCODER_77 = "VisionTextDualEncoderModel (same Swin + CLIP-text configs, CLIP loss), 77 tokens"
FULL_DECODE_PATH = ("the same data path with a full-size decode before the crop (open_clip's and run_clip's "
                    "transforms)")
CEILING_NOTE = ("an upper bound, not a measurement of ours: our images/s if every FLOP of {what} ran at the fp32 "
                "matmul peak and nothing else{others} took time")

ROWS = [  # the markdown table: figure, unit of its ours / peer columns
    ("zero_shot_speedup_vs_pipeline", "images/s"),
    ("zero_shot_speedup_ceiling", "images/s"),
    ("zero_shot_fraction_of_ceiling", "images/s"),
    ("zero_shot_onnx_fp32_speedup_vs_pipeline", "images/s"),
    ("zero_shot_onnx_int8_speedup_vs_pipeline", "images/s"),
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
    ("data_path_speedup_vs_full_decode", "samples/s per core"),
]


def figure(ours: float, peer: float, peer_name: str, unit: str, **extra) -> dict:
    """One measured figure: ours, the peer measured in the same run, ratio = ours / peer (higher is better)."""
    ratio = ours / peer if ours is not None and peer else None
    return {"ours": ours, "peer": peer, "peer_name": peer_name, "unit": unit, "ratio": ratio, **extra}


def with_goal(name: str, fig: dict, value: float | None) -> dict:
    return {**fig, "value": value, "goal": GOALS[name], "goal_met": value is not None and value >= GOALS[name]}


# ------------------------------------------------------------------------------------------------ results
def results(settings, machine: dict, train: dict, rss: dict, zero_shot: dict, peaks: list[float], bf16: bool,
            data_path: dict) -> dict:
    """Every figure from the measurements: `train` (`train_steps.bench_train`), `rss` (`workers.measure_rss`),
    `zero_shot` (`zero_shot.bench_zero_shot`), the fp32 matmul `peaks` (GFLOP/s; the highest counts) and
    `data_path` (`data_path.bench_data_path`). Without `bf16` the bf16-autocast rows say why they were not measured."""
    peak = max(peaks)
    return {
        "mode": settings.mode,
        "settings": asdict(settings),
        "machine": machine,
        **zero_shot_figures(settings, zero_shot, peak, bf16),
        **train_figures(settings, train, peak, bf16),
        "flops_fraction_of_peak": flops_figure(settings, train, peaks),
        "grad_checkpointing_rss_reduction": rss_figure(rss),
        "data_path_speedup_vs_full_decode": data_path_figure(data_path),
        "data_path": data_path,
        "train": train,
    }


def data_path_results(settings, machine: dict, data_path: dict) -> dict:
    """`benchmark.py --data_path_only`: the data-path figure alone."""
    return {"mode": settings.mode, "settings": asdict(settings), "machine": machine,
            "data_path_speedup_vs_full_decode": data_path_figure(data_path), "data_path": data_path}


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
        **onnx_figures(zero_shot, peak * 1e9 / section["flops_per_image_ours"]),
    }


def onnx_figures(zero_shot: dict, ceiling: float) -> dict:
    """Eager fp32 as a fraction of the FLOP ceiling (`ceiling`: images/s), and ONNX Runtime fp32 / int8 against the
    pipeline, each with its own fraction of the same ceiling (the FLOPs are counted once, on the eager forward)."""
    ips, onnx = zero_shot["images_per_s"], zero_shot["zero_shot_onnx"]
    fractions = {name: ips[name] / ceiling for name in ("ours", "onnx_fp32", "onnx_int8") if name in ips}
    fraction = figure(ips["ours"], ceiling, "the FLOP ceiling (zero_shot_speedup_ceiling's ours)", "images/s",
                      fractions_of_ceiling=fractions,
                      note="eager PyTorch fp32 images/s / the images/s every counted FLOP would give at the fp32 matmul "
                           "peak measured in this run")
    figures = {"zero_shot_fraction_of_ceiling": with_goal("zero_shot_fraction_of_ceiling", fraction, fraction["ratio"])}
    if "skipped" in onnx:
        skipped = {"skipped": onnx["skipped"]}
        return {**figures, "zero_shot_onnx_fp32_speedup_vs_pipeline": skipped,
                "zero_shot_onnx_int8_speedup_vs_pipeline": skipped, "zero_shot_onnx": onnx}
    compared = (f"our model exported (scripts/export_onnx.py) and run by ONNX Runtime with torch's thread count; "
                f"class matrix from {onnx['templates']} template (images/s does not depend on it)")
    fp32 = figure(ips["onnx_fp32"], ips["clip_pipeline"], CLIP_PIPELINE, "images/s", compared=compared,
                  fraction_of_ceiling=fractions["onnx_fp32"], vs_eager=ips["onnx_fp32"] / ips["ours"])
    int8 = figure(ips["onnx_int8"], ips["clip_pipeline"], CLIP_PIPELINE, "images/s", compared=compared,
                  fraction_of_ceiling=fractions["onnx_int8"], vs_eager=ips["onnx_int8"] / ips["ours"],
                  vs_onnx_fp32=ips["onnx_int8"] / ips["onnx_fp32"],
                  note="the image tower dynamically quantized to int8; the ceiling is the fp32 one, so its fraction may pass 1")
    return {**figures, "zero_shot_onnx_fp32_speedup_vs_pipeline": fp32,
            "zero_shot_onnx_int8_speedup_vs_pipeline": with_goal("zero_shot_onnx_int8_speedup_vs_pipeline", int8,
                                                                 int8["ratio"]),
            "zero_shot_onnx": onnx}


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


def data_path_figure(data_path: dict) -> dict:
    """Samples/s per core of the whole data path (shard read -> decode -> crop -> normalise -> tokenise + collate),
    JPEGs decoded at a reduced scale when the crop allows vs at full size; with the workers for 1,000 images/s."""
    per_core = data_path["samples_per_s_per_core"]
    size, crop = data_path["image_size"], data_path["crop_size"]
    fig = figure(per_core["draft"], per_core["full_decode"], FULL_DECODE_PATH, "samples/s per core",
                 workers_for_1000_images_per_s=data_path["workers_for_1000_images_per_s"],
                 samples_per_s_wall=data_path["samples_per_s_wall"],
                 decode_and_crop_only=figure(per_core["draft_decode_and_crop"], per_core["full_decode_and_crop"],
                                             "PIL full-size decode + crop", "images/s per core"),
                 draft_reductions=data_path["draft_reductions_first_round"],
                 decode_and_crop_by_content=data_path.get("decode_and_crop_by_content", {}),
                 note=f"{data_path['images']} JPEGs of {size[0]}x{size[1]} (quality {data_path['jpeg_quality']}, "
                      f"{data_path['jpeg_bytes_per_pixel']:.2f} bytes/pixel) in {data_path['shards']} webdataset "
                      f"shards -> random resized crop {crop[1]}x{crop[0]} -> normalise -> tokenise + collate "
                      f"(batches of {data_path['batch_size']}), one thread; per core: samples / process CPU seconds, "
                      "medians of round-robin passes")
    return with_goal("data_path_speedup_vs_full_decode", fig, fig["ratio"])


def data_path_line(results: dict) -> str:
    fig = results["data_path_speedup_vs_full_decode"]
    workers, alone = fig["workers_for_1000_images_per_s"], fig["decode_and_crop_only"]
    scales = ", ".join(f"{scale} {count}" for scale, count in fig["draft_reductions"].items())
    return (f"Data path: {workers['draft']} worker processes (cores) feed 1,000 images/s with reduced-scale JPEG "
            f"decoding, {workers['full_decode']} with full-size decodes; decode + crop alone {_num(alone['ours'])} vs "
            f"{_num(alone['peer'])} images/s per core ({_num(alone['ratio'])}x); JPEG scales decoded: {scales}."
            + _by_content(fig["decode_and_crop_by_content"]))


def _by_content(by_content: dict) -> str:
    if not by_content:  # results written before the content sweep existed
        return ""
    return " Decode + crop by content (reduced-scale vs full-size): " + "; ".join(
        f"{name} ({c['bytes_per_pixel']:.2f} bytes/pixel) {_num(c['ratio'])}x" for name, c in by_content.items()) + "."


# ------------------------------------------------------------------------------------------------ ONNX Runtime run modes
ONNX_RUNS_PEER = "one ONNX Runtime run of the whole batch on all threads"


def onnx_runs_results(settings, machine: dict, onnx_runs: dict) -> dict:
    """`benchmark.py --onnx_runs_only`: one figure per precision and run mode (`onnx_runs.RUN_MODES`), images/s
    against the measurement's `peer_mode` (the whole batch in one run); `{"skipped": reason}` without onnxruntime."""
    if "skipped" in onnx_runs:
        figures = {"skipped": onnx_runs["skipped"]}
    else:
        peer = onnx_runs["peer_mode"]
        figures = {precision: {mode: figure(ips, by_mode[peer], ONNX_RUNS_PEER, "images/s",
                                            ms_per_image=1000 / ips)
                               for mode, ips in by_mode.items()}
                   for precision, by_mode in onnx_runs["images_per_s"].items()}
    return {"mode": settings.mode, "settings": asdict(settings), "machine": machine,
            "onnx_image_run_modes": figures, "onnx_runs": onnx_runs}


def onnx_runs_markdown(results: dict) -> list[str]:
    figures = results["onnx_image_run_modes"]
    if "skipped" in figures:
        return [f"ONNX Runtime run modes: {figures['skipped']}"]
    runs = results["onnx_runs"]
    lines = [f"ONNX Runtime image graph, batches of {runs['batch']} images, {runs['threads']} threads, images/s vs "
             f"{ONNX_RUNS_PEER} ({runs['rounds']} rounds round-robin, medians):", "",
             "| run mode | " + " | ".join(f"{precision} ms/image | {precision} vs whole batch" for precision in figures)
             + " |", "| --- |" + " ---: | ---: |" * len(figures)]
    for mode in next(iter(figures.values())):
        lines.append(f"| `{mode}` | " + " | ".join(
            f"{by_mode[mode]['ms_per_image']:.1f} | {by_mode[mode]['ratio']:.2f}x" for by_mode in figures.values()) + " |")
    return lines


# ------------------------------------------------------------------------------------------------ accelerator
ACCELERATOR_GOALS = {
    "accelerator_train_step_ratio_vs_dual_encoder": 1.0,
    "accelerator_train_step_ratio_padded_to_longest_vs_77": 1.3,
}
ACCELERATOR_ROWS = [
    ("accelerator_train_step_ratio_vs_dual_encoder", "images/s"),
    ("accelerator_train_step_ratio_padded_to_longest_vs_77", "images/s"),
    ("accelerator_zero_shot_vs_pipeline", "images/s"),
    ("accelerator_loader_workers_per_accelerator", "workers"),
]


def _with_accelerator_goal(name: str, fig: dict) -> dict:
    goal = ACCELERATOR_GOALS[name]
    return {**fig, "value": fig["ratio"], "goal": goal, "goal_met": fig["ratio"] is not None and fig["ratio"] >= goal}


def accelerator_results(settings, machine: dict, accelerator: dict) -> dict:
    """The figures of `accelerator.bench_accelerator`: both models under bf16 autocast (SDPA; `torch.compile`d when
    the run says so), ours against the dual encoder; zero-shot against the pipeline on the same device."""
    train, zero_shot = accelerator["train"]["images_per_s"], accelerator["zero_shot"]["images_per_s"]
    setting = f"bf16 autocast, SDPA{', torch.compile' if accelerator['compile'] else ''}, {accelerator['device_name']}"
    dual = f"{DUAL_ENCODER_77}, {setting}"
    identical = figure(train["ours_77"], train["dual_encoder_77"], dual, "images/s",
                       note="identical inputs: the same images and 77-token texts")
    longest = figure(train["ours_longest"], train["dual_encoder_77"], dual, "images/s",
                     tokens=accelerator["train"]["text_tokens"],
                     note="ours: the same captions collated by UniCLCollator (padded to the batch's longest)")
    return {
        "mode": settings.mode,
        "device": accelerator["device"],
        "settings": asdict(settings),
        "machine": {**machine, "accelerator": accelerator["device_name"], "compile": accelerator["compile"]},
        "accelerator_train_step_ratio_vs_dual_encoder": _with_accelerator_goal(
            "accelerator_train_step_ratio_vs_dual_encoder", identical),
        "accelerator_train_step_ratio_padded_to_longest_vs_77": _with_accelerator_goal(
            "accelerator_train_step_ratio_padded_to_longest_vs_77", longest),
        "accelerator_zero_shot_vs_pipeline": figure(
            zero_shot["ours_bf16_autocast"], zero_shot["clip_pipeline"], f"{CLIP_PIPELINE}, fp32, same device",
            "images/s", note=f"ours: ZeroShotClassifier over {accelerator['zero_shot']['num_classes']} classes, bf16 "
                             "autocast around preprocessing + image forward + matmul"),
        "accelerator_loader_workers_per_accelerator": loader_workers_figure(train["ours_longest"],
                                                                            accelerator["data_path"]),
        "accelerator": accelerator,
    }


def loader_workers_figure(images_per_s: float, data_path: dict) -> dict:
    """Dataloader worker processes (one host core each) that keep one accelerator's training step (`images_per_s`)
    fed: ours with reduced-scale JPEG decoding, the peer with full-size decodes (value: ours; fewer is better)."""
    if "skipped" in data_path:
        return data_path
    per_core = data_path["samples_per_s_per_core"]
    ours, peer = (math.ceil(images_per_s / per_core[name]) for name in ("draft", "full_decode"))
    return {**figure(ours, peer, "the same data path with full-size JPEG decoding", "workers",
                     images_per_s_to_feed=images_per_s, samples_per_s_per_core=per_core,
                     note="the accelerator's training step (ours, padded to the longest caption) over one host "
                          "core's data-path samples/s (benchmark 6, measured on this host in the same run)"),
            "value": ours}


# ------------------------------------------------------------------------------------------------ markdown
def _num(x) -> str:
    return f"{x:.3g}" if isinstance(x, float) and abs(x) < 1000 else f"{x:,.0f}" if isinstance(x, float) else str(x)


def _table(results: dict, rows: list) -> list[str]:
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
        lines.append(f"| `{key}` | {_num(fig['ours'])} {unit} | {_num(fig['peer'])} {unit} | {fig['peer_name']} | "
                     f"{_num(value)} | {goal} |")
    return lines


def markdown(results: dict) -> str:
    """The figures as a table (ours, peer, value, goal), then the pipeline cache, ONNX Runtime and the machine in a
    few lines; an accelerator run (`--device cuda`) has its own rows."""
    m = results["machine"]
    if results.get("device", "cpu") != "cpu":
        lines = _table(results, ACCELERATOR_ROWS)
        lines.append(f"\nAccelerator: {m['accelerator']} (torch.compile {'on' if m['compile'] else 'off'}); host "
                     f"{m['cpu']}, torch {m['torch']}, transformers {m['transformers']}. Mode: {results['mode']} "
                     f"({results['elapsed_s']:.0f} s).")
        return "\n".join(lines)
    if "onnx_image_run_modes" in results:  # --onnx_runs_only
        lines = onnx_runs_markdown(results)
        lines.append(f"\nMachine: {m['cpu']}, {m['cpu_count']} cores, load average {m['load_average_at_start']} at "
                     f"the start, {m['load_average_at_end']} at the end. Mode: {results['mode']} "
                     f"({results['elapsed_s']:.0f} s).")
        return "\n".join(lines)
    if "zero_shot" not in results:  # --data_path_only
        lines = _table(results, [row for row in ROWS if row[0] == "data_path_speedup_vs_full_decode"])
        lines.append("\n" + data_path_line(results))
        lines.append(f"Machine: {m['cpu']}, {m['cpu_count']} cores, load average {m['load_average_at_start']} at the "
                     f"start, {m['load_average_at_end']} at the end. Mode: {results['mode']} "
                     f"({results['elapsed_s']:.0f} s).")
        return "\n".join(lines)
    lines = _table(results, ROWS)
    lines.append("\n" + data_path_line(results))
    cache = results["zero_shot_pipeline_cache"]
    lines.append(f"Pipeline on the UniCL folder: first call {cache['first_call_s']:.2f} s/image "
                 f"({cache['first_call_text_forwards']} text forward), later calls "
                 f"{cache['later_calls_images_per_s']:.2f} images/s ({cache['later_calls_text_forwards']} text forwards).")
    onnx = results["zero_shot_onnx"]
    if "skipped" not in onnx:
        parity = max(onnx["parity_max_abs_diff"].values())
        lines.append(f"ONNX Runtime: export with --int8 {onnx['export_s']:.0f} s (fp32 graphs vs PyTorch: max "
                     f"|diff| {parity:.1e}); fp32 {results['zero_shot_onnx_fp32_speedup_vs_pipeline']['vs_eager']:.2f}x "
                     f"eager, int8 {results['zero_shot_onnx_int8_speedup_vs_pipeline']['vs_onnx_fp32']:.2f}x ONNX "
                     f"Runtime fp32; fractions of the FLOP ceiling: " + ", ".join(
                         f"{name} {value:.2f}" for name, value in
                         results["zero_shot_fraction_of_ceiling"]["fractions_of_ceiling"].items()) + ".")
    lines.append(f"Machine: {m['cpu']}, {m['cpu_count']} cores, {m['torch_threads']} torch threads, torch {m['torch']}, "
                 f"transformers {m['transformers']}, keep_freed_memory {'on' if m['keep_freed_memory'] else 'off'} "
                 f"(every model alike). Mode: {results['mode']} ({results['elapsed_s']:.0f} s).")
    return "\n".join(lines)
