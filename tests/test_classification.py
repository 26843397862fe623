"""UniCLForImageClassification: step 0 equals zero-shot; fine-tunes with the plain Trainer; works in the pipeline."""

import numpy as np
import pytest
import torch
from conftest import tiny_config, tiny_processor
from datasets import ClassLabel, Dataset, Features, Image as ImageFeature
from PIL import Image
from transformers import AutoModelForImageClassification, Trainer, TrainingArguments, pipeline

from modeling_unicl import UniCLForImageClassification, UniCLModel

CLASSES = ["red square", "green circle", "blue bar"]


def _class_embeddings(model, processor, names):
    texts = processor.tokenizer([f"a photo of a {n}." for n in names], padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.get_text_features(**texts).pooler_output


def _shape_image(label: int, rng) -> Image.Image:
    canvas = np.full((32, 32, 3), 255, dtype=np.uint8)
    x, y = rng.integers(2, 14, size=2)
    color = [(220, 20, 20), (20, 200, 20), (20, 20, 220)][label]
    if label == 0:
        canvas[y : y + 14, x : x + 14] = color
    elif label == 1:
        yy, xx = np.mgrid[:32, :32]
        canvas[(yy - y - 7) ** 2 + (xx - x - 7) ** 2 < 49] = color
    else:
        canvas[y : y + 4, 2:30] = color
    return Image.fromarray(canvas)


@pytest.fixture(scope="module")
def unicl():
    torch.manual_seed(0)
    return UniCLModel(tiny_config()).eval(), tiny_processor()


def test_step_zero_equals_zero_shot(unicl):
    model, processor = unicl
    class_embeds = _class_embeddings(model, processor, CLASSES)
    classifier = UniCLForImageClassification.from_unicl_model(model, class_embeds, CLASSES).eval()
    assert classifier.config.id2label == {0: "red square", 1: "green circle", 2: "blue bar"}
    pixel_values = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        image_embeds = torch.nn.functional.normalize(model.get_image_features(pixel_values).pooler_output, dim=-1)
        zero_shot = model.get_logit_scale() * image_embeds @ torch.nn.functional.normalize(class_embeds, dim=-1).t()
        logits = classifier(pixel_values).logits
    torch.testing.assert_close(logits, zero_shot, atol=1e-5, rtol=1e-5)


def test_wrong_class_embedding_shape(unicl):
    model, _ = unicl
    with pytest.raises(ValueError, match=r"class_embeddings must have shape \(3, 24\)"):
        UniCLForImageClassification.from_unicl_model(model, torch.randn(2, 24), CLASSES)


def test_fine_tunes_with_plain_trainer_and_runs_in_pipeline(unicl, tmp_path):
    model, processor = unicl
    rng = np.random.default_rng(0)
    labels = [i % 3 for i in range(48)]
    dataset = Dataset.from_dict(
        {"image": [_shape_image(l, rng) for l in labels], "label": labels},
        features=Features({"image": ImageFeature(), "label": ClassLabel(names=CLASSES)}),
    )

    def transform(batch):
        pixel_values = processor.image_processor(batch["image"], return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixel_values, "labels": batch["label"]}

    dataset = dataset.with_transform(transform)
    classifier = UniCLForImageClassification.from_unicl_model(
        model, _class_embeddings(model, processor, CLASSES), CLASSES
    )
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=8, num_train_epochs=4, learning_rate=3e-3,
        logging_steps=1, report_to=[], use_cpu=True, remove_unused_columns=False, save_strategy="no", seed=0,
    )
    trainer = Trainer(model=classifier, args=args, train_dataset=dataset)
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert np.mean(losses[-4:]) < np.mean(losses[:4])

    folder = tmp_path / "classifier"
    trainer.save_model(str(folder))
    processor.save_pretrained(folder)
    reloaded = AutoModelForImageClassification.from_pretrained(folder)
    assert isinstance(reloaded, UniCLForImageClassification)
    assert not any(k.startswith("text_model") for k in reloaded.state_dict())
    predictions = pipeline("image-classification", model=str(folder))(_shape_image(0, rng), top_k=3)
    assert {p["label"] for p in predictions} == set(CLASSES)
