#!/usr/bin/env python
"""The paper's claims in miniature: UniCL vs cross-entropy on pure labels, UniCL vs supervised vs CLIP on the union,
and caption-to-class linking.

Study "union" (the embedded animal silhouettes, the main job's model: the `animals-small` preset, a ResNet at 48 px):
  (a)  supervised   image-label data only (7 seen classes), UniCL's loss on class prompts (the paper's supervised regime)
  (a') ce           the same image tower + a linear classifier, cross-entropy on the same label data
  (b)  clip         image-text data only, CLIP's loss (every pair its own label)
  (c)  unicl        the union with UniCL's loss; each source seen `--epochs` times, as in its single-source regime
  (c') unicl@clip   the union stopped at (b)'s step budget (equal steps)
  (d)  unicl+link   (c) with caption-to-class linking (`link_captions_to_classes=True`)
scored by zero-shot top-1 within the seen classes, within the held-out classes (each on its own class set, as the
paper does), over all 10, and by a linear probe over all 10 (ce: its classifier's top-1 within the seen classes).

Study "pure_label": UniCL's loss on image-label data only vs cross-entropy, for two image towers (ResNet, Swin) on two
labelled image sets: the silhouettes (7 seen classes) and scikit-learn's handwritten digits (`load_digits`, BSD,
1,797 8x8 images; needs `pip install scikit-learn`). Scored top-1 on each set's test images: UniCL by class-name
prompts, cross-entropy by its classifier.

Every run is seeded before its model exists; every regime uses the same data splits, augmentation (mild random
crops, no flips) and optimiser settings; torch threads are fixed (`--threads`). Results: mean ± half-range over
`--seeds`; a difference counts only beyond the spread (the two half-ranges added). Writes `comparison.md`,
`comparison.json` and `comparison.png` to `--output_dir`.

    python scripts/reproduce_comparison.py --seeds 0 1 2 --output_dir comparison
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import lru_cache
from pathlib import Path

from cli_utils import UsageError, exit_on_usage_error, markdown_table

REGIMES = ("supervised", "ce", "clip", "unicl", "unicl@clip-steps", "unicl+link")
REGIME_TITLES = {
    "supervised": "(a) image-label only, UniCL loss",
    "ce": "(a') image-label only, cross-entropy",
    "clip": "(b) image-text only, CLIP loss",
    "unicl": "(c) UniCL, union",
    "unicl@clip-steps": "(c) UniCL, union, at (b)'s steps",
    "unicl+link": "(d) UniCL, union, captions linked",
}
METRICS = ("zero_shot_seen", "zero_shot_held_out", "zero_shot_all", "linear_probe_all")
STUDIES = ("union", "pure_label")
TOWERS = ("resnet", "swin")
DATASETS = ("silhouettes", "digits")
# the Swin of the pure-label study: the main job's tower until issue 15 (2 stages, patch 4, window 3)
SWIN_VISION = dict(
    model_type="swin", patch_size=4, embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=3, drop_path_rate=0.0
)
IMAGE_SIZES = {"silhouettes": 48, "digits": 32}  # the digits are 8x8: more pixels add nothing but time
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=float, default=10.0, help="passes over each regime's own samples")
    parser.add_argument("--digits_epochs", type=float, default=15.0,
                        help="passes over the 1,297 training digits (15: the whole comparison fits 30 min on 2 cores)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads per run, fixed for comparability")
    parser.add_argument("--jobs", type=int, default=2,
                        help="runs trained at once, each in its own process (default 2: one per core of a 2-core machine "
                             "at --threads 1; the numbers do not depend on it)")
    parser.add_argument("--output_dir", default="comparison")
    parser.add_argument("--studies", nargs="+", default=list(STUDIES), choices=STUDIES)
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    parser.add_argument("--towers", nargs="+", default=list(TOWERS), choices=TOWERS, help="pure-label study")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS, help="pure-label study")
    parser.add_argument("--max_steps", type=int, default=None, help="cap every run (smoke tests only)")
    parser.add_argument("--num_train", type=int, default=None, help="cap every training set (smoke tests only)")
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------------------------- data
class Data:
    """One labelled set's splits: `label_train` (+ `caption_train` and the held-out benchmarks for the silhouettes)."""

    def __init__(self, label_train, eval_seen, caption_train=None, eval_held_out=None, eval_all=None):
        self.label_train, self.eval_seen, self.caption_train = label_train, eval_seen, caption_train
        self.eval_held_out, self.eval_all = eval_held_out, eval_all


def load_data(name: str, seed: int, num_train: int | None = None) -> Data:
    if name == "silhouettes":
        from modeling_unicl.data.embedded import build_embedded_datasets

        d = build_embedded_datasets(seed=seed, image_size=IMAGE_SIZES[name])
        data = Data(d.label_train, d.eval_seen, d.caption_train, d.eval_held_out, d.eval_all)
    else:
        data = load_digits_data(IMAGE_SIZES[name])
    if num_train:
        data.label_train = data.label_train.select(range(min(num_train, len(data.label_train))))
        if data.caption_train is not None:
            data.caption_train = data.caption_train.select(range(min(num_train, len(data.caption_train))))
    return data


def load_digits_data(image_size: int, test_size: int = 500) -> Data:
    """scikit-learn's 8x8 digits as RGB images of `image_size` px, white on black; a fixed stratified split (the same
    for every seed): 1,297 training and 500 test images."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise UsageError("--datasets digits needs scikit-learn: pip install scikit-learn") from error
    import datasets
    import numpy as np
    from PIL import Image

    digits = load_digits()
    pixels = np.clip(digits.images * (255 / 16), 0, 255).astype(np.uint8)
    images = [Image.fromarray(p).resize((image_size, image_size), Image.BILINEAR).convert("RGB") for p in pixels]
    rng = np.random.default_rng(0)
    test = np.concatenate([rng.permutation(np.flatnonzero(digits.target == c))[: test_size // 10] for c in range(10)])
    train = np.setdiff1d(np.arange(len(images)), test)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(DIGIT_NAMES))})

    def split(rows):
        return datasets.Dataset.from_dict(
            {"image": [images[i] for i in rows], "label": [int(digits.target[i]) for i in rows]}, features=features
        )

    return Data(split(train), split(test))


# --------------------------------------------------------------------------------------------------- training
def model_config(tower: str, image_size: int):
    """The main job's model (the `animals-small` preset) at `image_size`, with its ResNet or the Swin image tower."""
    import dataclasses

    from modeling_unicl.presets import MODEL_PRESETS

    preset = MODEL_PRESETS["animals-small"]
    vision = SWIN_VISION if tower == "swin" else preset.vision_config
    return dataclasses.replace(preset, vision_config={**vision, "image_size": image_size}).config()


def training_arguments(args, seed, output_dir, epochs, max_steps):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output_dir), num_train_epochs=epochs, max_steps=max_steps or -1,
        per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate, weight_decay=0.05,
        warmup_steps=20, lr_scheduler_type="cosine", logging_steps=50, save_strategy="no", report_to=[],
        dataloader_num_workers=0, seed=seed, use_cpu=True, disable_tqdm=True,
    )


def train_unicl(config, label_sets, caption_sets, seed, training_args, link=False):
    """UniCL's loss on the given sources; returns (model, processor, optimizer steps)."""
    from transformers import set_seed

    from modeling_unicl import UniCLModel
    from modeling_unicl.data import build_training_dataset
    from modeling_unicl.presets import processor_for_config
    from modeling_unicl.training.trainer import UniCLTrainer

    set_seed(seed)  # before the model exists: its initial weights come from the global RNG
    model, processor = UniCLModel(config), processor_for_config(config)
    # the main job's augmentation: mild crops, no flips (captions say left/right)
    train_dataset = build_training_dataset(
        processor, label_sets, caption_sets, seed=seed, crop_scale=(0.6, 1.0), flip_prob=0.0,
        link_captions_to_classes=link,
    )
    trainer = UniCLTrainer(model=model, args=training_args, train_dataset=train_dataset, processing_class=processor)
    trainer.train()
    return trainer.model.eval(), processor, trainer.state.global_step


def _image_batch(features):
    import torch

    return {"pixel_values": torch.stack([f["pixel_values"] for f in features]),
            "labels": torch.as_tensor([f["labels"] for f in features], dtype=torch.long)}


def _cross_entropy(outputs, labels, num_items_in_batch=None):
    import torch

    return torch.nn.functional.cross_entropy(outputs.logits.float(), labels)


def train_cross_entropy(config, label_set, seed, training_args):
    """The cross-entropy baseline: `UniCLForImageClassification` from scratch (the same image tower and projection,
    a linear classifier over the label set's classes) on the same samples, augmentation and epoch order as UniCL's
    regimes (a `UniCLTrainingDataset` and its sampler). Returns (classifier, processor, optimizer steps)."""
    from transformers import set_seed

    from modeling_unicl import UniCLForImageClassification
    from modeling_unicl.data import build_training_dataset
    from modeling_unicl.presets import processor_for_config
    from modeling_unicl.training.trainer import UniCLTrainer

    names = label_set.features["label"].names
    config.id2label, config.label2id = dict(enumerate(names)), {name: i for i, name in enumerate(names)}
    set_seed(seed)
    model, processor = UniCLForImageClassification(config), processor_for_config(config)
    train_dataset = build_training_dataset(processor, [label_set], [], seed=seed, crop_scale=(0.6, 1.0), flip_prob=0.0)
    trainer = UniCLTrainer(
        model=model, args=training_args, train_dataset=train_dataset, processing_class=processor,
        data_collator=_image_batch, compute_loss_func=_cross_entropy,
    )
    trainer.train()
    return trainer.model.eval(), processor, trainer.state.global_step


# ---------------------------------------------------------------------------------------------------- scoring
def classifier_top1(classifier, processor, dataset, batch_size: int = 128) -> float:
    import torch

    correct = 0
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            rows = dataset[start : start + batch_size]
            pixel_values = processor.image_processor(rows["image"], return_tensors="pt")["pixel_values"]
            predictions = classifier(pixel_values=pixel_values).logits.argmax(-1)
            correct += int((predictions == torch.as_tensor(rows["label"])).sum())
    return correct / len(dataset)


def image_side(classifier, config):
    """A `UniCLModel` holding the classifier's image tower and projection (for the linear probe's embeddings)."""
    from modeling_unicl import UniCLModel

    model = UniCLModel(config)
    weights = {k: v for k, v in classifier.state_dict().items() if k.startswith(("vision_model.", "visual_projection."))}
    missing = model.load_state_dict(weights, strict=False).missing_keys
    assert not any(k.startswith(("vision_model.", "visual_projection.")) for k in missing), missing
    return model.eval()


def linear_probe_top1(model, processor, eval_all, seed) -> float:
    """Linear probe over all 10 classes: fitted on one stratified half of the evaluation images (L2 chosen on a fifth
    of that half), scored on the other half."""
    from linear_probe import run_linear_probe

    split = eval_all.train_test_split(test_size=0.5, seed=seed, stratify_by_column="label")
    parts = split["train"].train_test_split(test_size=0.2, seed=seed)
    return run_linear_probe(model, processor, parts["train"], parts["test"], split["test"]).test_accuracy


def score_union(model, processor, data, seed) -> dict:
    from modeling_unicl.evaluation.zero_shot import evaluate_zero_shot

    return {
        "zero_shot_seen": evaluate_zero_shot(model, processor, data.eval_seen)["top1"],
        "zero_shot_held_out": evaluate_zero_shot(model, processor, data.eval_held_out)["top1"],
        "zero_shot_all": evaluate_zero_shot(model, processor, data.eval_all)["top1"],
        "linear_probe_all": linear_probe_top1(model, processor, data.eval_all, seed),
    }


# ------------------------------------------------------------------------------------------------------- runs
# Every run is one task: (study, what, seed). Tasks are independent (each seeds its own model and data), so they run
# in `--jobs` processes of `--threads` threads each and give the same numbers as one after another.
def plan_tasks(args) -> list[dict]:
    """Every run the studies need. The ResNet on the silhouettes of the pure-label study is the union study's (a)
    and (a'), so it is not trained twice when the union study runs them."""
    tasks = []
    for seed in args.seeds:
        if "union" in args.studies:
            tasks += [{"study": "union", "regime": regime, "seed": seed} for regime in args.regimes]
        if "pure_label" in args.studies:
            for dataset in args.datasets:
                for tower in args.towers:
                    for objective in ("unicl", "ce"):
                        if _reused_union_regime(tower, dataset, objective, args):
                            continue
                        tasks.append({"study": "pure_label", "tower": tower, "dataset": dataset,
                                      "objective": objective, "seed": seed})
    return tasks


def _reused_union_regime(tower, dataset, objective, args) -> str | None:
    regime = {"unicl": "supervised", "ce": "ce"}[objective]
    reused = tower == "resnet" and dataset == "silhouettes" and "union" in args.studies and regime in args.regimes
    return regime if reused else None


def steps_of_passes(num_rows: int, epochs: float, batch_size: int) -> int:
    """The optimizer steps of `epochs` passes over `num_rows` samples, as the Trainer counts them (the last batch of
    a pass may be partial): (b)'s step budget, known before (b) runs."""
    return math.ceil(epochs * math.ceil(num_rows / batch_size))


@lru_cache(maxsize=4)
def _data(name: str, seed: int, num_train: int | None) -> Data:
    return load_data(name, seed, num_train)


def run_task(task: dict, args) -> dict:
    """Trains and scores one task; returns its row (scores, steps, wall and CPU seconds)."""
    import torch

    torch.set_num_threads(args.threads)
    seed, output_dir = task["seed"], Path(args.output_dir)
    start = _clock()
    if task["study"] == "union":
        regime, data = task["regime"], _data("silhouettes", seed, args.num_train)
        config = model_config("resnet", IMAGE_SIZES["silhouettes"])
        max_steps = args.max_steps
        if regime == "unicl@clip-steps":
            max_steps = min(args.max_steps or math.inf, steps_of_passes(len(data.caption_train), args.epochs,
                                                                         args.batch_size))
        training_args = training_arguments(args, seed, output_dir / f"run-{regime}-{seed}", args.epochs, max_steps)
        if regime == "ce":
            classifier, processor, steps = train_cross_entropy(config, data.label_train, seed, training_args)
            scores = {"zero_shot_seen": classifier_top1(classifier, processor, data.eval_seen),
                      "linear_probe_all": linear_probe_top1(image_side(classifier, config), processor, data.eval_all, seed)}
        else:
            labels = [data.label_train] if regime != "clip" else []
            captions = [data.caption_train] if regime != "supervised" else []
            model, processor, steps = train_unicl(config, labels, captions, seed, training_args, regime == "unicl+link")
            scores = score_union(model, processor, data, seed)
        return {**task, "steps": steps, **scores, **_since(start)}

    from modeling_unicl.evaluation.zero_shot import evaluate_zero_shot

    tower, dataset, objective = task["tower"], task["dataset"], task["objective"]
    data = _data(dataset, seed, args.num_train)
    epochs = args.epochs if dataset == "silhouettes" else args.digits_epochs
    config = model_config(tower, IMAGE_SIZES[dataset])
    folder = output_dir / f"run-{tower}-{dataset}-{objective}-{seed}"
    training_args = training_arguments(args, seed, folder, epochs, args.max_steps)
    if objective == "ce":
        classifier, processor, steps = train_cross_entropy(config, data.label_train, seed, training_args)
        top1 = classifier_top1(classifier, processor, data.eval_seen)
    else:
        model, processor, steps = train_unicl(config, [data.label_train], [], seed, training_args)
        top1 = evaluate_zero_shot(model, processor, data.eval_seen)["top1"]
    return {**task, "steps": steps, "top1": top1, **_since(start)}


def run_tasks(tasks: list[dict], args) -> list[dict]:
    """The rows of `tasks`, in plan order; with `--jobs` > 1 in that many spawned processes (longest tasks first)."""
    rows = [None] * len(tasks)
    if args.jobs == 1:
        for index, task in enumerate(tasks):
            rows[index] = run_task(task, args)
            print(json.dumps(rows[index]), flush=True)
        return rows
    # spawn, not fork: a forked child of a process that has run torch's thread pool can hang
    context = multiprocessing.get_context("spawn")
    order = sorted(range(len(tasks)), key=lambda i: -_expected_cost(tasks[i]))
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        futures = {pool.submit(run_task, tasks[i], args): i for i in order}
        for future in as_completed(futures):
            rows[futures[future]] = future.result()
            print(json.dumps(rows[futures[future]]), flush=True)
    return rows


def _expected_cost(task: dict) -> float:
    """Rough relative cost, only to start the longest tasks first."""
    if task["study"] == "union":
        return {"unicl": 2.0, "unicl+link": 2.0, "unicl@clip-steps": 1.0, "supervised": 1.0, "clip": 1.0}.get(
            task["regime"], 0.5)
    return 1.5 if task["tower"] == "swin" else 0.7


def with_reused_runs(rows: list[dict], args) -> list[dict]:
    """`rows` plus the pure-label rows that are the union study's runs (see `plan_tasks`)."""
    out = list(rows)
    for seed in args.seeds if "pure_label" in args.studies else ():
        for dataset in args.datasets:
            for tower in args.towers:
                for objective in ("unicl", "ce"):
                    regime = _reused_union_regime(tower, dataset, objective, args)
                    if regime is None:
                        continue
                    union = next(r for r in rows if r["study"] == "union" and r["regime"] == regime and r["seed"] == seed)
                    out.append({"study": "pure_label", "tower": tower, "dataset": dataset, "objective": objective,
                                "seed": seed, "steps": union["steps"], "top1": union["zero_shot_seen"]})
    return out


def _clock() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.time(), usage.ru_utime + usage.ru_stime


def _since(start) -> dict:
    wall, cpu = _clock()
    return {"wall_s": round(wall - start[0], 1), "cpu_s": round(cpu - start[1], 1)}


# ----------------------------------------------------------------------------------------------------- report
def mean_and_spread(values):
    mean = sum(values) / len(values)
    spread = (max(values) - min(values)) / 2 if len(values) > 1 else 0.0
    return mean, spread


def verdict(better, worse, claim="beats") -> str:
    """'holds' when the claimed difference exceeds the two half-ranges added, 'does not hold' when the opposite one
    does, else 'within noise'. `claim="rivals"`: holds unless `better` is worse beyond the spread."""
    difference, spread = better[0] - worse[0], better[1] + worse[1]
    if claim == "rivals":
        return "holds" if difference >= -spread else "does not hold"
    return "holds" if difference > spread else ("does not hold" if difference < -spread else "within noise")


def _cell(stat):
    return "-" if stat is None else f"{100 * stat[0]:.1f} ± {100 * stat[1]:.1f}"


def summarise(runs, args) -> dict:
    union = {}
    for regime in REGIMES:
        per_seed = [r for r in runs if r["study"] == "union" and r["regime"] == regime]
        if per_seed:
            union[regime] = {m: mean_and_spread([r[m] for r in per_seed]) if m in per_seed[0] else None for m in METRICS}
            union[regime]["steps"] = mean_and_spread([r["steps"] for r in per_seed])[0]
    pure = {}
    for r in runs:
        if r["study"] == "pure_label":
            pure.setdefault((r["tower"], r["dataset"]), {}).setdefault(r["objective"], []).append(r["top1"])
    pure = {key: {objective: mean_and_spread(values) for objective, values in by.items()} for key, by in pure.items()}
    return {"union": union, "pure_label": pure}


def claims(summary) -> list[list[str]]:
    """[claim, measure, difference, verdict] for every claim the runs can decide."""
    union, rows = summary["union"], []

    def compare(title, a, b, metric, claim="beats"):
        if a in union and b in union and union[a][metric] and union[b][metric]:
            x, y = union[a][metric], union[b][metric]
            rows.append([title, metric.replace("_", " "), f"{100 * (x[0] - y[0]):+.1f} (spread {100 * (x[1] + y[1]):.1f})",
                         verdict(x, y, claim)])

    for metric in ("zero_shot_all", "linear_probe_all"):
        compare("UniCL (c) beats CLIP-style (b)", "unicl", "clip", metric)
        compare("UniCL (c) at (b)'s steps beats CLIP-style (b)", "unicl@clip-steps", "clip", metric)
    for metric in METRICS:
        compare("UniCL (c) beats supervised (a)", "unicl", "supervised", metric)
    compare("UniCL (c) at equal steps beats supervised (a)", "unicl@clip-steps", "supervised", "zero_shot_seen")
    compare("UniCL on labels (a) rivals cross-entropy (a')", "supervised", "ce", "zero_shot_seen", "rivals")
    for (tower, dataset), by in summary["pure_label"].items():
        if "unicl" in by and "ce" in by:
            x, y = by["unicl"], by["ce"]
            rows.append([f"pure labels: UniCL rivals cross-entropy ({tower}, {dataset})", "top-1",
                         f"{100 * (x[0] - y[0]):+.1f} (spread {100 * (x[1] + y[1]):.1f})", verdict(x, y, "rivals")])
    for metric in METRICS:
        compare("linking (d) helps plain UniCL (c)", "unicl+link", "unicl", metric)
    return rows


def write_report(runs, args, output_dir: Path, seconds: float, cpu_seconds: float | None = None):
    summary = summarise(runs, args)
    parts = []
    if summary["union"]:
        header = ["regime", "steps", "zero-shot seen (7)", "zero-shot held-out (3)", "zero-shot all (10)",
                  "linear probe (10)"]
        parts.append(markdown_table(header, [
            [REGIME_TITLES[regime], int(s["steps"])] + [_cell(s[m]) for m in METRICS] for regime, s in summary["union"].items()
        ]))
    if summary["pure_label"]:
        header = ["image tower", "data set", "UniCL loss, labels only", "cross-entropy"]
        parts.append(markdown_table(header, [
            [tower, dataset, _cell(by.get("unicl")), _cell(by.get("ce"))]
            for (tower, dataset), by in summary["pure_label"].items()
        ]))
    verdicts = claims(summary)
    if verdicts:
        parts.append(markdown_table(["claim", "measure", "difference (points)", "verdict"], verdicts))
    cpu = f", {cpu_seconds / 60:.1f} CPU-min" if cpu_seconds is not None else ""
    note = (
        f"Top-1 accuracy in %, mean ± half-range over seeds {args.seeds}; {args.epochs:g} passes over each regime's "
        f"samples (digits: {args.digits_epochs:g}), batch {args.batch_size}, torch threads {args.threads}; "
        f"{seconds / 60:.1f} min in all{cpu}. (a') is scored by its classifier (it has no text tower). Chance: 14.3 "
        "(seen), 33.3 (held-out), 10.0 (all, digits). A difference is a claim only beyond the spread (both "
        "half-ranges added)."
    )
    table = "\n\n".join(parts)
    (output_dir / "comparison.md").write_text(table + "\n\n" + note + "\n")
    serialisable = {"union": summary["union"],
                    "pure_label": {f"{t}/{d}": by for (t, d), by in summary["pure_label"].items()}}
    (output_dir / "comparison.json").write_text(
        json.dumps({"runs": runs, "summary": serialisable, "claims": verdicts, "args": vars(args)}, indent=2) + "\n")
    if summary["union"]:
        plot(summary["union"], args, output_dir / "comparison.png")
    return table, note


def plot(union, args, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4))
    width = 0.8 / len(union)
    for i, (regime, s) in enumerate(union.items()):
        xs = [j + i * width for j, m in enumerate(METRICS) if s[m]]
        ax.bar(xs, [100 * s[m][0] for m in METRICS if s[m]], width, yerr=[100 * s[m][1] for m in METRICS if s[m]],
               label=REGIME_TITLES[regime], capsize=3)
    ax.set_xticks([j + width * (len(union) - 1) / 2 for j in range(len(METRICS))])
    ax.set_xticklabels(["zero-shot\nseen (7)", "zero-shot\nheld-out (3)", "zero-shot\nall (10)", "linear probe\nall (10)"])
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"UniCL in miniature: embedded animal silhouettes, ResNet 48 px, {len(args.seeds)} seeds")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over them
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@exit_on_usage_error
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.jobs < 1 or args.threads < 1:
        raise UsageError(f"--jobs and --threads must be at least 1, got --jobs {args.jobs} --threads {args.threads}.")
    if not args.seeds or args.epochs <= 0 or args.digits_epochs <= 0:
        raise UsageError("--seeds needs at least one seed and --epochs / --digits_epochs must be positive.")
    if "union" in args.studies and "unicl@clip-steps" in args.regimes and "clip" not in args.regimes:
        raise UsageError("--regimes: unicl@clip-steps needs the clip regime (its step budget).")
    import torch

    torch.set_num_threads(args.threads)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    runs = with_reused_runs(run_tasks(plan_tasks(args), args), args)
    wall_s = round(time.time() - start, 1)
    cpu_s = round(sum(run.get("cpu_s", 0.0) for run in runs), 1)  # of every process, not only this one
    table, note = write_report(runs, args, output_dir, wall_s, cpu_s)
    print("\n" + table + "\n\n" + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
