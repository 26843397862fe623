"""Caption-to-class linking (`link_captions_to_classes=True`): which captions get a class id, and that the id reaches
the loss, so a linked pair is a positive of its class's prompts."""

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image, Value
from PIL import Image as PILImage

from modeling_unicl import UniCLImageProcessor, UniCLProcessor
from modeling_unicl.data import TrainingDataOptions, UniCLCollator, build_training_dataset
from modeling_unicl.data.linking import CaptionLinker, link_caption, plural_forms
from modeling_unicl.loss_unicl import unicl_loss

ANIMALS = ["cat", "dog", "sheep", "golden retriever", "butterfly", "fox", "polar bear"]


@pytest.mark.parametrize(
    "caption, expected",
    [
        ("a photo of a cat.", "cat"),
        ("two cats side by side", "cat"),  # plural
        ("three butterflies", "butterfly"),  # y -> ies
        ("a pair of foxes on the left", "fox"),  # x -> es
        ("a flock of sheep", "sheep"),  # plural equal to the name
        ("A DOG in the middle", "dog"),  # case
        ("a Golden  Retriever at the top", "golden retriever"),  # multi-word, any spacing and case
        ("two golden retrievers", "golden retriever"),  # plural on the last word
        ("a polar bear on the ice", "polar bear"),  # longest name wins, no second class "bear" inside it
        ("the cat's toy", "cat"),  # an apostrophe ends the word
        ("a cat and another cat", "cat"),  # one class named twice is still one class
    ],
)
def test_a_caption_naming_one_class_gets_its_id(caption, expected):
    assert CaptionLinker(ANIMALS)(caption) == ANIMALS.index(expected)
    assert link_caption(caption, ANIMALS) == ANIMALS.index(expected)


@pytest.mark.parametrize(
    "caption",
    [
        "a category of things",  # "cat" inside a longer word
        "a bobcat and a hotdog",  # ... at the end of a word
        "dogged determination",  # ... at the start
        "a cat to the left of a dog",  # two classes: keeps its own id
        "two dogs next to a golden retriever",  # two classes, one of them multi-word
        "a golden fish",  # the first word of a multi-word name alone is not the name
        "a farm animal on a black background",  # a coarse word is not a class name
        "",
        None,
    ],
)
def test_a_caption_naming_no_class_or_two_keeps_its_own_id(caption):
    assert CaptionLinker(ANIMALS)(caption) is None


def test_plural_forms_and_class_names_with_regex_characters():
    assert plural_forms("Box") == ("box", "boxs", "boxes")
    assert "knives" in plural_forms("knife") and "wolves" in plural_forms("wolf") and "days" in plural_forms("day")
    assert "daies" not in plural_forms("day")
    linker = CaptionLinker(["c++ book", "t-shirt", "dog"])
    assert linker("a C++ book on a desk") == 0 and linker("three t-shirts") == 1 and linker("a c book") is None
    assert CaptionLinker([])("a dog") is None


def test_equal_names_after_casefold_are_one_class():
    linker = CaptionLinker(["Dog", "cat", " dog "])
    assert linker("a dog") == 0 and linker("dogs and more dogs") == 0


# ----------------------------------------------------------------------------------------- through the data
@pytest.fixture(scope="module")
def processor():
    return UniCLProcessor(
        image_processor=UniCLImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32})
    )


def _image(value: int) -> PILImage.Image:
    return PILImage.new("RGB", (32, 32), (value, value, value))


def _datasets():
    labelled = Dataset.from_dict(
        {"image": [_image(10), _image(20), _image(30)], "label": [0, 1, 2]},
        features=Features({"image": Image(), "label": ClassLabel(names=["cat", "dog", "sheep"])}),
    )
    captions = ["two cats on a sofa", "a cat next to a dog", "a category error", "a DOG in the middle", "a zebra"]
    captioned = Dataset.from_dict(
        {"image": [_image(40 + 10 * i) for i in range(len(captions))], "caption": captions},
        features=Features({"image": Image(), "caption": Value("string")}),
    )
    return labelled, captioned


def test_linking_is_off_by_default_and_validated():
    assert TrainingDataOptions().link_captions_to_classes is False
    with pytest.raises(ValueError, match="link_captions_to_classes"):
        TrainingDataOptions(link_captions_to_classes="yes")


@pytest.mark.parametrize("mixing", ["batch", "concat", "interleave"])
def test_linked_ids_replace_only_the_captions_naming_one_class(processor, mixing):
    labelled, captioned = _datasets()
    plain = build_training_dataset(processor, [labelled], [captioned], mixing=mixing, seed=0)
    linked = build_training_dataset(processor, [labelled], [captioned], mixing=mixing, seed=0,
                                    link_captions_to_classes=True)

    def by_uid(dataset):
        return {row["uid"]: row for row in (dataset.hf_dataset[i] for i in range(len(dataset)))}

    plain_rows, linked_rows = by_uid(plain), by_uid(linked)
    # caption uids are 3..7 (after the 3 labelled rows): cat, two classes, none, dog, unknown class
    assert [linked_rows[uid]["label"] for uid in range(3, 8)] == [0, -5, -6, 1, -8]
    assert [plain_rows[uid]["label"] for uid in range(3, 8)] == [-4, -5, -6, -7, -8]
    assert all(linked_rows[uid]["caption"] == plain_rows[uid]["caption"] for uid in range(3, 8))  # text kept
    # a linked caption is still counted (and mixed) as image-text data
    assert (linked.num_label_rows, linked.num_caption_rows) == (plain.num_label_rows, plain.num_caption_rows)


def test_a_linked_caption_reaches_the_loss_as_a_positive_of_its_class(processor):
    labelled, captioned = _datasets()
    dataset = build_training_dataset(processor, [labelled], [captioned], mixing="concat", seed=0,
                                     link_captions_to_classes=True)
    batch = UniCLCollator(processor)([dataset[0], dataset[3], dataset[4]])  # "cat" prompt, "two cats", two classes
    labels = batch["labels"]
    assert labels.tolist() == [0, 0, -5]
    assert "cat" in processor.tokenizer.decode(batch["input_ids"][1]) and "sofa" in processor.tokenizer.decode(
        batch["input_ids"][1]
    )
    # the loss sees the pair as positives: when each cat image lies closer to the other cat text than to its own,
    # equal labels (linked) cost less than distinct ones (plain UniCL: the "two cats" pair is a negative of the prompt)
    image = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    text = torch.tensor([[0.8, 0.6], [1.0, 0.0], [0.0, 1.0]])
    scale = torch.tensor(10.0)
    assert unicl_loss(image, text, labels, scale) < unicl_loss(image, text, torch.tensor([0, -4, -5]), scale)
