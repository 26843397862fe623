"""Training UniCL: `UniCLTrainer` (trainer.py), the callbacks and hooks it adds to the loop (callbacks.py), and
checkpoint completeness and loading (checkpoints.py), and fine-tuning as an image classifier with the plain `Trainer`
(classification.py)."""

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
from .checkpoints import checkpoint_problem, last_complete_checkpoint, load_saved_weights, resolve_resume_checkpoint
from .classification import ImageClassificationTransform, accuracy_metric, classifier_from_unicl_model
from .trainer import UniCLTrainer

__all__ = [
    "ImageClassificationTransform",
    "LogitScaleMeter",
    "NonFiniteLossCallback",
    "NonFiniteLossError",
    "SamplerEpochCallback",
    "SkippedRowsCallback",
    "StreamingStateCallback",
    "ThroughputMeter",
    "UniCLTrainer",
    "ZeroShotEvaluation",
    "accuracy_metric",
    "checkpoint_problem",
    "classifier_from_unicl_model",
    "last_complete_checkpoint",
    "load_saved_weights",
    "resolve_resume_checkpoint",
]
