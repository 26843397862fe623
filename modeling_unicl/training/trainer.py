"""UniCLTrainer: `transformers.Trainer` for UniCL pre-training and fine-tuning.

The trainer itself holds what only a `Trainer` subclass can do; the extras are callbacks and hooks in
`modeling_unicl.training.callbacks`, checkpoint handling in `modeling_unicl.training.checkpoints`.

* Loss: `compute_loss` calls the model with `labels`, `return_loss=True` and `gather_distributed=model.training`,
  so `UniCLModel.forward` computes `unicl_loss`. In training the model all-gathers features and labels across
  ranks (a collective: every rank runs it each step), so under DDP every rank runs the forward on its own batch and
  the loss sees the global batch; in evaluation each rank's loss is that of its own batch. A
  `compute_loss_func(outputs, labels, num_items_in_batch)` given to the trainer replaces it, as in `Trainer`: the model
  then runs without labels and the function gets its `UniCLOutput` (embeddings, `logit_scale`) and the labels; its
  loss is taken as a per-batch mean like UniCL's (divided by the gradient accumulation steps; set
  `loss_is_scaled_for_ga = True` on the trainer if it already normalises over the accumulated batch).
* Logs: `loss` (the Trainer's) plus `logit_scale`, the mean temperature multiplier `exp(t)` (clamped) since the last
  log.
* Data: given a `UniCLTrainingDataset` (see `modeling_unicl.data.build_training_dataset`), the trainer uses a
  `UniCLSampler` (the mixing mode's batches, seeded per epoch; its epoch set by `SamplerEpochCallback`) and a
  `UniCLCollator`; `remove_unused_columns` is forced off and `label_names` is `["labels"]`, so the defaults just
  work. The order and each sample's randomness depend on (seed, epoch, row) only, so `resume_from_checkpoint`
  continues exactly where the interrupted run was.
* Streamed data: given a `StreamingTrainingDataset` (`modeling_unicl.data.build_streaming_dataset`: webdataset shards,
  `datasets` streamed with `streaming=True`), the trainer needs `max_steps` (the stream has no length) and builds
  the loader itself (`get_train_dataloader`): torchdata's `StatefulDataLoader` over the dataset configured with this
  process's rank and the per-device batch size. It is not handed to `accelerator.prepare`, which would wrap an
  iterable dataset in `IterableDatasetShard` (each rank keeping every world_size-th batch of its own, already
  sharded, stream) or dispatch rank 0's batches to all ranks: the dataset shards by rank and worker itself. Every
  checkpoint holds each rank's loader state (`StreamingStateCallback`) and resuming restores it, so the run
  continues with the same samples in the same order without replaying them (`ignore_data_skip` is set: the
  Trainer's own replay would decode every sample it skips; an explicit `ignore_data_skip=True` starts the stream
  from its beginning instead). Logs add `samples_per_second`.
* Checkpoints: resuming (and `load_best_model_at_end`) loads the weights with `from_pretrained`'s key conversion
  (see `modeling_unicl.training.checkpoints`: the stock Trainer silently skips Swin weights saved under legacy names).
* Evaluation: `evaluate()` reports the eval loss when an `eval_dataset` is given, and zero-shot
  `eval_zero_shot_top1` / `eval_zero_shot_top5` (class-name prompts) when a `zero_shot_eval_dataset` is given.
* Saving: `save_model` / `push_to_hub` write the model with `save_pretrained` (weights, config with `auto_map`, the
  modeling code) and the processor (`processing_class`, or the training dataset's processor when none is given).
* Reliability: a NaN / inf training loss stops training with `NonFiniteLossError` naming the step, or, with
  `skip_nonfinite_loss=True`, skips that step (no gradient from the batch) and reports the skipped steps. Unreadable
  training images that the dataset replaced (see `TrainingDataOptions.strict`) are collected, also from dataloader
  workers, and reported at the end of `train()` (`self.skipped_images`). `resume_from_checkpoint=True` passes over a
  checkpoint half-written by a kill (see `checkpoint_problem`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Sequence

import torch
from transformers import PreTrainedModel, Trainer, TrainingArguments
from transformers.trainer_utils import IntervalStrategy

from ..data.collator import UniCLCollator
from ..data.dataset import UniCLTrainingDataset
from ..data.sampling import UniCLSampler
from ..data.streaming import StreamingTrainingDataset
from ..prompts import IMAGENET_TEMPLATES
from .callbacks import (
    LogitScaleMeter,
    NonFiniteLossCallback,
    NonFiniteLossError,
    SamplerEpochCallback,
    SkippedRowsCallback,
    StreamingStateCallback,
    ThroughputMeter,
    ZeroShotEvaluation,
)
from .checkpoints import checkpoint_problem, load_saved_weights, resolve_resume_checkpoint

logger = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "UniCLTrainer", "checkpoint_problem"]


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
            processing_class = next((d.processor for d in (train_dataset, eval_dataset) if _is_unicl_data(d)), None)
        if data_collator is None and processing_class is not None:
            data_collator = UniCLCollator(processing_class, max_length=_context_length(train_dataset))
        self.zero_shot_evaluation = None
        if zero_shot_eval_dataset is not None:
            self.zero_shot_evaluation = ZeroShotEvaluation(
                zero_shot_eval_dataset, processing_class, zero_shot_class_names, zero_shot_image_column,
                zero_shot_label_column, zero_shot_templates, zero_shot_batch_size,
            )
        zero_shot_only = eval_dataset is None and self.zero_shot_evaluation is not None
        with _eval_strategy_set_aside(args) if zero_shot_only else contextlib.nullcontext():
            super().__init__(
                model=model,
                args=args,
                data_collator=data_collator,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processing_class,
                **kwargs,
            )

        if self.args.remove_unused_columns:
            logger.info("UniCLTrainer: remove_unused_columns=False (samples carry 'text', tokenized by the collator).")
            self.args.remove_unused_columns = False
        if self.args.label_names is None:
            self.label_names = ["labels"]
        # UniCLModel.forward takes **kwargs (for the towers), which the Trainer would read as "accepts
        # num_items_in_batch"; the UniCL loss is a per-batch mean and takes no such argument.
        self.model_accepts_loss_kwargs = False

        self.logit_scale_meter = LogitScaleMeter()
        self.nonfinite_loss = NonFiniteLossCallback(skip=skip_nonfinite_loss)
        self.add_callback(self.nonfinite_loss)
        self.add_callback(SamplerEpochCallback())
        if _is_unicl_data(train_dataset):
            self.add_callback(SkippedRowsCallback(train_dataset.skipped_rows))
        self.throughput = ThroughputMeter()
        self._data_position = None  # the streaming loader state to resume from (set by train())
        self._restore_data_position = True
        if isinstance(train_dataset, StreamingTrainingDataset):
            self._prepare_for_streaming()

    def _prepare_for_streaming(self) -> None:
        if self.args.max_steps is None or self.args.max_steps <= 0:
            raise ValueError(
                f"A streaming training dataset has no length: set max_steps (a positive number of steps), got "
                f"{self.args.max_steps!r}."
            )
        # the loader's saved state restores the position; the Trainer's replay would decode every skipped sample
        self._restore_data_position = not self.args.ignore_data_skip
        self.args.ignore_data_skip = True
        self.add_callback(StreamingStateCallback())
        self.add_callback(self.throughput)

    @property
    def skipped_images(self) -> dict[int | str, str]:
        """The unreadable training images the dataset replaced (row -> file and error; for streamed data
        "{shard}#{key}" or the shard -> kind and error), also those met in dataloader workers (collected while
        `train()` runs)."""
        dataset = self.train_dataset
        return dict(dataset.skipped_rows) if _is_unicl_data(dataset) else {}

    @property
    def skipped_nonfinite_steps(self) -> list[int]:
        """The steps of the last `train()` whose loss was NaN / inf (skip_nonfinite_loss=True)."""
        return self.nonfinite_loss.skipped_steps

    # ------------------------------------------------------------------------------------------------ train
    def train(self, resume_from_checkpoint: str | bool | None = None, *args, **kwargs):
        """`Trainer.train`, resuming from the last *complete* checkpoint, with `train_skipped_images` and
        `train_skipped_nonfinite_steps` in the returned metrics (the rows and steps are listed in warnings).

        `resume_from_checkpoint=True` passes over a checkpoint that a kill interrupted while it was being written (no
        trainer_state.json, which the Trainer writes last, or a truncated weights file), with a warning. An explicit
        incomplete checkpoint raises a ValueError saying what is missing."""
        resume_from_checkpoint = resolve_resume_checkpoint(resume_from_checkpoint, self.args.output_dir)
        self._data_position = None
        if isinstance(self.train_dataset, StreamingTrainingDataset) and isinstance(resume_from_checkpoint, str):
            self._data_position = self._saved_data_position(resume_from_checkpoint)
        output = super().train(resume_from_checkpoint, *args, **kwargs)
        output.metrics["train_skipped_nonfinite_steps"] = len(self.skipped_nonfinite_steps)
        output.metrics["train_skipped_images"] = len(self.skipped_images)
        if isinstance(self.train_dataset, StreamingTrainingDataset):
            for kind, count in sorted(self.train_dataset.skipped_rows.counts().items()):
                output.metrics[f"train_skipped_{kind.replace(' ', '_')}"] = count
        return output

    def _saved_data_position(self, checkpoint: str) -> dict | None:
        """This rank's streaming loader state in `checkpoint`, or None (with a warning when it has none)."""
        if not self._restore_data_position:
            logger.info("ignore_data_skip=True: the streamed data starts from its beginning, not the checkpoint's.")
            return None
        state = StreamingStateCallback.saved_loader_state(checkpoint, self.args.process_index, self.args.world_size)
        if state is None:
            logger.warning(
                f"Checkpoint {checkpoint} holds no streaming data position: the streamed data starts from its "
                "beginning."
            )
        return state

    # ------------------------------------------------------------------------------------------------- data
    def get_train_dataloader(self):
        """The Trainer's loader, or for a `StreamingTrainingDataset` a `StatefulDataLoader` that this trainer builds
        and restores itself (see the module docstring: not prepared by accelerate, which would re-shard it)."""
        dataset = self.train_dataset
        if not isinstance(dataset, StreamingTrainingDataset):
            return super().get_train_dataloader()
        args = self.args
        dataset.configure(self._train_batch_size, rank=args.process_index, world_size=args.world_size)
        loader = dataset.make_loader(
            self.data_collator,
            num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory,
            persistent_workers=args.dataloader_persistent_workers and args.dataloader_num_workers > 0,
            multiprocessing_context=args.dataloader_multiprocessing_context if args.dataloader_num_workers else None,
            prefetch_factor=args.dataloader_prefetch_factor if args.dataloader_num_workers else None,
        )
        if self._data_position is not None:
            loader.load_state_dict(self._data_position)
        return loader

    # Private, but the Trainer's only seam for the sampler alone (get_train_dataloader would copy its DataLoader setup).
    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if isinstance(dataset, UniCLTrainingDataset):
            return UniCLSampler(dataset, batch_size=self._train_batch_size)
        return super()._get_train_sampler(train_dataset)

    # ------------------------------------------------------------------------------------------ checkpoints
    # Private, but no public hook loads the weights: the stock one silently skips tensors saved under legacy names.
    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        plain = self._plain_model(model)
        if plain is None:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        logger.info(f"Loading model weights from {resume_from_checkpoint} (from_pretrained key conversion).")
        load_saved_weights(plain, resume_from_checkpoint)

    # Private, but no public hook loads the weights: the stock one silently skips tensors saved under legacy names.
    def _load_best_model(self) -> None:
        plain = self._plain_model()
        if plain is None:
            return super()._load_best_model()
        logger.info(f"Loading best model from {self.state.best_model_checkpoint} (score: {self.state.best_metric}).")
        load_saved_weights(plain, self.state.best_model_checkpoint)

    def _plain_model(self, model=None) -> PreTrainedModel | None:
        """The unwrapped PreTrainedModel when the weights can be loaded with from_pretrained, else None."""
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or getattr(self, "is_fsdp_xla_enabled", False):
            return None
        unwrapped = self.accelerator.unwrap_model(model if model is not None else self.model)
        return unwrapped if isinstance(unwrapped, PreTrainedModel) else None

    # ------------------------------------------------------------------------------------------------- loss
    def compute_loss(
        self,
        model,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ):
        """The unified contrastive loss of the batch, computed by the model.

        `labels` go to the model, which calls `unicl_loss`; in training it gathers across ranks (the loss of the
        global batch), in evaluation it stays local. Without labels the model falls back to CLIP's loss.
        `num_items_in_batch` is not used: the loss is a mean over the (global) batch. With a `compute_loss_func`,
        the model runs without labels and that function computes the loss."""
        if self.compute_loss_func is not None:
            inputs = dict(inputs)
            labels = inputs.pop("labels", None)
            outputs = model(**inputs)  # no labels, no return_loss: the embeddings only
            loss = self.compute_loss_func(outputs, labels, num_items_in_batch=num_items_in_batch)
            if not isinstance(loss, torch.Tensor):
                raise ValueError(f"compute_loss_func must return a loss tensor, got {type(loss).__name__}.")
        else:
            outputs = model(**{**inputs, "return_loss": True, "gather_distributed": model.training})
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs[0]
        if loss is None:
            raise ValueError(f"The model returned no loss; the inputs were {sorted(inputs)}.")
        if model.training:
            zero_gradients = self.args.world_size > 1 or getattr(self.accelerator, "scaler", None) is not None
            loss = self.nonfinite_loss.check(loss, model, self.state, zero_gradients=zero_gradients)
            self.logit_scale_meter.add(outputs)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Adds `logit_scale` (mean temperature multiplier since the last log) to the training logs, and for streamed
        data `samples_per_second` (all ranks, since the last log)."""
        if "loss" in logs:
            logit_scale = self.logit_scale_meter.pop_mean()
            if logit_scale is not None:
                logs["logit_scale"] = logit_scale
            if isinstance(self.train_dataset, StreamingTrainingDataset):
                samples_per_step = self._train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
                rate = self.throughput.pop(self.state.global_step, samples_per_step)
                if rate is not None:
                    logs["samples_per_second"] = round(rate, 2)
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
        if self.zero_shot_evaluation is not None:
            zero_shot = self.zero_shot_evaluate(metric_key_prefix=metric_key_prefix)
            self.log(dict(zero_shot))
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, zero_shot)
            metrics.update(zero_shot)
        if not metrics:
            raise ValueError("Nothing to evaluate: give an eval_dataset and/or a zero_shot_eval_dataset.")
        return metrics

    def zero_shot_evaluate(self, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Zero-shot accuracy on `zero_shot_eval_dataset` (each rank a contiguous shard, counts summed)."""
        if self.zero_shot_evaluation is None:
            raise ValueError("No zero-shot evaluation: the trainer was built without a zero_shot_eval_dataset.")
        model = self.accelerator.unwrap_model(self.model)
        return self.zero_shot_evaluation(model, self.args, self.accelerator, metric_key_prefix)


def _is_unicl_data(dataset) -> bool:
    return isinstance(dataset, (UniCLTrainingDataset, StreamingTrainingDataset))


def _context_length(train_dataset) -> int | None:
    """The `context_length` data option of a UniCL training dataset (None: the collator's default)."""
    return train_dataset.options.context_length if _is_unicl_data(train_dataset) else None


@contextlib.contextmanager
def _eval_strategy_set_aside(args: TrainingArguments | None):
    """`Trainer.__init__` refuses an eval_strategy without an eval_dataset, and nothing public lets a zero-shot set
    count as one: its checks run with the strategy at "no", restored right after (also when they raise)."""
    if args is None or args.eval_strategy in (None, IntervalStrategy.NO, "no"):
        yield
        return
    strategy, args.eval_strategy = args.eval_strategy, IntervalStrategy.NO
    try:
        yield
    finally:
        args.eval_strategy = strategy
