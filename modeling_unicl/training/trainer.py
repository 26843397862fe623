"""UniCLTrainer: `transformers.Trainer` for UniCL pre-training and fine-tuning.

* Loss: `compute_loss` calls the model with `labels` (and `return_loss=True`), so `UniCLModel.forward` computes
  `unicl_loss`, which all-gathers features and labels across ranks whenever `torch.distributed` is initialised:
  under DDP every rank runs the forward on its own batch and the loss sees the global batch. A
  `compute_loss_func(outputs, labels, num_items_in_batch)` given to the trainer replaces it, as in `Trainer`: the model
  then runs without labels and the function gets its `UniCLOutput` (embeddings, `logit_scale`) and the labels; its
  loss is taken as a per-batch mean like UniCL's (divided by the gradient accumulation steps; set
  `loss_is_scaled_for_ga = True` on the trainer if it already normalises over the accumulated batch).
* Logs: `loss` (the Trainer's) plus `logit_scale`, the mean temperature multiplier `exp(t)` (clamped) since the last
  log.
* Data: given a `UniCLTrainingDataset` (see `modeling_unicl.data.build_training_dataset`), the trainer uses its sampler (the
  mixing mode's batches, seeded per epoch) and a `UniCLCollator`; `remove_unused_columns` is forced off and
  `label_names` is `["labels"]`, so the defaults just work. The order and each sample's randomness depend on
  (seed, epoch, row) only, so `resume_from_checkpoint` continues exactly where the interrupted run was.
* Checkpoints: resuming (and `load_best_model_at_end`) loads the weights with `from_pretrained`'s key conversion.
  transformers 5.x saves e.g. Swin weights under their legacy names (`attention.self.query`) and converts them on
  `from_pretrained`, but the stock Trainer resumes with a plain non-strict `load_state_dict`, which silently
  skips every renamed tensor (the image tower restarts from its initialisation).
* Evaluation: `evaluate()` reports the eval loss when an `eval_dataset` is given, and zero-shot
  `eval_zero_shot_top1` / `eval_zero_shot_top5` (class-name prompts) when a `zero_shot_eval_dataset` is given.
* Saving: `save_model` / `push_to_hub` write the model with `save_pretrained` (weights, config with `auto_map`, the
  modeling code) and the processor (`processing_class`, or the training dataset's processor when none is given).
* Reliability: a NaN / inf training loss stops training with `NonFiniteLossError` naming the step, or, with
  `skip_nonfinite_loss=True`, skips that step (no gradient from the batch) and reports the skipped steps. Unreadable
  training images that the dataset replaced (see `build_training_dataset(strict=...)`) are collected from the
  batches, also from dataloader workers, and reported at the end of `train()` (`self.skipped_images`).
  `resume_from_checkpoint=True` passes over a checkpoint half-written by a kill (see `checkpoint_problem`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import PreTrainedModel, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, IntervalStrategy
from transformers.trainer import TRAINER_STATE_NAME

from ..data.dataset import (
    SKIPPED_ROWS_KEY,
    UniCLCollator,
    UniCLTrainingDataset,
    build_training_dataset,
    validate_image_label_dataset,
)
from ..prompts import IMAGENET_TEMPLATES, check_templates
from ..evaluation.zero_shot import ZeroShotClassifier, zero_shot_counts

logger = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "UniCLTrainer", "build_training_dataset", "checkpoint_problem"]


class NonFiniteLossError(RuntimeError):
    """A training loss was NaN or infinite; the message names the step."""


def checkpoint_problem(folder: Path) -> str | None:
    """Why a Trainer checkpoint folder is incomplete (a save interrupted by a kill), or None when it is complete:
    trainer_state.json, which `Trainer._save_checkpoint` writes last, must exist and parse, and every *.safetensors
    file must be readable (header and size)."""
    state_file = Path(folder) / TRAINER_STATE_NAME
    if not state_file.is_file():
        return f"no {TRAINER_STATE_NAME}, which is written last"
    try:
        int(json.loads(state_file.read_text(encoding="utf-8"))["global_step"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        return f"{TRAINER_STATE_NAME} is truncated or invalid ({type(error).__name__}: {error})"
    from safetensors import safe_open

    for weights in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt"):
                pass
        except Exception as error:  # noqa: BLE001 - SafetensorError and OS errors alike
            return f"{weights.name} is truncated or corrupt ({error})"
    return None


class _SamplerEpochCallback(TrainerCallback):
    """Sets the UniCL sampler's epoch at every epoch start, whatever accelerate wraps it in (batch, shard and skip
    samplers on a resumed DDP run); accelerate's own `set_epoch` forwarding only looks two wrappers deep."""

    def __init__(self, trainer: "UniCLTrainer"):
        self.trainer = trainer

    def on_epoch_begin(self, args, state, control, **kwargs):
        sampler = self.trainer._unicl_sampler
        if sampler is not None:
            sampler.set_epoch(math.floor((state.epoch or 0) + 1e-6))  # state.epoch is epoch + fraction done


class UniCLTrainer(Trainer):
    """`transformers.Trainer` for `UniCLModel` (see the module docstring).

    Extra keyword arguments:
        zero_shot_eval_dataset: an image-label `datasets.Dataset` evaluated zero-shot by `evaluate()`.
        zero_shot_class_names: its class names, if its label column is not a `ClassLabel`.
        zero_shot_image_column, zero_shot_label_column: its column names ("image", "label").
        zero_shot_templates: prompt templates of the class embeddings (the 80 ImageNet templates).
        zero_shot_batch_size: image batch size of the zero-shot evaluation (default: `per_device_eval_batch_size`).
        skip_nonfinite_loss: when a training loss is NaN or infinite, skip the step (no gradient from that batch;
            counted, warned, and reported at the end of `train()`) instead of stopping with `NonFiniteLossError`.
    """

    # compute_loss returns a per-batch mean: the Trainer divides it by the gradient accumulation steps
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model=None,
        args: TrainingArguments | None = None,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        *,
        zero_shot_eval_dataset=None,
        zero_shot_class_names: Sequence[str] | None = None,
        zero_shot_image_column: str = "image",
        zero_shot_label_column: str = "label",
        zero_shot_templates: Sequence[str] = IMAGENET_TEMPLATES,
        zero_shot_batch_size: int | None = None,
        skip_nonfinite_loss: bool = False,
        **kwargs,
    ):
        if processing_class is None:
            for dataset in (train_dataset, eval_dataset):
                if isinstance(dataset, UniCLTrainingDataset):
                    processing_class = dataset.processor
                    break
        if data_collator is None and processing_class is not None:
            data_collator = UniCLCollator(processing_class)

        self.zero_shot_eval_dataset = zero_shot_eval_dataset
        self.zero_shot_image_column = zero_shot_image_column
        self.zero_shot_label_column = zero_shot_label_column
        self.zero_shot_templates = check_templates(zero_shot_templates)
        self.zero_shot_batch_size = zero_shot_batch_size
        self.zero_shot_class_names = None
        if zero_shot_eval_dataset is not None:
            # fail before training, not at the first evaluation
            self.zero_shot_class_names = validate_image_label_dataset(
                zero_shot_eval_dataset, zero_shot_image_column, zero_shot_label_column, zero_shot_class_names
            )
            if processing_class is None or not hasattr(processing_class, "tokenizer"):
                raise ValueError(
                    "Zero-shot evaluation needs a processor with a tokenizer and an image processor: pass "
                    "processing_class=UniCLProcessor(...)."
                )

        # The Trainer refuses eval_strategy != "no" without an eval_dataset; a zero-shot dataset is one too.
        restore_strategy = None
        if (
            args is not None
            and eval_dataset is None
            and zero_shot_eval_dataset is not None
            and args.eval_strategy not in (None, IntervalStrategy.NO, "no")
        ):
            restore_strategy, args.eval_strategy = args.eval_strategy, IntervalStrategy.NO
        try:
            super().__init__(
                model=model,
                args=args,
                data_collator=data_collator,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processing_class,
                **kwargs,
            )
        finally:
            if restore_strategy is not None:
                args.eval_strategy = restore_strategy

        if self.args.remove_unused_columns:
            logger.info("UniCLTrainer: remove_unused_columns=False (samples carry 'text', tokenized by the collator).")
            self.args.remove_unused_columns = False
        if self.args.label_names is None:
            self.label_names = ["labels"]
        # UniCLModel.forward takes **kwargs (for the towers), which the Trainer would read as "accepts
        # num_items_in_batch"; the UniCL loss is a per-batch mean and takes no such argument.
        self.model_accepts_loss_kwargs = False

        self._unicl_sampler = None
        self._logit_scale_sum = None
        self._logit_scale_count = 0
        self.add_callback(_SamplerEpochCallback(self))
        # unreadable training images replaced by the dataset (row -> description), reported at the end of train()
        self.skipped_images: dict[int, str] = {}
        self.skip_nonfinite_loss = bool(skip_nonfinite_loss)
        self.skipped_nonfinite_steps: list[int] = []  # steps whose loss was NaN / inf (skip_nonfinite_loss=True)
        if isinstance(self.data_collator, UniCLCollator):
            self.data_collator.report_skipped_rows = True

    # ------------------------------------------------------------------------------------------------ train
    def train(self, resume_from_checkpoint: str | bool | None = None, *args, **kwargs):
        """`Trainer.train`, then a report of the unreadable training images that were skipped (a warning listing
        the rows and files; `train_skipped_images` in the returned metrics; `self.skipped_images`) and of skipped
        non-finite steps.

        `resume_from_checkpoint=True` resumes from the last *complete* checkpoint: one that a kill interrupted while
        it was being written (no trainer_state.json, which the Trainer writes last, or a truncated weights file) is
        passed over with a warning. An explicit incomplete checkpoint raises a ValueError saying what is missing."""
        resume_from_checkpoint = self._complete_checkpoint(resume_from_checkpoint)
        self.skipped_images, self.skipped_nonfinite_steps = {}, []
        output = super().train(resume_from_checkpoint, *args, **kwargs)
        if output.metrics is not None:
            output.metrics["train_skipped_nonfinite_steps"] = len(self.skipped_nonfinite_steps)
        if self.skipped_nonfinite_steps:
            steps = self.skipped_nonfinite_steps
            logger.warning(
                f"{len(steps)} training step(s) had a non-finite loss and were skipped (skip_nonfinite_loss=True): "
                f"steps {steps[:50]}{' ...' if len(steps) > 50 else ''}."
            )
        dataset = self.train_dataset
        if isinstance(dataset, UniCLTrainingDataset):  # rows met in this process (dataloader_num_workers=0)
            for row, description in dataset.skipped_rows.items():
                self.skipped_images.setdefault(int(row), description)
        if output.metrics is not None:
            output.metrics["train_skipped_images"] = len(self.skipped_images)
        if self.skipped_images:
            rows = sorted(self.skipped_images)
            listed = "\n".join(f"  row {row}: {self.skipped_images[row]}" for row in rows[:50])
            more = f"\n  ... and {len(rows) - 50} more" if len(rows) > 50 else ""
            logger.warning(
                f"{len(rows)} unreadable training image(s) were skipped (each replaced by the next readable row of "
                f"its type; build the dataset with strict=True to fail instead):\n{listed}{more}"
            )
        return output

    # ------------------------------------------------------------------------------------------------- data
    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if isinstance(dataset, UniCLTrainingDataset):
            self._unicl_sampler = dataset.get_sampler(batch_size=self._train_batch_size, shuffle=True)
            return self._unicl_sampler
        return super()._get_train_sampler(train_dataset)

    # ------------------------------------------------------------------------------------------ checkpoints
    def _complete_checkpoint(self, resume_from_checkpoint):
        if isinstance(resume_from_checkpoint, bool) and resume_from_checkpoint:
            output_dir = Path(self.args.output_dir)
            found = sorted(
                (int(m.group(1)), path)
                for path in (output_dir.iterdir() if output_dir.is_dir() else ())
                if path.is_dir() and (m := re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)", path.name))
            )
            for _, path in reversed(found):
                problem = checkpoint_problem(path)
                if problem is None:
                    return str(path)
                logger.warning(f"Checkpoint {path} is incomplete ({problem}): an interrupted save? Skipping it.")
            if found:
                raise ValueError(f"No complete checkpoint in {output_dir}: every checkpoint-* folder is incomplete.")
            return resume_from_checkpoint  # none at all: the Trainer's own error
        if isinstance(resume_from_checkpoint, (str, os.PathLike)) and Path(resume_from_checkpoint).is_dir():
            problem = checkpoint_problem(Path(resume_from_checkpoint))
            if problem is not None:
                raise ValueError(f"Checkpoint {resume_from_checkpoint} is incomplete: {problem}.")
        return resume_from_checkpoint

    def _plain_model(self, model=None):
        """The unwrapped PreTrainedModel when the weights can be loaded with from_pretrained, else None."""
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or getattr(self, "is_fsdp_xla_enabled", False):
            return None
        unwrapped = self.accelerator.unwrap_model(model if model is not None else self.model)
        return unwrapped if isinstance(unwrapped, PreTrainedModel) else None

    @staticmethod
    def _load_saved_weights(model: PreTrainedModel, folder: str) -> None:
        """Weights of a `save_pretrained` folder into `model`, through from_pretrained's key conversion; strict."""
        loaded = type(model).from_pretrained(folder, config=model.config)
        model.load_state_dict(loaded.state_dict(), strict=True)
        del loaded

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        plain = self._plain_model(model)
        if plain is None:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        logger.info(f"Loading model weights from {resume_from_checkpoint} (from_pretrained key conversion).")
        self._load_saved_weights(plain, resume_from_checkpoint)

    def _load_best_model(self) -> None:
        plain = self._plain_model()
        if plain is None:
            return super()._load_best_model()
        logger.info(f"Loading best model from {self.state.best_model_checkpoint} (score: {self.state.best_metric}).")
        self._load_saved_weights(plain, self.state.best_model_checkpoint)

    # ------------------------------------------------------------------------------------------------- loss
    def compute_loss(
        self,
        model,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ):
        """The unified contrastive loss of the batch, computed (and all-gathered across ranks) by the model.

        `labels` go to the model, which calls `unicl_loss` with the distributed gather; without labels the model
        falls back to CLIP's loss. `num_items_in_batch` is not used: the loss is a mean over the global batch.
        With a `compute_loss_func`, the model runs without labels and that function computes the loss."""
        inputs = dict(inputs)
        skipped = inputs.pop(SKIPPED_ROWS_KEY, None) or ()  # never a model input
        if model.training:
            for row, description in skipped:
                self.skipped_images.setdefault(int(row), description)
        if self.compute_loss_func is not None:
            labels = inputs.pop("labels", None)
            outputs = model(**inputs)  # no labels, no return_loss: the embeddings only
            loss = self.compute_loss_func(outputs, labels, num_items_in_batch=num_items_in_batch)
            if not isinstance(loss, torch.Tensor):
                raise ValueError(f"compute_loss_func must return a loss tensor, got {type(loss).__name__}.")
        else:
            inputs["return_loss"] = True
            # training loss over the global batch (a collective: every rank runs this step); evaluation stays local
            inputs["gather_distributed"] = model.training
            outputs = model(**inputs)
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs[0]
        if loss is None:
            raise ValueError(f"The model returned no loss; the inputs were {sorted(inputs)}.")
        if model.training and not bool(torch.isfinite(loss.detach()).all()):
            loss = self._nonfinite_loss(model, loss)
        if model.training:
            scale = outputs["logit_scale"] if isinstance(outputs, dict) else None
            if scale is not None:
                scale = scale.detach().float()
                self._logit_scale_sum = scale if self._logit_scale_sum is None else self._logit_scale_sum + scale
                self._logit_scale_count += 1
        return (loss, outputs) if return_outputs else loss

    def _nonfinite_loss(self, model, loss: torch.Tensor) -> torch.Tensor:
        """A NaN / inf training loss: raise `NonFiniteLossError` naming the step, or (skip_nonfinite_loss=True)
        return a stand-in whose backward gives the model no gradient, so the optimizer skips the step."""
        step = self.state.global_step + 1  # the step being computed, numbered as in the logs
        value = float(loss.detach().float().reshape(-1)[0].item())
        if not self.skip_nonfinite_loss:
            raise NonFiniteLossError(
                f"UniCLTrainer: non-finite loss ({value}) at step {step} (epoch {self.state.epoch or 0:.2f}). "
                "Usual causes: a learning rate too high, fp16 overflow (use bf16), or broken inputs in this batch. "
                "Pass skip_nonfinite_loss=True to UniCLTrainer to skip such steps instead."
            )
        if not self.skipped_nonfinite_steps or self.skipped_nonfinite_steps[-1] != step:
            self.skipped_nonfinite_steps.append(step)
        logger.warning(f"UniCLTrainer: non-finite loss ({value}) at step {step}; skipping the step.")
        if self.args.world_size > 1 or getattr(self.accelerator, "scaler", None) is not None:
            # DDP's reducer and fp16's grad scaler expect a gradient for every parameter: give an exact zero one
            # (momentum-based optimizers still move the weights by their momentum).
            parameters = [p for p in model.parameters() if p.requires_grad]
            return sum((p.reshape(-1)[:1] * 0.0).sum() for p in parameters) + torch.zeros((), device=loss.device)
        # a leaf of the same value: backward reaches no parameter, every .grad stays None and the optimizer skips
        # them all; the Trainer's `logging_nan_inf_filter` keeps the NaN out of the logged loss
        return loss.detach().float().clone().requires_grad_(True)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Adds `logit_scale` (mean temperature multiplier since the last log) to the training logs."""
        if "loss" in logs and self._logit_scale_count:
            logs["logit_scale"] = float(self._logit_scale_sum.item()) / self._logit_scale_count
            self._logit_scale_sum, self._logit_scale_count = None, 0
        super().log(logs, start_time)

    # ------------------------------------------------------------------------------------------- evaluation
    def evaluate(
        self,
        eval_dataset=None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Eval loss on `eval_dataset` (when there is one) and zero-shot top-1/top-5 on `zero_shot_eval_dataset`
        (when there is one), as `{prefix}_zero_shot_top1` / `{prefix}_zero_shot_top5`."""
        metrics: dict[str, float] = {}
        if eval_dataset is not None or self.eval_dataset is not None:
            metrics.update(super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix))
        if self.zero_shot_eval_dataset is not None:
            zero_shot = self.zero_shot_evaluate(metric_key_prefix=metric_key_prefix)
            self.log(dict(zero_shot))
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, zero_shot)
            metrics.update(zero_shot)
        if not metrics:
            raise ValueError("Nothing to evaluate: give an eval_dataset and/or a zero_shot_eval_dataset.")
        return metrics

    def zero_shot_evaluate(self, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Zero-shot accuracy on `zero_shot_eval_dataset` (each rank a contiguous shard, counts summed)."""
        model = self.accelerator.unwrap_model(self.model)
        classifier = ZeroShotClassifier(
            model, self.processing_class, self.zero_shot_class_names, self.zero_shot_templates
        )
        dataset = self.zero_shot_eval_dataset
        world_size, rank = self.args.world_size, self.args.process_index
        if world_size > 1:
            dataset = dataset.shard(num_shards=world_size, index=rank, contiguous=True)
        batch_size = self.zero_shot_batch_size or self.args.per_device_eval_batch_size
        correct, num_samples = zero_shot_counts(
            classifier, dataset, self.zero_shot_image_column, self.zero_shot_label_column, batch_size, ks=(1, 5)
        )
        counts = torch.tensor([correct[1], correct[5], num_samples], dtype=torch.float64, device=self.args.device)
        if world_size > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
        top1, top5, total = counts.tolist()
        return {
            f"{metric_key_prefix}_zero_shot_top1": top1 / total,
            f"{metric_key_prefix}_zero_shot_top5": top5 / total,
            f"{metric_key_prefix}_zero_shot_num_samples": int(total),
        }
