"""UniCLTrainer: mixed training, temperature logging, saving, zero-shot evaluation, exact resume, fine-tuning."""

import json
import shutil

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image, Value
from PIL import Image as PILImage
from PIL import ImageDraw
from transformers import TrainingArguments

from modeling_unicl import UniCLConfig, UniCLImageProcessor, UniCLModel, UniCLProcessor
from modeling_unicl.data import UniCLCollator, build_training_dataset
from modeling_unicl.training import UniCLTrainer

COLORS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "yellow": (230, 220, 20)}
NAMES = [f"{color} {shape}" for color in COLORS for shape in ("square", "circle")]


def draw(color, shape, shift=0) -> PILImage.Image:
    image = PILImage.new("RGB", (32, 32), (255, 255, 255))
    box = [6 + shift, 6, 26 + shift, 26]
    (ImageDraw.Draw(image).rectangle if shape == "square" else ImageDraw.Draw(image).ellipse)(box, fill=COLORS[color])
    return image


def label_dataset(names=NAMES, per_class=2) -> Dataset:
    rows = [(draw(*name.split(), shift=i % 3), label) for label, name in enumerate(names) for i in range(per_class)]
    return Dataset.from_dict(
        {"image": [r[0] for r in rows], "label": [r[1] for r in rows]},
        features=Features({"image": Image(), "label": ClassLabel(names=list(names))}),
    )


def caption_dataset(per_class=2) -> Dataset:
    rows = [(draw(*name.split(), shift=i % 3), f"a {name} on a white page") for name in NAMES for i in range(per_class)]
    return Dataset.from_dict(
        {"image": [r[0] for r in rows], "caption": [r[1] for r in rows]},
        features=Features({"image": Image(), "caption": Value("string")}),
    )


def tiny_model(seed=0) -> UniCLModel:
    torch.manual_seed(seed)
    config = UniCLConfig(
        vision_config=dict(
            model_type="swin", image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4
        ),
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
        projection_dim=24,
    )
    return UniCLModel(config)


def training_args(output_dir, **kwargs) -> TrainingArguments:
    defaults = dict(
        per_device_train_batch_size=16, learning_rate=2e-3, logging_steps=1, report_to=[], use_cpu=True,
        dataloader_num_workers=0, save_strategy="no", disable_tqdm=True, seed=0,
    )
    return TrainingArguments(output_dir=str(output_dir), **{**defaults, **kwargs})


def logged(trainer, key="loss") -> dict:
    return {h["step"]: h[key] for h in trainer.state.log_history if key in h and "eval_loss" not in h}


@pytest.fixture(scope="module")
def processor():
    return UniCLProcessor(
        image_processor=UniCLImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32})
    )


@pytest.fixture(scope="module")
def trained(processor, tmp_path_factory):
    """30 steps on mixed image-label + image-text data, with zero-shot evaluation at the last step."""
    output_dir = tmp_path_factory.mktemp("mixed")
    train = build_training_dataset(processor, [label_dataset(per_class=4)], [caption_dataset(4)], crop_scale=(0.6, 1.0))
    args = training_args(output_dir, max_steps=30, eval_strategy="steps", eval_steps=30)
    assert args.remove_unused_columns  # the transformers default, which the trainer must override
    trainer = UniCLTrainer(
        model=tiny_model(), args=args, train_dataset=train, processing_class=processor,
        zero_shot_eval_dataset=label_dataset(per_class=1),
    )
    assert trainer.args.remove_unused_columns is False and trainer.label_names == ["labels"]
    trainer.train()
    return trainer


def test_mixed_training_loss_drops(trained):
    losses = logged(trained)
    assert sorted(losses) == list(range(1, 31))
    first, last = np.mean([losses[s] for s in range(1, 6)]), np.mean([losses[s] for s in range(26, 31)])
    assert last < 0.8 * first, (first, last)


def test_temperature_is_logged(trained):
    scales = logged(trained, "logit_scale")
    assert sorted(scales) == list(range(1, 31))
    assert all(1.0 <= s <= 100.0 for s in scales.values())
    assert scales[1] == pytest.approx(np.exp(2.6592), rel=1e-4)  # initial multiplier, before any update
    assert len(set(scales.values())) > 1  # learnable: it moves


def test_zero_shot_evaluated_during_training_and_on_demand(trained, processor):
    during = [h for h in trained.state.log_history if "eval_zero_shot_top1" in h]
    assert len(during) == 1 and during[0]["step"] == 30
    metrics = trained.evaluate()
    assert 0.0 <= metrics["eval_zero_shot_top1"] <= metrics["eval_zero_shot_top5"] <= 1.0
    assert metrics["eval_zero_shot_num_samples"] == len(NAMES)
    assert metrics["eval_zero_shot_top1"] == pytest.approx(during[0]["eval_zero_shot_top1"])
    eval_set = build_training_dataset(processor, [label_dataset(per_class=1)], [caption_dataset(1)], train=False)
    with_loss = trained.evaluate(eval_dataset=eval_set)
    assert np.isfinite(with_loss["eval_loss"]) and "eval_zero_shot_top1" in with_loss


def test_save_model_gives_self_contained_folder(trained, tmp_path):
    folder = tmp_path / "saved"
    trained.save_model(str(folder))
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_unicl.UniCLModel"
    for name in ("model.safetensors", "modeling_unicl.py", "configuration_unicl.py", "processor_config.json"):
        assert (folder / name).is_file(), name
    assert (folder / "tokenizer.json").is_file()
    reloaded = UniCLModel.from_pretrained(str(folder)).eval()
    model = trained.model.eval()
    batch = UniCLCollator(trained.processing_class)(
        [{"image": draw("red", "circle"), "text": "a red circle", "labels": 0},
         {"image": draw("blue", "square", 2), "text": "a blue square on a white page", "labels": -7}]
    )
    with torch.no_grad():
        expected, got = model(**batch), reloaded(**batch)
    for key in ("loss", "logits_per_image", "image_embeds", "text_embeds", "logit_scale"):
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6)


def test_compute_loss_goes_through_the_distributed_gather(trained, monkeypatch):
    from modeling_unicl import loss_unicl

    calls = []

    def fake_gather(image_embeds, text_embeds, labels):
        calls.append(labels.clone())
        return image_embeds, text_embeds, labels

    monkeypatch.setattr(loss_unicl, "_is_distributed", lambda: True)
    monkeypatch.setattr(loss_unicl, "gather_features", fake_gather)
    batch = trained.data_collator([trained.train_dataset[k] for k in range(8)])
    trained.model.train()
    loss = trained.compute_loss(trained.model, batch)
    assert len(calls) == 1 and torch.equal(calls[0], batch["labels"]) and loss.ndim == 0
    assert trained.model_accepts_loss_kwargs is False


def test_compute_loss_func_replaces_the_unified_loss(trained, processor, tmp_path):
    """A `compute_loss_func` gets the model's outputs (run without labels) and the labels, as in `Trainer`."""
    from modeling_unicl.loss_unicl import unicl_loss

    seen = []

    def weighted_unicl(outputs, labels, num_items_in_batch=None):
        seen.append((outputs.loss, labels.clone()))
        return 3.0 * unicl_loss(outputs.image_embeds, outputs.text_embeds, labels, outputs.logit_scale)

    batch = trained.data_collator([trained.train_dataset[k] for k in range(8)])
    args = training_args(tmp_path, max_steps=2)
    custom = UniCLTrainer(model=trained.model, args=args, train_dataset=trained.train_dataset,
                          processing_class=processor, compute_loss_func=weighted_unicl)
    trained.model.eval()
    with torch.no_grad():
        default = trained.compute_loss(trained.model, batch)
        loss = custom.compute_loss(trained.model, batch)
    assert len(seen) == 1 and seen[0][0] is None  # the model computed no loss of its own
    assert torch.equal(seen[0][1], batch["labels"])
    torch.testing.assert_close(loss, 3.0 * default)
    looped = UniCLTrainer(model=tiny_model(), args=args, train_dataset=trained.train_dataset,  # leave `trained` be
                          processing_class=processor, compute_loss_func=weighted_unicl)
    looped.train()  # the Trainer's loop runs with it; the temperature is still logged
    assert len(seen) == 3 and sorted(logged(looped, "logit_scale")) == [1, 2]
    bad = UniCLTrainer(model=trained.model, args=args, train_dataset=trained.train_dataset,
                       processing_class=processor, compute_loss_func=lambda outputs, labels, **kw: 1.0)
    with pytest.raises(ValueError, match="must return a loss tensor, got float"):
        bad.compute_loss(trained.model, batch)


def test_resume_continues_exactly(processor, tmp_path):
    train = build_training_dataset(processor, [label_dataset(per_class=2)], [caption_dataset(2)], crop_scale=(0.5, 1.0))
    # 32 rows, batches of 8: 4 steps per epoch, so step 5 is one batch into the second epoch

    def run(output_dir, resume=None):
        args = training_args(
            output_dir, per_device_train_batch_size=8, max_steps=10, save_strategy="steps", save_steps=5
        )
        trainer = UniCLTrainer(model=tiny_model(), args=args, train_dataset=train, processing_class=processor)
        trainer.train(resume_from_checkpoint=resume)
        return trainer

    uninterrupted = logged(run(tmp_path / "full"))
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(tmp_path / "full" / "checkpoint-5", resumed_dir / "checkpoint-5")
    resumed_trainer = run(resumed_dir, resume=True)
    resumed = logged(resumed_trainer)
    assert resumed_trainer.state.global_step == 10
    for step in range(6, 11):
        assert resumed[step] == pytest.approx(uninterrupted[step], rel=1e-5, abs=1e-6), step
    assert (resumed_dir / "checkpoint-10" / "processor_config.json").is_file()


def test_fine_tune_saved_model_on_downstream_labels(trained, processor, tmp_path):
    folder = tmp_path / "pretrained"
    trained.save_model(str(folder))
    model = UniCLModel.from_pretrained(str(folder))
    downstream_names = ["square", "circle"]
    images, labels = [], []
    for color in COLORS:
        for label, shape in enumerate(downstream_names):
            for shift in range(2):
                images.append(draw(color, shape, shift))
                labels.append(label)
    downstream = Dataset.from_dict(
        {"img": images, "shape": labels},
        features=Features({"img": Image(), "shape": ClassLabel(names=downstream_names)}),
    )
    train = build_training_dataset(
        processor, [downstream], image_column="img", label_column="shape", crop_scale=(0.7, 1.0)
    )
    assert train.num_caption_rows == 0 and all(train[k]["labels"] in (0, 1) for k in range(len(train)))
    args = training_args(tmp_path / "finetune", max_steps=15, learning_rate=1e-3)
    trainer = UniCLTrainer(model=model, args=args, train_dataset=train)  # processor taken from the dataset
    trainer.train()
    losses = logged(trainer)
    assert np.mean([losses[s] for s in (13, 14, 15)]) < np.mean([losses[s] for s in (1, 2, 3)])
    trainer.save_model()
    assert (tmp_path / "finetune" / "processor_config.json").is_file()


def test_zero_shot_dataset_is_checked_at_construction(processor, tmp_path):
    bad = label_dataset(per_class=1).rename_column("label", "target")
    with pytest.raises(ValueError, match="no label column 'label'"):
        UniCLTrainer(
            model=tiny_model(), args=training_args(tmp_path), processing_class=processor, zero_shot_eval_dataset=bad
        )
