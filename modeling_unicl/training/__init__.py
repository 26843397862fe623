"""Training UniCL: `UniCLTrainer` (trainer.py), the callbacks and hooks it adds to the loop (callbacks.py), and
checkpoint completeness and loading (checkpoints.py)."""

from .callbacks import (
    LogitScaleMeter,
    NonFiniteLossCallback,
    NonFiniteLossError,
    SamplerEpochCallback,
    SkippedRowsCallback,
    ZeroShotEvaluation,
)
from .checkpoints import checkpoint_problem, load_saved_weights, resolve_resume_checkpoint
from .trainer import UniCLTrainer

__all__ = [
    "LogitScaleMeter",
    "NonFiniteLossCallback",
    "NonFiniteLossError",
    "SamplerEpochCallback",
    "SkippedRowsCallback",
    "UniCLTrainer",
    "ZeroShotEvaluation",
    "checkpoint_problem",
    "load_saved_weights",
    "resolve_resume_checkpoint",
]
