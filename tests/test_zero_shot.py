"""Zero-shot: prompt-ensemble class embeddings, the cached classifier, top-k accuracy, dataset evaluation."""

import pytest
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, Features, Image, Value
from PIL import Image as PILImage
from PIL import ImageDraw

from modeling_unicl import UniCLConfig, UniCLImageProcessor, UniCLModel, UniCLProcessor
from modeling_unicl.prompts import IMAGENET_TEMPLATES
from modeling_unicl.evaluation.metrics import ClassificationCounts
from modeling_unicl.evaluation.zero_shot import ZeroShotClassifier, build_class_embeddings, evaluate_zero_shot, topk_accuracy

CLASS_NAMES = ["red square", "blue circle", "green square", "yellow circle"]
TEMPLATES = ("a photo of a {}.", "a drawing of the {}.", "itap of a {}.")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = UniCLConfig(
        vision_config=dict(
            model_type="swin", image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4
        ),
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
        projection_dim=24,
    )
    return UniCLModel(config).eval()


@pytest.fixture(scope="module")
def processor():
    return UniCLProcessor(
        image_processor=UniCLImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32})
    )


def shapes_dataset(n_per_class=2, label_feature=None) -> Dataset:
    colors = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "yellow": (230, 220, 20)}
    images, labels = [], []
    for label, name in enumerate(CLASS_NAMES):
        color, shape = name.split()
        for i in range(n_per_class):
            image = PILImage.new("RGB", (40, 36), (255, 255, 255))
            (ImageDraw.Draw(image).rectangle if shape == "square" else ImageDraw.Draw(image).ellipse)(
                [4 + i, 4, 30, 30], fill=colors[color]
            )
            images.append(image)
            labels.append(label)
    label_feature = label_feature or ClassLabel(names=CLASS_NAMES)
    features = Features({"image": Image(), "label": label_feature})
    return Dataset.from_dict({"image": images, "label": labels}, features=features)


def balanced_accuracy(predictions, labels) -> float:
    """scikit-learn's `balanced_accuracy_score` (CLIP_benchmark's mean per-class recall), written out."""
    recalls = [(predictions[labels == c] == c).float().mean().item() for c in labels.unique()]
    return sum(recalls) / len(recalls)


def naive_class_embeddings(model, tokenizer, class_names, templates):
    rows = []
    with torch.no_grad():
        for name in class_names:
            prompts = [template.format(name) for template in templates]
            tokens = tokenizer(prompts, padding=True, return_tensors="pt")
            features = model.get_text_features(**tokens).pooler_output
            rows.append(F.normalize(F.normalize(features, dim=-1).mean(dim=0), dim=-1))
    return torch.stack(rows)


def test_build_class_embeddings_equals_naive_loop(model, processor):
    expected = naive_class_embeddings(model, processor.tokenizer, CLASS_NAMES, TEMPLATES)
    for batch_size in (2, 5, 256):  # batches that cut through classes give the same result
        embeddings = build_class_embeddings(model, processor, CLASS_NAMES, TEMPLATES, batch_size=batch_size)
        assert embeddings.shape == (len(CLASS_NAMES), model.config.projection_dim)
        torch.testing.assert_close(embeddings, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(len(CLASS_NAMES)))
    single = build_class_embeddings(model, processor.tokenizer, ["red square"], ("a photo of a {}.",))
    direct = model.get_text_features(**processor.tokenizer(["a photo of a red square."], return_tensors="pt"))
    torch.testing.assert_close(single, F.normalize(direct.pooler_output.detach(), dim=-1), rtol=1e-5, atol=1e-5)


def test_build_class_embeddings_batches_prompts_by_length(model, processor):
    """Each text batch is padded to its own longest prompt: prompts are sorted by token length before batching."""
    lengths = sorted(len(ids) for ids in processor.tokenizer(
        [t.format(n) for n in CLASS_NAMES for t in IMAGENET_TEMPLATES])["input_ids"])
    seen = []
    handle = model.text_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    try:
        embeddings = build_class_embeddings(model, processor, CLASS_NAMES, IMAGENET_TEMPLATES, batch_size=32)
    finally:
        handle.remove()
    expected = [(len(lengths[i : i + 32]), max(lengths[i : i + 32])) for i in range(0, len(lengths), 32)]
    assert seen == expected
    unsorted_positions = sum(32 * max(lengths) for _ in expected)  # what one long template costs every batch
    assert sum(b * n for b, n in seen) < 0.9 * unsorted_positions
    expected_embeddings = naive_class_embeddings(model, processor.tokenizer, CLASS_NAMES, IMAGENET_TEMPLATES)
    torch.testing.assert_close(embeddings, expected_embeddings, rtol=1e-5, atol=1e-5)


def test_build_class_embeddings_defaults_and_mode(model, processor):
    model.train()
    embeddings = build_class_embeddings(model, processor, CLASS_NAMES[:2])  # the 80 ImageNet templates
    assert model.training  # mode restored
    model.eval()
    expected = naive_class_embeddings(model, processor.tokenizer, CLASS_NAMES[:2], IMAGENET_TEMPLATES)
    torch.testing.assert_close(embeddings, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="class_names is empty"):
        build_class_embeddings(model, processor, [])
    with pytest.raises(ValueError, match="exactly one"):
        build_class_embeddings(model, processor, ["dog"], ["no placeholder"])


def test_classifier_computes_text_side_once(model, processor):
    calls = []
    handle = model.text_model.register_forward_hook(lambda *args: calls.append(1))
    try:
        classifier = ZeroShotClassifier(model, processor, CLASS_NAMES, TEMPLATES, batch_size=4)
        after_construction = len(calls)
        assert after_construction == 3  # 12 prompts in batches of 4
        pixel_values = torch.randn(5, 3, 32, 32)
        logits = classifier.logits(pixel_values)
        classifier(pixel_values)
        classifier.predict(pixel_values)
        assert len(calls) == after_construction
    finally:
        handle.remove()
    assert logits.shape == (5, len(CLASS_NAMES))
    with torch.no_grad():
        image_embeds = F.normalize(model.get_image_features(pixel_values=pixel_values).pooler_output, dim=-1)
        expected = model.get_logit_scale() * image_embeds @ classifier.class_embeddings.t()
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    # the same numbers as the model's own forward with the class prompts as texts (single template)
    single = ZeroShotClassifier(model, processor, CLASS_NAMES, ("a photo of a {}.",))
    tokens = processor.tokenizer([f"a photo of a {n}." for n in CLASS_NAMES], padding=True, return_tensors="pt")
    with torch.no_grad():
        forward = model(pixel_values=pixel_values, **tokens).logits_per_image
    torch.testing.assert_close(single.logits(pixel_values), forward, rtol=1e-4, atol=1e-4)


def test_topk_accuracy_hand_made():
    logits = torch.tensor(
        [
            [0.9, 0.1, 0.0],  # label 0: top1
            [0.5, 0.4, 0.1],  # label 1: top2
            [0.1, 0.2, 0.7],  # label 0: top3
            [0.0, 0.3, 0.2],  # label 2: top2
        ]
    )
    labels = torch.tensor([0, 1, 0, 2])
    assert topk_accuracy(logits, labels, ks=(1, 2, 3)) == {"top1": 0.25, "top2": 0.75, "top3": 1.0}
    assert topk_accuracy(logits, labels) == {"top1": 0.25, "top5": 1.0}  # k clipped to the 3 classes
    accuracy = (logits.argmax(-1) == labels).float().mean().item()  # evaluate's "accuracy" on the argmax
    assert topk_accuracy(logits, labels.tolist(), ks=(1,))["top1"] == accuracy
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        topk_accuracy(logits, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="no samples"):
        topk_accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))


def test_evaluate_zero_shot(model, processor):
    dataset = shapes_dataset()
    result = evaluate_zero_shot(model, processor, dataset, templates=TEMPLATES, batch_size=3)
    assert set(result) == {"top1", "top5", "mean_per_class_recall", "num_samples", "skipped"}
    assert result["num_samples"] == len(dataset) and result["skipped"] == []
    classifier = ZeroShotClassifier(model, processor, CLASS_NAMES, TEMPLATES)
    pixel_values = classifier.pixel_values(dataset["image"])
    logits, labels = classifier.logits(pixel_values), torch.tensor(dataset["label"])
    expected = topk_accuracy(logits, labels)
    assert result["top1"] == pytest.approx(expected["top1"]) and result["top5"] == 1.0  # 4 classes: k clipped
    assert result["mean_per_class_recall"] == pytest.approx(balanced_accuracy(logits.argmax(-1), labels))
    in_workers = evaluate_zero_shot(model, processor, dataset, templates=TEMPLATES, batch_size=3, num_workers=2)
    assert {k: in_workers[k] for k in ("top1", "top5")} == {k: result[k] for k in ("top1", "top5")}
    plain = shapes_dataset(label_feature=Value("int64"))
    with pytest.raises(ValueError, match="not a ClassLabel"):
        evaluate_zero_shot(model, processor, plain)
    named = evaluate_zero_shot(model, processor, plain, class_names=CLASS_NAMES, templates=TEMPLATES)
    assert named["top1"] == pytest.approx(result["top1"])
    with pytest.raises(ValueError, match="no label column 'target'"):
        evaluate_zero_shot(model, processor, dataset, label_column="target")


def test_an_unreadable_image_is_skipped_and_named(model, processor):
    dataset = shapes_dataset()
    rows = dataset.cast_column("image", Image(decode=False)).to_list()
    rows[1]["image"] = {"bytes": b"not an image", "path": "broken.png"}
    broken = Dataset.from_list(rows, features=dataset.cast_column("image", Image(decode=False)).features)
    result = evaluate_zero_shot(model, processor, broken.cast_column("image", Image()), templates=TEMPLATES)
    assert result["num_samples"] == len(dataset) - 1
    assert [name for name, _ in result["skipped"]] == ["broken.png"] and "not a readable image" in result["skipped"][0][1]


def test_classifier_takes_precomputed_class_embeddings(model, processor):
    calls = []
    handle = model.text_model.register_forward_hook(lambda *args: calls.append(1))
    embeddings = build_class_embeddings(model, processor, CLASS_NAMES, TEMPLATES)
    try:
        classifier = ZeroShotClassifier(model, processor, CLASS_NAMES, TEMPLATES, class_embeddings=embeddings)
        assert len(calls) == 1  # only the build above
    finally:
        handle.remove()
    assert classifier.class_embeddings is embeddings
    with pytest.raises(ValueError, match=r"one row per class name; got shape \(3, 24\)"):
        ZeroShotClassifier(model, processor, CLASS_NAMES, TEMPLATES, class_embeddings=embeddings[:3])


def test_classification_counts_top5_and_mean_per_class_recall():
    torch.manual_seed(0)
    counts = ClassificationCounts(6)
    logits, labels = torch.randn(40, 6), torch.tensor([0] * 20 + [1, 2, 3, 4, 5] * 4)
    for start in range(0, 40, 7):  # batch by batch
        counts.update(logits[start : start + 7], labels[start : start + 7])
    metrics = counts.metrics()
    expected = topk_accuracy(logits, labels)
    assert metrics["top1"] == pytest.approx(expected["top1"]) and metrics["top5"] == pytest.approx(expected["top5"])
    assert metrics["mean_per_class_recall"] == pytest.approx(balanced_accuracy(logits.argmax(-1), labels))
    assert metrics["num_samples"] == 40 and metrics["num_classes"] == 6
    # a class never among the labels does not count (as balanced_accuracy_score); below 5 classes top-5 is None
    few = ClassificationCounts(4)
    few.update(torch.tensor([[2.0, 1, 0, 0], [0, 2.0, 1, 0], [2.0, 0, 0, 1]]), torch.tensor([0, 0, 1]))
    assert few.metrics()["top5"] is None and few.metrics()["mean_per_class_recall"] == pytest.approx((0.5 + 0.0) / 2)
    with pytest.raises(ValueError, match="No image was classified"):
        ClassificationCounts(3).metrics()
