#!/usr/bin/env python
"""The paper's comparison in miniature, on the embedded animal silhouettes.

Trains the same small model (the `animals-small` preset of modeling_unicl.presets) in the paper's regimes:
  (a) supervised   image-label data only (7 seen classes, class-name prompts; the unified loss then behaves like
                   supervised learning: every prompt of a class is a positive)
  (b) clip         image-text data only, CLIP's loss (every pair its own label)
  (c) unicl        the union of both with the unified loss; every regime sees each of its samples `--epochs` times,
                   so (c) takes more steps
  (c') unicl@clip  UniCL on the union, stopped at (b)'s step budget
and reports zero-shot top-1 within the seen classes, within the held-out classes (each benchmark scored on its own
class set, as in the paper) and over all 10 classes, plus linear-probe top-1 (all 10 classes), as mean and spread
over `--seeds`. Writes `comparison.md`, `comparison.json` and `comparison.png` to `--output_dir`.

    python scripts/reproduce_comparison.py --seeds 0 1 --epochs 10 --output_dir comparison
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cli_utils import UsageError, exit_on_usage_error, markdown_table

REGIMES = ("supervised", "clip", "unicl", "unicl@clip-steps")
REGIME_TITLES = {
    "supervised": "(a) image-label only",
    "clip": "(b) image-text only, CLIP loss",
    "unicl": "(c) UniCL, union",
    "unicl@clip-steps": "(c) UniCL, union, at (b)'s steps",
}
METRICS = ("zero_shot_seen", "zero_shot_held_out", "zero_shot_all", "linear_probe_all")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=float, default=10.0, help="passes over each regime's own samples")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads, fixed for comparability")
    parser.add_argument("--output_dir", default="comparison")
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    return parser.parse_args(argv)


def train_regime(regime, data, seed, args, output_dir, max_steps=None):
    """Trains one regime; returns (model, processor, number of optimizer steps)."""
    from transformers import TrainingArguments, set_seed

    from modeling_unicl.data import build_training_dataset
    from modeling_unicl.training.trainer import UniCLTrainer
    from modeling_unicl import UniCLModel
    from modeling_unicl.presets import MODEL_PRESETS, processor_for_config

    set_seed(seed)  # before the model exists: its initial weights come from the global RNG
    config = MODEL_PRESETS["animals-small"].config()
    model, processor = UniCLModel(config), processor_for_config(config)
    label_sets = [data.label_train] if regime in ("supervised", "unicl", "unicl@clip-steps") else []
    caption_sets = [data.caption_train] if regime in ("clip", "unicl", "unicl@clip-steps") else []
    # the main job's augmentation: mild crops, no flips (captions say left/right)
    train_dataset = build_training_dataset(
        processor, label_sets, caption_sets, seed=seed, crop_scale=(0.6, 1.0), flip_prob=0.0
    )
    training_args = TrainingArguments(
        output_dir=str(output_dir), num_train_epochs=args.epochs, max_steps=max_steps or -1,
        per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate, weight_decay=0.05,
        warmup_steps=20, lr_scheduler_type="cosine", logging_steps=50, save_strategy="no", report_to=[],
        dataloader_num_workers=0, seed=seed, use_cpu=True, disable_tqdm=True,
    )
    trainer = UniCLTrainer(model=model, args=training_args, train_dataset=train_dataset, processing_class=processor)
    trainer.train()
    return trainer.model.eval(), processor, trainer.state.global_step


def score(model, processor, data, seed):
    from linear_probe import run_linear_probe

    from modeling_unicl.evaluation.zero_shot import evaluate_zero_shot

    results = {
        "zero_shot_seen": evaluate_zero_shot(model, processor, data.eval_seen)["top1"],
        "zero_shot_held_out": evaluate_zero_shot(model, processor, data.eval_held_out)["top1"],
        "zero_shot_all": evaluate_zero_shot(model, processor, data.eval_all)["top1"],
    }
    split = data.eval_all.train_test_split(test_size=0.5, seed=seed, stratify_by_column="label")
    parts = split["train"].train_test_split(test_size=0.2, seed=seed)
    probe = run_linear_probe(model, processor, parts["train"], parts["test"], split["test"])
    results["linear_probe_all"] = probe.test_accuracy
    return results


def mean_and_spread(values):
    mean = sum(values) / len(values)
    spread = (max(values) - min(values)) / 2 if len(values) > 1 else 0.0
    return mean, spread


def write_report(runs, args, output_dir: Path, seconds: float):
    summary = {}
    for regime in args.regimes:
        per_seed = [r for r in runs if r["regime"] == regime]
        if not per_seed:
            continue
        summary[regime] = {m: mean_and_spread([r[m] for r in per_seed]) for m in METRICS}
        summary[regime]["steps"] = mean_and_spread([r["steps"] for r in per_seed])[0]
    header = ["regime", "steps", "zero-shot seen (7)", "zero-shot held-out (3)", "zero-shot all (10)", "linear probe (10)"]
    rows = [
        [REGIME_TITLES[regime], int(s["steps"])] + [f"{100 * s[m][0]:.1f} ± {100 * s[m][1]:.1f}" for m in METRICS]
        for regime, s in summary.items()
    ]
    table = markdown_table(header, rows)
    note = (
        f"Top-1 accuracy in %, mean ± half-range over seeds {args.seeds}; {args.epochs:g} passes over each regime's "
        f"samples, batch {args.batch_size}, torch threads {args.threads}; {seconds / 60:.1f} min in all. Chance: "
        "14.3 (seen), 33.3 (held-out), 10.0 (all). Differences within the spread are not claims."
    )
    (output_dir / "comparison.md").write_text(table + "\n\n" + note + "\n")
    (output_dir / "comparison.json").write_text(json.dumps({"runs": runs, "summary": summary, "args": vars(args)}, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(summary)
    for i, (regime, s) in enumerate(summary.items()):
        xs = [j + i * width for j in range(len(METRICS))]
        ax.bar(xs, [100 * s[m][0] for m in METRICS], width, yerr=[100 * s[m][1] for m in METRICS],
               label=REGIME_TITLES[regime], capsize=3)
    ax.set_xticks([j + width * (len(summary) - 1) / 2 for j in range(len(METRICS))])
    ax.set_xticklabels(["zero-shot\nseen (7)", "zero-shot\nheld-out (3)", "zero-shot\nall (10)", "linear probe\nall (10)"])
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"UniCL in miniature: embedded animal silhouettes, {len(args.seeds)} seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(output_dir / "comparison.png", dpi=120)
    return table, note


@exit_on_usage_error
def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.seeds or args.epochs <= 0:
        raise UsageError("--seeds needs at least one seed and --epochs must be positive.")
    if "unicl@clip-steps" in args.regimes and "clip" not in args.regimes:
        raise UsageError("--regimes: unicl@clip-steps needs the clip regime (its step budget).")
    import torch

    from modeling_unicl.data.embedded import build_embedded_datasets
    from modeling_unicl.presets import MODEL_PRESETS

    torch.set_num_threads(args.threads)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    image_size = MODEL_PRESETS["animals-small"].vision_config["image_size"]
    runs, start = [], time.time()
    for seed in args.seeds:
        data = build_embedded_datasets(seed=seed, image_size=image_size)
        clip_steps = None
        for regime in args.regimes:
            max_steps = clip_steps if regime == "unicl@clip-steps" else None
            model, processor, steps = train_regime(regime, data, seed, args, output_dir / f"run-{regime}-{seed}", max_steps)
            if regime == "clip":
                clip_steps = steps
            result = {"regime": regime, "seed": seed, "steps": steps, **score(model, processor, data, seed)}
            runs.append(result)
            print(json.dumps(result), flush=True)
    table, note = write_report(runs, args, output_dir, time.time() - start)
    print("\n" + table + "\n\n" + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
