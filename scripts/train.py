#!/usr/bin/env python
"""Train UniCL on image-label and image-text data with `UniCLTrainer`, then report zero-shot accuracy.

With no arguments it runs the embedded default: a small UniCL trained on real animal silhouettes that ship with the
package (image-label data for 7 classes, generated image-caption pairs mentioning all 10), about 4 minutes on 2 CPU
cores, ending with a zero-shot table and a saved model folder (`unicl-animals/`).

    python scripts/train.py                                   # the embedded default
    python scripts/train.py --image_label_datasets ./my_labelled_ds --image_text_datasets ./my_captions \\
        --config_name swin-tiny --output_dir out --num_train_epochs 30 --per_device_train_batch_size 128
    torchrun --nproc_per_node 2 scripts/train.py ...          # or: accelerate launch scripts/train.py ...

Every `TrainingArguments` option is accepted. Datasets are a `save_to_disk` folder, an `imagefolder` directory or a
`datasets` Hub name; image-label datasets need a `ClassLabel` column (or `--class_names`). Without datasets the run is
the embedded default and any flags given override its settings (`python scripts/train.py --num_train_epochs 2`).
"""


from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cli_utils import (
    UsageError,
    apply_threads,
    check_unicl_folder,
    exit_on_usage_error,
    load_dataset_argument,
    load_streaming_dataset_argument,
    markdown_table,
)

from modeling_unicl.presets import MODEL_PRESETS

logger = logging.getLogger("unicl.train")

EMBEDDED_OUTPUT_DIR = "unicl-animals"

HELP_INTRO = """Train UniCL on image-label and image-text data, then report zero-shot accuracy.

With no dataset arguments it runs the embedded default: a small 48 px UniCL trained on animal silhouettes that ship
with the package (~3 min on 2 CPU cores), saved to unicl-animals/. It is a demonstration of the method, not a model
for real photos: for that, convert a released checkpoint (README, "Released checkpoints").

The flags a user changes first:
  --image_label_datasets D [D ...]   labelled images (save_to_disk folder, imagefolder, Hub name)
  --image_text_datasets D [D ...]    image-caption pairs
  --image_text_shards P [P ...]  --image_label_shards P [P ...] --class_names_file F   webdataset shards
                                     ('cc3m/{00000..00331}.tar'; streamed, needs --max_steps); --streaming: datasets too
  --config_name NAME | --model_name_or_path PATH   a preset (animals-small, swin-tiny, swin-base) or a saved model
  --output_dir DIR   --overwrite_output_dir   --num_train_epochs N   --per_device_train_batch_size N
  --learning_rate LR   --threads N   --resume_from_checkpoint [PATH | True]
  --task image_classification --model_name_or_path PATH   fine-tune a trained model as a classifier

Every option follows: the model's, the data's, then every transformers TrainingArguments flag."""


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved UniCL folder or Hub id to start from (fine-tuning / continued training)."}
    )
    config_name: str | None = field(
        default=None,
        metadata={"help": f"A preset ({', '.join(MODEL_PRESETS)}) or a UniCL config.json, for training from scratch."},
    )
    image_size: int | None = field(default=None, metadata={"help": "Training crop size (default: the model's)."})
    keep_freed_memory: bool = field(
        default=True,
        metadata={"help": "On by default: glibc's malloc keeps freed activation memory for the next step instead of "
                          "returning it to the OS (about 20%% faster CPU steps, about 12%% more peak RSS; see "
                          "modeling_unicl.utils.runtime); --no_keep_freed_memory turns it off. Never applied with "
                          "--gradient_checkpointing: the kept heap would take back much of its saving."},
    )
    threads: int | None = field(
        default=None,
        metadata={"help": "torch intra-op threads (default: torch's, one per core: 1.35x faster than 1 thread on an "
                          "idle 2-core machine; on a shared machine fewer threads can be faster, README 'Threads')."},
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace an --output_dir that already holds a trained model."}
    )
    task: str = field(
        default="contrastive",
        metadata={"help": "contrastive: UniCL's loss on image-label + image-text data (UniCLModel). "
                          "image_classification: fine-tune --model_name_or_path as a classifier of one image-label "
                          "dataset's classes (UniCLForImageClassification, head initialised from the class names, "
                          "cross-entropy, the plain Trainer)."},
    )
    supervised_reference: bool = field(
        default=False,
        metadata={"help": "After training, also train the same model, seed and schedule on the image-label data alone "
                          "(the paper's supervised regime; not saved) and show its zero-shot top-1 beside the "
                          "model's. On in the embedded default (--supervised_reference False turns it off)."},
    )


@dataclass
class DataArguments:
    image_label_datasets: list[str] = field(
        default_factory=list, metadata={"help": "Image-label datasets (save_to_disk folder, imagefolder, Hub name)."}
    )
    image_text_datasets: list[str] = field(
        default_factory=list, metadata={"help": "Image-text datasets (save_to_disk folder, imagefolder, Hub name)."}
    )
    train_split: str = field(default="train")
    image_column: str = field(default="image")
    label_column: str = field(default="label")
    caption_column: str = field(default="caption")
    class_names: list[str] | None = field(
        default=None, metadata={"help": "Class names of a single image-label dataset whose label column is not a ClassLabel."}
    )
    share_class_names: bool = field(
        default=False, metadata={"help": "Equal class names in different image-label datasets share one label id."}
    )
    mixing: str = field(default="batch", metadata={"help": "batch (ratio per batch), interleave or concat."})
    label_fraction: float = field(default=0.5, metadata={"help": "Share of image-label samples per batch (mixing=batch)."})
    crop_scale_min: float = field(default=0.08, metadata={"help": "Smallest area fraction of the random resized crop."})
    flip_prob: float = field(
        default=0.5, metadata={"help": "Horizontal flip probability (0 when captions say left/right)."}
    )
    image_label_shards: list[str] = field(
        default_factory=list,
        metadata={"help": "Image-label webdataset shards (KEY.jpg + KEY.cls): patterns with brace ranges "
                          "('in1k/{0000..1023}.tar') or wildcards, local paths or fsspec URLs; needs --class_names_file. "
                          "Streamed: needs --max_steps (or a manifest.json from make_shards.py)."},
    )
    image_text_shards: list[str] = field(
        default_factory=list,
        metadata={"help": "Image-text webdataset shards (KEY.jpg + KEY.txt or KEY.json with a caption field)."},
    )
    class_names_file: str | None = field(
        default=None,
        metadata={"help": "Class names of the image-label shards: line i names class id i; synonyms separated by "
                          "commas ('tench, Tinca tinca'), one drawn per sample."},
    )
    streaming: bool = field(
        default=False,
        metadata={"help": "Read --image_label_datasets / --image_text_datasets with streaming=True (Hub or local), "
                          "as shards are read: sharded by rank and worker, exact resume; needs --max_steps."},
    )
    strict_data: bool = field(
        default=False, metadata={"help": "Stop at the first unusable streamed sample or shard instead of skipping it."}
    )
    shuffle_window: int = field(
        default=1000,
        metadata={"help": "Streamed data: samples per window of each loader worker's shuffle (one window of encoded "
                          "samples per data type in memory)."},
    )
    zero_shot_eval_dataset: str | None = field(default=None, metadata={"help": "Image-label dataset for zero-shot eval."})
    zero_shot_eval_split: str = field(default="test")
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate each training dataset (debugging)."})
    link_captions_to_classes: bool = field(
        default=False,
        metadata={"help": "An image-caption pair whose caption names exactly one known class (whole words, plurals) "
                          "gets that class's id: a positive of its prompts instead of a negative (off: UniCL as "
                          "published; modeling_unicl.data.linking)."},
    )


def embedded_default_argv() -> list[str]:
    """The arguments of the embedded default run (about 4 minutes on 2 CPU cores)."""
    return [
        "--config_name", "animals-small",
        "--output_dir", EMBEDDED_OUTPUT_DIR,
        "--num_train_epochs", "10",
        "--per_device_train_batch_size", "64",
        "--learning_rate", "1e-3",
        # mild crops, no flips: captions say "to the left of", "in the top left corner"
        "--crop_scale_min", "0.6",
        "--flip_prob", "0",
        "--weight_decay", "0.05",
        "--warmup_steps", "20",
        "--lr_scheduler_type", "cosine",
        "--logging_steps", "20",
        "--save_strategy", "no",
        "--report_to", "none",
        "--dataloader_num_workers", "0",
        "--seed", "0",
        "--use_cpu",
        "--supervised_reference", "True",
    ]


def build_parser():
    from transformers import HfArgumentParser, TrainingArguments

    return HfArgumentParser(
        (ModelArguments, DataArguments, TrainingArguments),
        prog="python scripts/train.py",
        usage="%(prog)s [--image_label_datasets D ...] [--image_text_datasets D ...] [--output_dir DIR] [flags]",
        description=HELP_INTRO,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def parse_arguments(argv: list[str]):
    """(model_args, data_args, training_args, embedded). Without datasets the run is the embedded default: its
    settings come first and the flags given are parsed after them, so they override (argparse: the last wins)."""
    parser = build_parser()
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    embedded = not (data_args.image_label_datasets or data_args.image_text_datasets or is_streamed(data_args))
    if embedded:
        preset = embedded_default_argv()
        if model_args.model_name_or_path:  # continue from a saved model: the preset's --config_name would conflict
            at = preset.index("--config_name")
            del preset[at : at + 2]
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=preset + argv)
    return model_args, data_args, training_args, embedded


def check_training_arguments(training_args) -> None:
    """Numbers that would train nothing, or train on nonsense, stop here: before any folder exists."""
    args = training_args
    if args.max_steps == 0 or args.max_steps < -1:
        raise UsageError(f"--max_steps: expected a positive number of steps (or -1: train --num_train_epochs), got {args.max_steps}.")
    if args.max_steps == -1 and not args.num_train_epochs > 0:
        raise UsageError(f"--num_train_epochs: expected a positive number of passes, got {args.num_train_epochs}.")
    for flag, value, low in (
        ("--per_device_train_batch_size", args.per_device_train_batch_size, 1),
        ("--gradient_accumulation_steps", args.gradient_accumulation_steps, 1),
        ("--warmup_steps", args.warmup_steps, 0),
    ):
        if value < low:
            raise UsageError(f"{flag}: expected at least {low}, got {value}.")
    if not args.learning_rate > 0:
        raise UsageError(f"--learning_rate: expected a positive learning rate, got {args.learning_rate}.")
    if args.weight_decay < 0:
        raise UsageError(f"--weight_decay: expected >= 0, got {args.weight_decay}.")


def check_task(model_args: ModelArguments, data_args: DataArguments, embedded: bool) -> None:
    if model_args.task not in ("contrastive", "image_classification"):
        raise UsageError(f"--task: expected contrastive or image_classification, got {model_args.task!r}.")
    if model_args.task == "image_classification":
        if not model_args.model_name_or_path:
            raise UsageError("--task image_classification fine-tunes a trained model: give --model_name_or_path.")
        if data_args.image_text_datasets or len(data_args.image_label_datasets) > 1:
            raise UsageError("--task image_classification takes one --image_label_datasets and no --image_text_datasets.")


def is_streamed(data_args: DataArguments) -> bool:
    """Shards or --streaming: the training data is a `StreamingTrainingDataset`, not a map-style dataset."""
    return bool(data_args.image_label_shards or data_args.image_text_shards or data_args.streaming)


def check_streaming(model_args: ModelArguments, data_args: DataArguments) -> None:
    """What streamed data cannot do, refused before anything is loaded."""
    if not is_streamed(data_args):
        return
    if model_args.task != "contrastive":
        raise UsageError("--task image_classification takes a map-style --image_label_datasets, not shards or --streaming.")
    if data_args.max_train_samples:
        raise UsageError("--max_train_samples: not with shards or --streaming (set --max_steps instead).")
    if model_args.supervised_reference:
        raise UsageError("--supervised_reference: not with shards or --streaming.")
    if data_args.mixing != "batch":
        raise UsageError(f"--mixing {data_args.mixing}: shards and --streaming mix per batch only (--mixing batch).")
    if data_args.image_label_shards and not data_args.class_names_file and not data_args.class_names:
        raise UsageError("--image_label_shards: give --class_names_file (line i names class id i).")


def build_streamed_training_dataset(processor, label_sets, caption_sets, data_args, model_args, training_args):
    """The `StreamingTrainingDataset` of the shards and streamed datasets; without --max_steps it is derived from
    --num_train_epochs and the shards' manifest counts (make_shards.py writes them), else a UsageError."""
    import math

    from modeling_unicl.data import build_streaming_dataset

    try:
        dataset = build_streaming_dataset(
            processor, data_args.image_label_shards, data_args.image_text_shards, data_args.class_names_file,
            image_label_datasets=label_sets, image_text_datasets=caption_sets, shuffle_window=data_args.shuffle_window,
            image_column=data_args.image_column, label_column=data_args.label_column,
            caption_column=data_args.caption_column, class_names=data_args.class_names,
            label_fraction=data_args.label_fraction, seed=training_args.seed, image_size=model_args.image_size,
            crop_scale=(data_args.crop_scale_min, 1.0), flip_prob=data_args.flip_prob, strict=data_args.strict_data,
            link_captions_to_classes=data_args.link_captions_to_classes,
        )
    except ValueError as error:  # the library names the keyword of a bad pattern; the script names its flag
        if str(error).startswith(("image_label_shards:", "image_text_shards:")):
            raise UsageError(f"--{error}") from error
        raise
    if training_args.max_steps <= 0:
        if dataset.num_samples is None:
            raise UsageError(
                "--max_steps: streamed data has no length; give --max_steps N (or shards with the manifest.json that "
                "make_shards.py writes, to derive it from --num_train_epochs)."
            )
        per_step = (training_args.per_device_train_batch_size * training_args.world_size
                    * training_args.gradient_accumulation_steps)
        training_args.max_steps = math.ceil(training_args.num_train_epochs * dataset.num_samples / per_step)
        logger.info(f"--max_steps {training_args.max_steps}: {training_args.num_train_epochs} epoch(s) of "
                    f"{dataset.num_samples} samples (manifests) at {per_step} samples per step.")
    return dataset


def resolve_resume(training_args) -> str | bool | None:
    """`--resume_from_checkpoint`: a checkpoint folder, or True / "True" for the last complete one in --output_dir
    (as the Trainer documents); checked before anything is written."""
    from modeling_unicl.training.checkpoints import last_complete_checkpoint

    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() in ("false", "none", ""):
        return None
    output_dir = Path(training_args.output_dir)
    if value is True or str(value).lower() == "true":
        if last_complete_checkpoint(output_dir) is None:
            raise UsageError(f"--resume_from_checkpoint True: --output_dir {output_dir} holds no complete checkpoint.")
        return True
    if not Path(value).is_dir():
        raise UsageError(f"--resume_from_checkpoint: no checkpoint folder {value!r} here.")
    return str(value)


def check_output_dir(output_dir: str, overwrite: bool, resume) -> None:
    """A folder that already holds a trained model is replaced only when asked (a rerun must not overwrite it)."""
    folder = Path(output_dir)
    if resume is None and not overwrite and (folder / "config.json").is_file():
        raise UsageError(
            f"--output_dir {output_dir} already holds a trained model: pass --overwrite_output_dir to replace it, "
            "or choose another --output_dir."
        )


def interrupted_message(argv: list[str], output_dir: str) -> str:
    """What to do after Ctrl-C: the last complete checkpoint and the command that resumes from it."""
    from modeling_unicl.training.checkpoints import last_complete_checkpoint

    checkpoint = last_complete_checkpoint(Path(output_dir))
    if checkpoint is None:
        return (
            f"interrupted: no complete checkpoint in {output_dir} to resume from (checkpoints need --save_strategy "
            "steps or epoch); rerun the same command to start over."
        )
    kept = []
    skip = False
    for arg in argv:  # drop a --resume_from_checkpoint given before, keep everything else as typed
        if skip:
            skip = False
        elif arg == "--resume_from_checkpoint":
            skip = True
        elif not arg.startswith("--resume_from_checkpoint="):
            kept.append(arg)
    command = shlex.join(["python", sys.argv[0], *kept, "--resume_from_checkpoint", str(checkpoint)])
    return f"interrupted: the last complete checkpoint is {checkpoint}; resume with:\n  {command}"


def train_or_explain_interruption(trainer, resume, argv: list[str]) -> bool:
    """`trainer.train()`; on Ctrl-C (False) one line says where the last complete checkpoint is and how to resume."""
    try:
        trainer.train(resume_from_checkpoint=resume)
    except KeyboardInterrupt:
        if trainer.is_world_process_zero():
            # on a line of its own: the progress bar's line has no newline yet
            print("\n" + interrupted_message(argv, trainer.args.output_dir), file=sys.stderr)
        return False
    return True


EMBEDDED_MODEL_CARD = """---
library_name: transformers
tags: [unicl, zero-shot-image-classification, demo]
---
# unicl-animals: the embedded default of `scripts/train.py`

A small UniCL (48 px ResNet, 2-layer 128-wide CLIP text tower) trained for a few minutes on 28x28 animal silhouettes
(the `animal-mnist` package: bear, bird, cat, cow, dog, elephant, giraffe, horse, sheep, zebra). It shows the method
at work: giraffe, sheep and zebra were never labels, only words in captions, and are still recognised by name.

**It is not a model for real photos.** On a photo it answers one of its animals with high confidence, whatever the
photo shows. For real images, convert a released UniCL checkpoint (Swin-T/Swin-B trained on ImageNet, YFCC, GCC):

    python scripts/convert_unicl_original_to_hf.py --checkpoint in1k_yfcc14m.pth --config swin-tiny \\
        --output_dir unicl-swin-tiny-in1k-yfcc14m
    python scripts/zero_shot_eval.py unicl-swin-tiny-in1k-yfcc14m --dataset YOUR_DATASET

Zero-shot accuracy on the silhouettes' test split is in `zero_shot_results.json` beside this card.
"""


def load_model(model_args: ModelArguments):
    from modeling_unicl import UniCLConfig, UniCLModel, UniCLProcessor
    from modeling_unicl.presets import processor_for_config

    if model_args.model_name_or_path and model_args.config_name:
        raise UsageError("--model_name_or_path and --config_name: give one, not both.")
    if model_args.model_name_or_path:
        check_unicl_folder(model_args.model_name_or_path, "--model_name_or_path")
        model = UniCLModel.from_pretrained(model_args.model_name_or_path)
        processor = UniCLProcessor.from_pretrained(model_args.model_name_or_path)
        return model, processor
    name = model_args.config_name or "swin-tiny"
    if name in MODEL_PRESETS:
        config = MODEL_PRESETS[name].config()
    elif Path(name).is_file():
        config = UniCLConfig.from_json_file(name)
    else:
        raise UsageError(f"--config_name: {name!r} is neither a preset ({', '.join(MODEL_PRESETS)}) nor a config file.")
    return UniCLModel(config), processor_for_config(config)


def train_classifier(model, processor, train_set, eval_set, training_args, data_args, resume, argv) -> int:
    """--task image_classification: the plain Trainer on UniCLForImageClassification, then top-1 on `eval_set`."""
    from transformers import DefaultDataCollator, Trainer

    from modeling_unicl.training import ImageClassificationTransform, accuracy_metric, classifier_from_unicl_model
    from modeling_unicl.utils.checks import resolve_class_names

    names = resolve_class_names(train_set, data_args.label_column, data_args.class_names)
    classifier = classifier_from_unicl_model(model, processor, names)
    transform = ImageClassificationTransform(processor, data_args.image_column, data_args.label_column)
    training_args.remove_unused_columns = False  # the transform reads the image column, which the model does not take
    trainer = Trainer(
        model=classifier, args=training_args, train_dataset=train_set.with_transform(transform),
        eval_dataset=None if eval_set is None else eval_set.with_transform(transform),
        processing_class=processor, data_collator=DefaultDataCollator(), compute_metrics=accuracy_metric,
    )
    if not train_or_explain_interruption(trainer, resume, argv):
        return 130
    trainer.save_model()
    if eval_set is not None:
        metrics = trainer.evaluate()
        if trainer.is_world_process_zero():
            print(f"\nClassifier top-1 on the eval set ({len(eval_set)} images, {len(names)} classes): "
                  f"{metrics['eval_top1']:.4f}")
    if trainer.is_world_process_zero():
        print(f"Saved the classifier and processor to {Path(training_args.output_dir).resolve()}: "
              "pipeline('image-classification', model=...) loads it.")
    return 0


def zero_shot_table(model, processor, splits: dict, data_args: DataArguments, reference=None) -> tuple[str, dict]:
    """The zero-shot table of `model` on `splits`; with a `reference` model (the supervised reference), its top-1
    in a column beside the model's."""
    from modeling_unicl.evaluation.zero_shot import evaluate_zero_shot

    results, rows = {}, []
    for name, dataset in splits.items():
        scores = evaluate_zero_shot(model, processor, dataset, data_args.image_column, data_args.label_column)
        num_classes = dataset.features[data_args.label_column].num_classes
        results[name] = {**scores, "num_classes": num_classes, "chance_top1": 1.0 / num_classes}
        row = [name, num_classes, scores["num_samples"], scores["top1"], scores["top5"]]
        if reference is not None:
            top1 = evaluate_zero_shot(reference, processor, dataset, data_args.image_column, data_args.label_column)["top1"]
            results[name]["supervised_reference_top1"] = top1
            row.append(top1)
        rows.append(row + [1.0 / num_classes])
    header = ["eval set", "classes", "images", "zero-shot top-1", "zero-shot top-5"]
    header += ["supervised reference top-1"] * (reference is not None) + ["chance top-1"]
    return markdown_table(header, rows), results


def train_supervised_reference(model_args, data_args, training_args, label_sets):
    """The same preset, seed, schedule and augmentation on the image-label data alone: the paper's supervised regime
    (UniCL's loss on class prompts only), trained in a temporary folder and not saved. None when interrupted."""
    import dataclasses
    import tempfile

    from transformers import set_seed

    from modeling_unicl.data import build_training_dataset
    from modeling_unicl.training.trainer import UniCLTrainer

    set_seed(training_args.seed)
    model, processor = load_model(model_args)
    train_dataset = build_training_dataset(
        processor, label_sets, [], image_column=data_args.image_column, label_column=data_args.label_column,
        class_names=data_args.class_names, share_class_names=data_args.share_class_names, seed=training_args.seed,
        image_size=model_args.image_size, crop_scale=(data_args.crop_scale_min, 1.0), flip_prob=data_args.flip_prob,
    )
    with tempfile.TemporaryDirectory() as folder:
        args = dataclasses.replace(training_args, output_dir=folder, save_strategy="no", resume_from_checkpoint=None)
        trainer = UniCLTrainer(model=model, args=args, train_dataset=train_dataset, processing_class=processor)
        try:
            trainer.train()
        except KeyboardInterrupt:  # the model itself is already saved: show its table without the reference
            print("\ninterrupted: the supervised reference is left out of the table.", file=sys.stderr)
            return None
    return trainer.model.eval()


@exit_on_usage_error
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    model_args, data_args, training_args, embedded = parse_arguments(argv)
    check_training_arguments(training_args)
    check_task(model_args, data_args, embedded)
    check_streaming(model_args, data_args)
    resume = resolve_resume(training_args)
    check_output_dir(training_args.output_dir, model_args.overwrite_output_dir, resume)
    apply_threads(model_args.threads)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if model_args.keep_freed_memory and not training_args.gradient_checkpointing:
        from modeling_unicl.utils.runtime import keep_freed_memory

        keep_freed_memory()

    from transformers import set_seed

    from modeling_unicl.data import build_training_dataset
    from modeling_unicl.training.trainer import UniCLTrainer

    set_seed(training_args.seed)  # before the model exists: its initial weights come from the global RNG

    # Everything is loaded and validated before the Trainer exists, so a bad argument leaves no output folder.
    if embedded:
        from modeling_unicl.data.embedded import build_embedded_datasets

        model, processor = load_model(model_args)
        data = build_embedded_datasets(seed=training_args.seed, image_size=int(model.config.vision_config.image_size))
        if training_args.process_index == 0:
            print(data.describe())
        label_sets, caption_sets = [data.label_train], [data.caption_train]
        eval_splits = {"all 10 classes": data.eval_all, "seen 7 (labels)": data.eval_seen,
                       "held-out 3 (captions only)": data.eval_held_out}
        zero_shot_eval = data.eval_all
    else:
        load = load_streaming_dataset_argument if data_args.streaming else load_dataset_argument
        label_sets = [load(s, data_args.train_split, "--image_label_datasets") for s in data_args.image_label_datasets]
        caption_sets = [load(s, data_args.train_split, "--image_text_datasets") for s in data_args.image_text_datasets]
        zero_shot_eval = None
        if data_args.zero_shot_eval_dataset:
            zero_shot_eval = load_dataset_argument(
                data_args.zero_shot_eval_dataset, data_args.zero_shot_eval_split, "--zero_shot_eval_dataset"
            )
        eval_splits = {"zero-shot eval": zero_shot_eval} if zero_shot_eval is not None else {}
        model, processor = load_model(model_args)
    if data_args.max_train_samples:
        label_sets = [d.select(range(min(len(d), data_args.max_train_samples))) for d in label_sets]
        caption_sets = [d.select(range(min(len(d), data_args.max_train_samples))) for d in caption_sets]

    if model_args.task == "image_classification":
        eval_set = data.eval_seen if embedded else zero_shot_eval
        return train_classifier(model, processor, label_sets[0], eval_set, training_args, data_args, resume, argv)

    streamed = None
    if is_streamed(data_args):  # shards / --streaming: checked (and --max_steps set) before the Trainer exists
        streamed = build_streamed_training_dataset(processor, label_sets, caption_sets, data_args, model_args, training_args)
    train_dataset = streamed or build_training_dataset(
        processor, label_sets, caption_sets,
        image_column=data_args.image_column, label_column=data_args.label_column,
        caption_column=data_args.caption_column, class_names=data_args.class_names,
        share_class_names=data_args.share_class_names, mixing=data_args.mixing,
        label_fraction=data_args.label_fraction, seed=training_args.seed, image_size=model_args.image_size,
        crop_scale=(data_args.crop_scale_min, 1.0), flip_prob=data_args.flip_prob,
        link_captions_to_classes=data_args.link_captions_to_classes,
    )
    trainer = UniCLTrainer(
        model=model, args=training_args, train_dataset=train_dataset, processing_class=processor,
        zero_shot_eval_dataset=zero_shot_eval,
        zero_shot_image_column=data_args.image_column, zero_shot_label_column=data_args.label_column,
    )
    if not train_or_explain_interruption(trainer, resume, argv):
        return 130
    trainer.save_model()
    if embedded and trainer.is_world_process_zero():
        (Path(training_args.output_dir) / "README.md").write_text(EMBEDDED_MODEL_CARD)

    reference = None
    if model_args.supervised_reference and label_sets and eval_splits:
        if trainer.is_world_process_zero():
            print("\nTraining the supervised reference: the same model, seed and schedule on the image-label data alone.")
        reference = train_supervised_reference(model_args, data_args, training_args, label_sets)
    if trainer.is_world_process_zero() and eval_splits:
        table, results = zero_shot_table(trainer.model, processor, eval_splits, data_args, reference)
        output_dir = Path(training_args.output_dir)
        (output_dir / "zero_shot_results.json").write_text(json.dumps(results, indent=2) + "\n")
        print("\nZero-shot accuracy (class-name prompts, 80 templates):\n")
        print(table)
        if reference is not None:
            print("\nSupervised reference: the same model, seed and schedule trained on the image-label data alone "
                  "(the paper's supervised regime), not saved. It never trained the held-out class names.")
        print(f"\nSaved model and processor to {output_dir.resolve()}")
        print("Load it with UniCLModel.from_pretrained(...) or pipeline('zero-shot-image-classification', ...).")
        if embedded:
            print(
                "This is a 48 px model of animal silhouettes, a demonstration of the method: it will not recognise "
                "real photos.\nFor real images convert a released checkpoint: python scripts/convert_unicl_original_to_hf.py "
                "--checkpoint in1k_yfcc14m.pth --config swin-tiny --output_dir unicl-swin-tiny (README, "
                "\"Released checkpoints\")."
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
