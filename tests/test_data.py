"""Data pipeline: label ids, prompts, mixing, augmentation, lazy decoding, collator, input checks."""

import io

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image, Value
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from PIL import ImageDraw

from modeling_unicl import UniCLImageProcessor, UniCLProcessor
from modeling_unicl.data import (
    ImageLabelSource,
    ImageTextSource,
    RandomResizedCropAndFlip,
    UniCLCollator,
    UniCLSampler,
    build_label_space,
    build_training_dataset,
    to_rgb,
    validate_image_label_dataset,
)
from modeling_unicl.prompts import IMAGENET_TEMPLATES, SIMPLE_TEMPLATE, UNICL_IMAGENET_TEMPLATES

COLORS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "yellow": (230, 220, 20)}


def shape_image(color: str, shape: str, size=(32, 32), shift: int = 0) -> PILImage.Image:
    image = PILImage.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    box = [6 + shift, 6, 24 + shift, 26]
    (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=COLORS[color])
    return image


def label_dataset(names, per_class=2, size=(32, 32)) -> Dataset:
    images, labels = [], []
    for label, name in enumerate(names):
        color, shape = name.split()
        for i in range(per_class):
            images.append(shape_image(color, shape, size, shift=i))
            labels.append(label)
    return Dataset.from_dict(
        {"image": images, "label": labels},
        features=Features({"image": Image(), "label": ClassLabel(names=list(names))}),
    )


def caption_dataset(n, tag="cap", image_column="image", caption_column="caption") -> Dataset:
    names = [f"{c} {s}" for c in COLORS for s in ("square", "circle")]
    images, captions = [], []
    for i in range(n):
        color, shape = names[i % len(names)].split()
        images.append(shape_image(color, shape, shift=i % 4))
        captions.append(f"{tag} {i}: a {color} {shape}")
    return Dataset.from_dict(
        {image_column: images, caption_column: captions},
        features=Features({image_column: Image(), caption_column: Value("string")}),
    )


@pytest.fixture(scope="module")
def processor():
    return UniCLProcessor(
        image_processor=UniCLImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32})
    )


NAMES = ["red square", "blue circle", "green square"]


# --------------------------------------------------------------------------------------------------- templates
def test_templates():
    assert len(IMAGENET_TEMPLATES) == 80 and len(set(IMAGENET_TEMPLATES)) == 80
    assert IMAGENET_TEMPLATES[0] == "a bad photo of a {}." and "itap of a {}." in IMAGENET_TEMPLATES
    assert all(t.count("{}") == 1 for t in IMAGENET_TEMPLATES)
    assert UNICL_IMAGENET_TEMPLATES == ("{}.",) + IMAGENET_TEMPLATES
    assert SIMPLE_TEMPLATE.format("dog") == "a photo of a dog."


# ------------------------------------------------------------------------------------------------- label ids
def test_label_space_disjoint_and_shared():
    names, maps = build_label_space([["dog", "cat"], ["Dog ", "bird"]])
    assert names == ["dog", "cat", "Dog ", "bird"] and maps[0].tolist() == [0, 1] and maps[1].tolist() == [2, 3]
    names, maps = build_label_space([["dog", "cat"], ["Dog ", "bird"]], share_class_names=True)
    assert names == ["dog", "cat", "bird"] and maps[1].tolist() == [0, 2]


def test_class_ids_offset_per_source_or_shared(processor):
    first = label_dataset(["red square", "blue circle"])
    second = label_dataset(["green square", "red square"])
    for share, expected_names in ((False, 4), (True, 3)):
        ds = build_training_dataset(processor, [first, second], mixing="concat", share_class_names=share)
        assert len(ds.class_names) == expected_names
        labels = [ds[k]["labels"] for k in range(len(ds))]
        assert min(labels) >= 0
        first_ids, second_ids = set(labels[: len(first)]), set(labels[len(first) :])
        red_first = ds.class_names.index("red square")
        if share:
            assert first_ids & second_ids == {red_first}  # "red square" is one class in both datasets
        else:
            assert not first_ids & second_ids and second_ids == {2, 3}


def test_caption_ids_never_collide_across_datasets_ranks_workers_steps(processor):
    from accelerate.data_loader import BatchSamplerShard

    labelled = label_dataset(NAMES)
    ds = build_training_dataset(
        processor, [labelled], [caption_dataset(10, "A"), caption_dataset(10, "B")], crop_scale=(0.5, 1.0)
    )
    collator = UniCLCollator(processor)
    caption_of_label, label_of_caption = {}, {}
    sampler = UniCLSampler(ds, batch_size=8)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for rank in range(2):  # two simulated ranks, each with two dataloader workers
            batches = torch.utils.data.BatchSampler(sampler, 8, False)
            shard = BatchSamplerShard(batches, num_processes=2, process_index=rank)
            workers = 2 if epoch == 0 else 0
            loader = torch.utils.data.DataLoader(ds, batch_sampler=shard, num_workers=workers, collate_fn=collator)
            for batch in loader:
                texts = processor.tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True)
                for label, text in zip(batch["labels"].tolist(), texts):
                    if label < 0:
                        assert caption_of_label.setdefault(label, text) == text
                        assert label_of_caption.setdefault(text, label) == label
                    else:
                        assert 0 <= label < len(NAMES)
    assert len(caption_of_label) == 20  # both caption datasets (identical images, different rows) fully seen
    assert all(label < 0 for label in caption_of_label)


def test_caption_id_is_function_of_row(processor):
    ds = build_training_dataset(processor, [label_dataset(NAMES)], [caption_dataset(4, "A"), caption_dataset(4, "B")])
    rows = [ds.hf_dataset[i] for i in range(len(ds))]
    n_label = 2 * len(NAMES)
    assert [r["label"] for r in rows[n_label:]] == [-(1 + n_label + i) for i in range(8)]
    assert [r["uid"] for r in rows] == list(range(len(ds)))


# --------------------------------------------------------------------------------------------------- prompts
def test_prompts_come_from_templates_and_are_deterministic(processor):
    labelled = label_dataset(NAMES, per_class=4)
    ds = build_training_dataset(processor, [labelled], seed=3)
    again = build_training_dataset(processor, [labelled], seed=3)
    other_seed = build_training_dataset(processor, [labelled], seed=4)
    n = len(ds)
    texts = [ds[k]["text"] for k in range(n)]
    for k, text in enumerate(texts):
        name = NAMES[ds[k]["labels"]]
        assert text in {t.format(name) for t in IMAGENET_TEMPLATES}
    assert texts == [again[k]["text"] for k in range(n)]  # same (seed, epoch, row) -> same text
    assert texts != [other_seed[k]["text"] for k in range(n)]
    assert texts != [ds[n + k]["text"] for k in range(n)]  # epoch 1 draws new templates
    assert len(set(texts)) > 3
    custom = build_training_dataset(processor, [labelled], templates=["itap of a {}."])
    assert {custom[k]["text"] for k in range(n)} == {f"itap of a {name}." for name in NAMES}


# ---------------------------------------------------------------------------------------------------- mixing
def test_batch_mixing_puts_ratio_in_every_batch_and_cycles(processor):
    labelled = label_dataset(NAMES, per_class=2)  # 6 rows
    ds = build_training_dataset(processor, [labelled], [caption_dataset(30)], label_fraction=0.25)
    assert ds.options.mixing == "batch" and len(ds) == 36
    sampler = UniCLSampler(ds, batch_size=8)
    seen_label_rows = set()
    for epoch in range(2):
        sampler.set_epoch(epoch)
        indices = list(sampler)
        assert len(indices) == 36 and all(epoch * 36 <= k < (epoch + 1) * 36 for k in indices)
        rows = [k % 36 for k in indices]
        for start in range(0, 32, 8):  # full batches: exactly 2 image-label samples of 8
            assert sum(row < 6 for row in rows[start : start + 8]) == 2
        assert sum(row < 6 for row in rows[32:]) == 1  # last batch of 4: round(0.25 * 4)
        seen_label_rows |= {row for row in rows if row < 6}
        assert list(sampler) == indices  # same epoch, same order
    assert seen_label_rows == set(range(6))


def test_interleave_and_concat_modes(processor):
    labelled, captions = label_dataset(NAMES, per_class=4), caption_dataset(6)
    ds = build_training_dataset(
        processor, [labelled], [captions], mixing="interleave", probabilities=[0.7, 0.3], seed=1
    )
    labels = [ds.hf_dataset[i]["label"] for i in range(len(ds))]
    assert ds.num_label_rows + ds.num_caption_rows == len(ds)
    assert sum(label >= 0 for label in labels) == ds.num_label_rows > ds.num_caption_rows
    assert {label for label in labels if label < 0} == {-(1 + 12 + i) for i in range(6)}  # all_exhausted
    sampler = UniCLSampler(ds, batch_size=4)
    assert sorted(k % len(ds) for k in sampler) == list(range(len(ds)))
    concat = build_training_dataset(processor, [labelled], [captions], mixing="concat")
    assert len(concat) == 18 and concat.num_caption_rows == 6
    with pytest.raises(ValueError, match="probabilities"):
        build_training_dataset(processor, [labelled], [captions], mixing="interleave", probabilities=[1.0])
    with pytest.raises(ValueError, match="mixing"):
        build_training_dataset(processor, [labelled], mixing="zip")
    with pytest.raises(ValueError, match="label_fraction"):
        build_training_dataset(processor, [labelled], [captions], label_fraction=0.0)


# ------------------------------------------------------------------------------------------------- collator
def test_collator_shapes_dtypes_and_padding(processor):
    collator = UniCLCollator(processor)
    texts = ["a photo of a red square.", "hi", "a much longer caption about a small blue circle on a white page"]
    features = [{"pixel_values": torch.randn(3, 32, 32), "text": t, "labels": -5 + i} for i, t in enumerate(texts)]
    batch = collator(features)
    lengths = [len(processor.tokenizer(t)["input_ids"]) for t in texts]
    assert batch["pixel_values"].shape == (3, 3, 32, 32) and batch["pixel_values"].dtype == torch.float32
    assert batch["input_ids"].shape == (3, max(lengths)) and batch["input_ids"].dtype == torch.int64
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    assert batch["labels"].dtype == torch.int64 and batch["labels"].tolist() == [-5, -4, -3]
    pad = processor.tokenizer.pad_token_id
    assert (batch["input_ids"][1, lengths[1] :] == pad).all()

    no_labels = collator([{"pixel_values": torch.zeros(3, 32, 32), "text": "x"}] * 2)
    assert "labels" not in no_labels
    grey = shape_image("red", "square", (50, 40)).convert("L")
    from_images = collator([{"image": grey, "text": "x", "label": 1}] * 2)
    assert from_images["pixel_values"].shape == (2, 3, 32, 32) and from_images["labels"].tolist() == [1, 1]
    long_text = collator([{"pixel_values": torch.zeros(3, 32, 32), "text": "dog " * 200, "labels": 0}])
    assert long_text["input_ids"].shape[1] == 77


def test_collator_rejects_partial_labels(processor):
    collator = UniCLCollator(processor)
    features = [{"pixel_values": torch.zeros(3, 32, 32), "text": "a", "labels": 1}] * 2
    features = features + [{"pixel_values": torch.zeros(3, 32, 32), "text": "b", "labels": None}]
    with pytest.raises(ValueError, match=r"1 of the 3 samples .* no label .* \[2\]"):
        collator(features)


# --------------------------------------------------------------------------------------------- augmentation
def test_augmentation_size_random_and_seeded():
    image = shape_image("red", "square", size=(48, 40))
    augment = RandomResizedCropAndFlip((32, 24), scale=(0.08, 1.0))
    out = augment(image, np.random.default_rng(0))
    assert out.size == (24, 32) and out.mode == "RGB"
    same = augment(image, np.random.default_rng(0))
    assert np.array_equal(np.asarray(out), np.asarray(same))
    others = [np.asarray(augment(image, np.random.default_rng(seed))) for seed in range(1, 6)]
    assert any(not np.array_equal(np.asarray(out), other) for other in others)
    flips = RandomResizedCropAndFlip(16, scale=(1.0, 1.0), ratio=(48 / 40, 48 / 40), flip_prob=1.0)
    flipped = np.asarray(flips(image, np.random.default_rng(0)))
    plain = np.asarray(image.resize((16, 16), PILImage.Resampling.BICUBIC))
    assert np.array_equal(flipped, plain[:, ::-1])


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    low=st.floats(0.05, 1.0),
)
def test_crop_params_inside_image(width, height, seed, low):
    augment = RandomResizedCropAndFlip(8, scale=(low, 1.0))
    left, top, crop_w, crop_h = augment.get_params(width, height, np.random.default_rng(seed))
    assert 0 <= left and 0 <= top and crop_w >= 1 and crop_h >= 1
    assert left + crop_w <= width and top + crop_h <= height


def test_dataset_augmentation_is_seeded_per_epoch_and_eval_uses_processor(processor):
    labelled = label_dataset(NAMES, per_class=2, size=(48, 40))
    ds = build_training_dataset(processor, [labelled], crop_scale=(0.1, 0.5), seed=0)
    n = len(ds)
    assert ds[0]["pixel_values"].shape == (3, 32, 32)
    assert torch.equal(ds[0]["pixel_values"], ds[0]["pixel_values"])
    assert not torch.equal(ds[0]["pixel_values"], ds[n]["pixel_values"])  # same row, next epoch
    evaluation = build_training_dataset(processor, [labelled], train=False)
    expected = processor.image_processor(labelled[0]["image"], return_tensors="pt")["pixel_values"][0]
    assert torch.allclose(evaluation[0]["pixel_values"], expected)
    assert torch.equal(evaluation[0]["pixel_values"], evaluation[n]["pixel_values"])


# ------------------------------------------------------------------------------------------- decoding, RGB
def test_decoding_is_lazy(processor):
    good = label_dataset(NAMES, per_class=1)
    broken = Dataset.from_dict(
        {"image": [{"bytes": b"not an image", "path": None}], "label": [0]},
        features=Features({"image": Image(), "label": ClassLabel(names=NAMES)}),
    )
    from datasets import concatenate_datasets

    ds = build_training_dataset(  # builds: no decode
        processor, [concatenate_datasets([good, broken])], mixing="concat", strict=True
    )
    stored = ds.hf_dataset.data.column("unicl_image")[0].as_py()
    assert stored["bytes"][:8] == b"\x89PNG\r\n\x1a\n"  # the table still holds encoded images
    assert ds.hf_dataset.format["type"] == "custom"
    record = ds.hf_dataset[0]  # the transform runs on access
    assert isinstance(record["image"], PILImage.Image) and record["image"].mode == "RGB"
    assert ds[1]["pixel_values"].shape == (3, 32, 32)
    with pytest.raises(Exception):
        ds[3]  # only the broken row fails, and only when it is read


def test_to_rgb_modes():
    rgba = PILImage.new("RGBA", (4, 4), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))
    out = to_rgb(rgba)
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((1, 1)) == (255, 0, 0)
    assert to_rgb(PILImage.new("L", (4, 4), 7)).getpixel((0, 0)) == (7, 7, 7)
    assert to_rgb(PILImage.new("LA", (4, 4), (9, 0))).getpixel((0, 0)) == (255, 255, 255)
    palette = PILImage.new("P", (4, 4), 0)
    palette.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    assert to_rgb(palette).getpixel((0, 0)) == (10, 20, 30)
    palette.info["transparency"] = 0
    assert to_rgb(palette).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(PILImage.new("CMYK", (4, 4), (0, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)
    sixteen = PILImage.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert sixteen.mode.startswith("I;16") and to_rgb(sixteen).getpixel((0, 0)) == (255, 255, 255)
    floats = PILImage.fromarray(np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32))
    assert floats.mode == "F" and [to_rgb(floats).getpixel(p)[0] for p in ((0, 0), (1, 0), (0, 1))] == [0, 128, 255]
    wide = PILImage.fromarray(np.array([[0, 65535]], dtype=np.int32))
    assert wide.mode == "I" and to_rgb(wide).getpixel((1, 0)) == (255, 255, 255)
    encoded = io.BytesIO()
    PILImage.new("LA", (3, 3), (100, 255)).save(encoded, format="PNG")
    assert to_rgb(PILImage.open(encoded)).getpixel((0, 0)) == (100, 100, 100)


# ----------------------------------------------------------------------------------------------- bad input
def test_missing_columns_name_the_column_and_list_the_available_ones(processor):
    labelled = label_dataset(NAMES)
    renamed = caption_dataset(3, image_column="picture", caption_column="text")
    with pytest.raises(ValueError, match=r"no image column 'img'.*\['image', 'label'\]"):
        build_training_dataset(processor, [labelled], image_column="img")
    with pytest.raises(ValueError, match=r"no label column 'target'.*\['image', 'label'\]"):
        build_training_dataset(processor, [labelled], label_column="target")
    with pytest.raises(ValueError, match=r"no caption column 'caption'.*\['picture', 'text'\]"):
        build_training_dataset(processor, image_text_datasets=[renamed], image_column="picture")
    ok = build_training_dataset(processor, image_text_datasets=[ImageTextSource(renamed, "picture", "text")])
    assert len(ok) == 3 and ok[0]["text"].startswith("cap 0")


def test_label_column_needs_classlabel_or_class_names(processor):
    plain = Dataset.from_dict(
        {"image": [shape_image("red", "square")] * 2, "label": [0, 1]},
        features=Features({"image": Image(), "label": Value("int64")}),
    )
    with pytest.raises(ValueError, match="not a ClassLabel, and no class_names"):
        build_training_dataset(processor, [plain])
    ds = build_training_dataset(processor, [plain], class_names=["red square", "blue circle"], templates=["{}"])
    assert [ds[k]["text"] for k in range(2)] == ["red square", "blue circle"]
    sourced = build_training_dataset(processor, [ImageLabelSource(plain, class_names=["a", "b"])], templates=["{}"])
    assert sourced[1]["text"] == "b"


def test_empty_dataset_and_out_of_range_labels(processor):
    labelled = label_dataset(NAMES)
    with pytest.raises(ValueError, match="empty"):
        build_training_dataset(processor, [labelled.select([])])
    with pytest.raises(ValueError, match="empty"):
        build_training_dataset(processor, image_text_datasets=[caption_dataset(2).select([])])
    plain = Dataset.from_dict(
        {"image": [shape_image("red", "square")] * 3, "label": [0, 1, 5]},
        features=Features({"image": Image(), "label": Value("int64")}),
    )
    with pytest.raises(ValueError, match=r"ids from 0 to 5, but there are 2 classes"):
        validate_image_label_dataset(plain, class_names=["a", "b"])
    unlabelled = plain.map(lambda row: {"label": -1})
    with pytest.raises(ValueError, match=r"-1.*unlabelled"):
        build_training_dataset(processor, [unlabelled], class_names=[str(i) for i in range(6)])
    with pytest.raises(ValueError, match="No data"):
        build_training_dataset(processor)


def test_bad_captions(processor):
    captions = caption_dataset(3)
    captions = Dataset.from_dict(
        {"image": captions["image"], "caption": ["ok", "  ", None]},
        features=Features({"image": Image(), "caption": Value("string")}),
    )
    with pytest.raises(ValueError, match=r"2 missing or empty captions \(first at row 1\)"):
        build_training_dataset(processor, image_text_datasets=[captions])
