"""What `UniCLTrainer` adds to the training loop, one concern each: `TrainerCallback`s where the Trainer's events
suffice, small named hooks that `UniCLTrainer` calls where they do not (the loss and the logged values are only
reachable from `compute_loss` and `log`).

* `SamplerEpochCallback`: the epoch of the `UniCLSampler`, whatever the DataLoader is wrapped in.
* `SkippedRowsCallback`: the unreadable training rows replaced (or streamed samples and shards skipped), collected
  from dataloader workers and reported, per kind.
* `StreamingStateCallback`: every rank's position in a streaming dataset, saved inside each checkpoint.
* `ThroughputMeter`: samples per second between two logs.
* `NonFiniteLossCallback`: a NaN / inf training loss stops training or (on request) skips the step; reported.
* `LogitScaleMeter`: the mean temperature multiplier between two logs.
* `ZeroShotEvaluation`: zero-shot top-1 / top-5 on an image-label dataset.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Sequence

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from ..data.sampling import UniCLSampler
from ..data.skipped import SkippedRows
from ..evaluation.zero_shot import ZeroShotClassifier, zero_shot_counts
from ..prompts import IMAGENET_TEMPLATES, check_templates
from ..utils.checks import validate_image_label_dataset

logger = logging.getLogger(__name__)

__all__ = [
    "LogitScaleMeter",
    "NonFiniteLossCallback",
    "NonFiniteLossError",
    "SamplerEpochCallback",
    "SkippedRowsCallback",
    "StreamingStateCallback",
    "ThroughputMeter",
    "ZeroShotEvaluation",
]


# ------------------------------------------------------------------------------------------------ sampler
class SamplerEpochCallback(TrainerCallback):
    """Sets the epoch of the `UniCLSampler` inside the training DataLoader at every epoch start.

    The Trainer (5.24) and accelerate forward `set_epoch` a fixed number of wrappers deep. On a DDP run resumed in
    the middle of an epoch the sampler sits under a skip, a shard and a batch sampler, where neither reaches it, and
    the resumed epoch would replay the order of epoch 0.
    """

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        sampler = _find_sampler(train_dataloader)
        if sampler is not None:
            sampler.set_epoch(math.floor((state.epoch or 0) + 1e-6))  # state.epoch is epoch + fraction done


def _find_sampler(loader) -> UniCLSampler | None:
    """The `UniCLSampler` under a DataLoader's wrappers (batch samplers, shards, skips), if there is one."""
    pending, seen = [loader], set()
    while pending:
        node = pending.pop()
        if isinstance(node, UniCLSampler):
            return node
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        pending += [getattr(node, "batch_sampler", None), getattr(node, "sampler", None)]
    return None


# --------------------------------------------------------------------------------------------- skipped rows
class SkippedRowsCallback(TrainerCallback):
    """Collects the unreadable rows the training dataset replaced, in this process and in dataloader workers (see
    `modeling_unicl.data.skipped`), and lists them in a warning at the end of training."""

    def __init__(self, skipped: SkippedRows):
        self.skipped = skipped

    def on_train_begin(self, args, state, control, **kwargs):
        self.skipped.open_channel(args.dataloader_multiprocessing_context)  # before the workers start

    def on_step_end(self, args, state, control, **kwargs):
        self.skipped.collect()  # every step, so that the workers never wait for room in the queue's pipe

    def on_train_end(self, args, state, control, **kwargs):
        self.skipped.close_channel()
        if not self.skipped:
            return
        keys = sorted(self.skipped, key=lambda key: (isinstance(key, str), key))
        listed = "\n".join(f"  {_record_name(key)}: {self.skipped[key]}" for key in keys[:50])
        more = f"\n  ... and {len(keys) - 50} more" if len(keys) > 50 else ""
        if all(isinstance(key, int) for key in keys):
            logger.warning(
                f"{len(keys)} unreadable training image(s) were skipped (each replaced by the next readable row of "
                f"its type; build the dataset with strict=True to fail instead):\n{listed}{more}"
            )
            return
        counts = ", ".join(f"{kind}: {count}" for kind, count in sorted(self.skipped.counts().items()))
        logger.warning(
            f"{len(keys)} unusable training sample(s) or shard(s) were skipped ({counts}; each sample was replaced by "
            f"the next one of its stream; strict=True / --strict_data fails instead):\n{listed}{more}"
        )


def _record_name(key) -> str:
    return f"row {key}" if isinstance(key, int) else key


# ------------------------------------------------------------------------------------------ streaming state
class StreamingStateCallback(TrainerCallback, ExportableState):
    """Keeps every rank's `StatefulDataLoader` state of a `StreamingTrainingDataset` inside the checkpoints.

    When a step will be saved (or evaluated, after which a "best" save may follow), every rank's loader state is
    gathered (a collective: every rank runs the same step ends) and kept here; the Trainer writes it into the
    checkpoint's `trainer_state.json` (`stateful_callbacks`), the file it writes last, so a checkpoint has its data
    position exactly when it is complete. `UniCLTrainer` reads it back on resume (`saved_loader_state`).
    """

    def __init__(self, loader_states: list | None = None, step: int | None = None):
        self.loader_states, self.step = loader_states, step

    def on_step_end(self, args, state, control, train_dataloader=None, **kwargs):
        if control.should_save or control.should_evaluate:
            self._gather(args, state, train_dataloader)

    def on_epoch_end(self, args, state, control, train_dataloader=None, **kwargs):
        if control.should_save or control.should_evaluate:
            self._gather(args, state, train_dataloader)

    def _gather(self, args, state, loader) -> None:
        if loader is None or not hasattr(loader, "state_dict"):
            return
        local = loader.state_dict()
        states = [local]
        if args.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            states = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(states, local)
        self.loader_states, self.step = states, state.global_step

    def state(self) -> dict:
        return {"args": {"loader_states": self.loader_states, "step": self.step}, "attributes": {}}

    @staticmethod
    def saved_loader_state(checkpoint: str, rank: int, world_size: int) -> dict | None:
        """This rank's loader state saved in `checkpoint` (None when it holds none: not a streaming run). A
        checkpoint saved by a different number of ranks is a ValueError (the data positions are per rank)."""
        import json
        import os

        from transformers.trainer import TRAINER_STATE_NAME

        with open(os.path.join(checkpoint, TRAINER_STATE_NAME), encoding="utf-8") as file:
            saved = json.load(file).get("stateful_callbacks", {}).get(StreamingStateCallback.__name__)
        states = (saved or {}).get("args", {}).get("loader_states")
        if not states:
            return None
        if len(states) != world_size:
            raise ValueError(
                f"Checkpoint {checkpoint} holds the data positions of {len(states)} rank(s), this run has "
                f"{world_size}: resume a streaming run with the same number of processes."
            )
        return states[rank]


# -------------------------------------------------------------------------------------------- throughput
class ThroughputMeter(TrainerCallback):
    """Training samples per second (all ranks) since the last log: started when training begins, read by
    `UniCLTrainer.log`, which logs it as `samples_per_second` for streamed data."""

    def __init__(self):
        self._time, self._step = None, None

    def on_train_begin(self, args, state, control, **kwargs):
        self._time, self._step = time.perf_counter(), int(state.global_step)

    def pop(self, global_step: int, samples_per_step: int) -> float | None:
        """The rate since training began or the last call, or None before training began."""
        if self._time is None:
            return None
        now = time.perf_counter()
        rate = (int(global_step) - self._step) * samples_per_step / max(now - self._time, 1e-9)
        self._time, self._step = now, int(global_step)
        return rate


# ------------------------------------------------------------------------------------------ non-finite loss
class NonFiniteLossError(RuntimeError):
    """A training loss was NaN or infinite; the message names the step."""


class NonFiniteLossCallback(TrainerCallback):
    """What a NaN / inf training loss does. `UniCLTrainer.compute_loss` passes every training loss through `check`:
    it raises `NonFiniteLossError` naming the step, or, with `skip=True`, records the step and returns a stand-in
    loss that gives the model no gradient, so the step changes nothing. The skipped steps (`skipped_steps`, reset
    when training begins) are listed in a warning at the end of training."""

    def __init__(self, skip: bool = False):
        self.skip = bool(skip)
        self.skipped_steps: list[int] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.skipped_steps.clear()

    def on_train_end(self, args, state, control, **kwargs):
        steps = self.skipped_steps
        if steps:
            logger.warning(
                f"{len(steps)} training step(s) had a non-finite loss and were skipped (skip_nonfinite_loss=True): "
                f"steps {steps[:50]}{' ...' if len(steps) > 50 else ''}."
            )

    def check(self, loss: torch.Tensor, model, state, zero_gradients: bool) -> torch.Tensor:
        """`loss` when it is finite; otherwise raise or (skip=True) return the stand-in. `zero_gradients`: give
        every trainable parameter an exact zero gradient (DDP's reducer and fp16's grad scaler expect one) instead
        of none."""
        if bool(torch.isfinite(loss.detach()).all()):
            return loss
        step = state.global_step + 1  # the step being computed, numbered as in the logs
        value = float(loss.detach().float().reshape(-1)[0].item())
        if not self.skip:
            raise NonFiniteLossError(
                f"UniCLTrainer: non-finite loss ({value}) at step {step} (epoch {state.epoch or 0:.2f}). "
                "Usual causes: a learning rate too high, fp16 overflow (use bf16), or broken inputs in this batch. "
                "Pass skip_nonfinite_loss=True to UniCLTrainer to skip such steps instead."
            )
        if not self.skipped_steps or self.skipped_steps[-1] != step:
            self.skipped_steps.append(step)
        logger.warning(f"UniCLTrainer: non-finite loss ({value}) at step {step}; skipping the step.")
        if zero_gradients:
            # momentum-based optimizers still move the weights by their momentum
            parameters = [p for p in model.parameters() if p.requires_grad]
            return sum((p.reshape(-1)[:1] * 0.0).sum() for p in parameters) + torch.zeros((), device=loss.device)
        # a leaf of the same value: backward reaches no parameter, every .grad stays None and the optimizer skips
        # them all; the Trainer's `logging_nan_inf_filter` keeps the NaN out of the logged loss
        return loss.detach().float().clone().requires_grad_(True)


# -------------------------------------------------------------------------------------------- temperature
class LogitScaleMeter:
    """The mean temperature multiplier `exp(t)` (clamped) of the training forwards since the last log:
    `UniCLTrainer.compute_loss` adds every training forward's, `UniCLTrainer.log` logs it as `logit_scale`."""

    def __init__(self):
        self._sum, self._count = None, 0

    def add(self, outputs) -> None:
        scale = outputs.get("logit_scale") if isinstance(outputs, dict) else None
        if scale is not None:
            scale = scale.detach().float()
            self._sum = scale if self._sum is None else self._sum + scale  # on device: no sync per step
            self._count += 1

    def pop_mean(self) -> float | None:
        """The mean since the last call, or None when there was no forward."""
        if not self._count:
            return None
        mean = float(self._sum.item()) / self._count
        self._sum, self._count = None, 0
        return mean


# -------------------------------------------------------------------------------------------- zero-shot
class ZeroShotEvaluation:
    """Zero-shot top-1 / top-5 accuracy (class-name prompts) on an image-label dataset, for `UniCLTrainer.evaluate`.

    The dataset and the processor are checked at construction, so a bad dataset fails before training, not at the
    first evaluation.

    Args:
        dataset: an image-label `datasets.Dataset`.
        processor: a `UniCLProcessor` (tokenizer and image processor).
        class_names: its class names, if its label column is not a `ClassLabel`.
        image_column, label_column: its column names.
        templates: prompt templates of the class embeddings.
        batch_size: image batch size (default: `per_device_eval_batch_size`).
    """

    def __init__(
        self,
        dataset,
        processor,
        class_names: Sequence[str] | None = None,
        image_column: str = "image",
        label_column: str = "label",
        templates: Sequence[str] = IMAGENET_TEMPLATES,
        batch_size: int | None = None,
    ):
        self.class_names = validate_image_label_dataset(dataset, image_column, label_column, class_names)
        if processor is None or not hasattr(processor, "tokenizer"):
            raise ValueError(
                "Zero-shot evaluation needs a processor with a tokenizer and an image processor: pass "
                "processing_class=UniCLProcessor(...)."
            )
        self.dataset, self.processor = dataset, processor
        self.image_column, self.label_column = image_column, label_column
        self.templates, self.batch_size = check_templates(templates), batch_size

    def __call__(self, model, args, accelerator, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Accuracy of the (unwrapped) `model`; each rank evaluates a contiguous shard and the counts are summed."""
        classifier = ZeroShotClassifier(model, self.processor, self.class_names, self.templates)
        dataset = self.dataset
        if args.world_size > 1:
            dataset = dataset.shard(num_shards=args.world_size, index=args.process_index, contiguous=True)
        batch_size = self.batch_size or args.per_device_eval_batch_size
        correct, num_samples = zero_shot_counts(
            classifier, dataset, self.image_column, self.label_column, batch_size, ks=(1, 5)
        )
        counts = torch.tensor([correct[1], correct[5], num_samples], dtype=torch.float64, device=args.device)
        if args.world_size > 1:
            counts = accelerator.reduce(counts, reduction="sum")
        top1, top5, total = counts.tolist()
        return {
            f"{metric_key_prefix}_zero_shot_top1": top1 / total,
            f"{metric_key_prefix}_zero_shot_top5": top5 / total,
            f"{metric_key_prefix}_zero_shot_num_samples": int(total),
        }
