"""One rank of `tests/test_training_streaming.py`'s DDP runs, started by `torchrun --nproc_per_node 2`: UniCLTrainer on
streamed shards with 2 dataloader workers per rank (the real Trainer / accelerate path), recording the labels of every
training batch this rank saw, as {step: labels}, to RUN_DIR/labels_rank{rank}.json.

    torchrun --nproc_per_node 2 tests/dist_streaming_worker.py RUN_DIR LABEL_PATTERN CLASSES CAPTION_PATTERN MAX_STEPS [resume]
"""

import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]


def main(run_dir, label_pattern, classes, caption_pattern, max_steps, resume=None):
    import torch

    from conftest import tiny_processor
    from test_trainer import tiny_model, training_args

    from modeling_unicl.data import build_streaming_dataset
    from modeling_unicl.training import UniCLTrainer

    torch.set_num_threads(1)
    seen = {}

    class RecordingTrainer(UniCLTrainer):
        def compute_loss(self, model, inputs, **kwargs):
            if model.training:
                seen[self.state.global_step + 1] = inputs["labels"].tolist()
            return super().compute_loss(model, inputs, **kwargs)

    dataset = build_streaming_dataset(tiny_processor(), label_pattern, caption_pattern, classes, shuffle_window=4)
    args = training_args(
        run_dir, per_device_train_batch_size=4, max_steps=int(max_steps), dataloader_num_workers=2,
        save_strategy="steps", save_steps=6, ddp_backend="gloo",
    )
    torch.manual_seed(0)
    trainer = RecordingTrainer(model=tiny_model(), args=args, train_dataset=dataset)
    trainer.train(resume_from_checkpoint=True if resume else None)
    name = f"labels_rank{args.process_index}{'_resumed' if resume else ''}.json"
    (Path(run_dir) / name).write_text(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:])
