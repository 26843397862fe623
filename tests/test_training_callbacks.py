"""UniCLTrainer's callbacks and hooks on their own: the sampler's epoch under accelerate's wrappers, the non-finite
loss check, the temperature meter, the trainer's wiring of the data options."""

import math

import pytest
import torch
from transformers import TrainerControl, TrainerState

from modeling_unicl.data import UniCLSampler, build_training_dataset
from modeling_unicl.training import LogitScaleMeter, NonFiniteLossCallback, NonFiniteLossError, SamplerEpochCallback
from test_trainer import NAMES, caption_dataset, label_dataset, tiny_model, training_args


@pytest.fixture(scope="module")
def processor():
    from conftest import tiny_processor

    return tiny_processor()


def test_sampler_epoch_is_set_through_every_wrapper_of_a_resumed_ddp_loader(processor):
    from accelerate.data_loader import BatchSamplerShard, DataLoaderShard, skip_first_batches

    data = build_training_dataset(processor, [label_dataset(NAMES, per_class=1)], [caption_dataset(1)])
    sampler = UniCLSampler(data, batch_size=4)
    shard = BatchSamplerShard(torch.utils.data.BatchSampler(sampler, 4, False), num_processes=2, process_index=1)
    loader = DataLoaderShard(data, batch_sampler=shard)
    resumed = skip_first_batches(loader, 1)  # skip -> shard -> batch sampler -> UniCLSampler
    resumed.set_epoch(3)  # what the Trainer does: it stops short of the sampler here (accelerate 1.x)
    callback = SamplerEpochCallback()
    for dataloader in (loader, resumed):
        # state.epoch counts fractions: 1.25 is a quarter into epoch 1; the end of epoch 1 may be a hair under 2
        for state_epoch, expected in ((0.0, 0), (1.25, 1), (2.0 - 1e-9, 2), (None, 0)):
            callback.on_epoch_begin(None, TrainerState(epoch=state_epoch), TrainerControl(), train_dataloader=dataloader)
            assert sampler.epoch == expected, (dataloader, state_epoch)
    callback.on_epoch_begin(None, TrainerState(epoch=1.0), TrainerControl(), train_dataloader=None)  # no loader: no-op


def test_nonfinite_loss_check():
    model = torch.nn.Linear(2, 1)
    state = TrainerState(global_step=6, epoch=1.5)
    finite = model(torch.ones(1, 2)).sum()
    stop, skip = NonFiniteLossCallback(), NonFiniteLossCallback(skip=True)
    assert stop.check(finite, model, state, zero_gradients=False) is finite
    nan = finite * float("nan")
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 7 \(epoch 1\.50\)"):
        stop.check(nan, model, state, zero_gradients=False)
    stand_in = skip.check(nan, model, state, zero_gradients=False)
    stand_in.backward()
    assert all(p.grad is None for p in model.parameters()) and skip.skipped_steps == [7]
    zeros = skip.check(torch.tensor(math.inf), model, state, zero_gradients=True)  # same step: recorded once
    zeros.backward()
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in model.parameters()) and skip.skipped_steps == [7]
    skip.on_train_begin(None, state, TrainerControl())
    assert skip.skipped_steps == []


def test_logit_scale_meter_means_since_the_last_pop():
    meter = LogitScaleMeter()
    assert meter.pop_mean() is None
    for value in (2.0, 4.0):
        meter.add({"logit_scale": torch.tensor(value)})
    meter.add({"loss": torch.tensor(1.0)})  # no temperature: not counted
    assert meter.pop_mean() == pytest.approx(3.0) and meter.pop_mean() is None


def test_trainer_collator_cuts_texts_at_the_context_length_option(processor, tmp_path):
    from modeling_unicl.training import UniCLTrainer

    data = build_training_dataset(processor, [label_dataset(NAMES, per_class=1)], context_length=5)
    trainer = UniCLTrainer(model=tiny_model(), args=training_args(tmp_path), train_dataset=data)
    batch = trainer.data_collator([{"pixel_values": torch.zeros(3, 32, 32), "text": "dog " * 50, "labels": 0}])
    assert batch["input_ids"].shape == (1, 5)
    default = UniCLTrainer(model=tiny_model(), args=training_args(tmp_path),
                           train_dataset=build_training_dataset(processor, [label_dataset(NAMES, per_class=1)]))
    assert default.data_collator.max_length == 77
