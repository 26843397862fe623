"""TrainingDataOptions: every setting of build_training_dataset, validated where it is made; keyword calls still work."""

import pytest
import torch

from modeling_unicl.data import TrainingDataOptions, UniCLSampler, build_training_dataset
from test_data import NAMES, caption_dataset, label_dataset


@pytest.fixture(scope="module")
def processor():
    from conftest import tiny_processor

    return tiny_processor()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("image_column", "", r"image_column must be a column name .* got ''"),
        ("class_names", "dog", r"class_names must be a list of names, got the single string 'dog'"),
        ("share_class_names", "yes", r"share_class_names must be True or False, got 'yes'"),
        ("templates", ["a photo"], r"exactly one '\{\}'.*'a photo'"),
        ("mixing", "zip", r"mixing must be one of \('batch', 'interleave', 'concat'\), got 'zip'"),
        ("label_fraction", 1.5, r"label_fraction must be a number in \[0, 1\], got 1\.5"),
        ("probabilities", [0.5, 0.6], r"probabilities must be non-negative numbers .* summing to 1, got \[0\.5, 0\.6\]"),
        ("probabilities", [-0.5, 1.5], r"probabilities must be non-negative"),
        ("stopping_strategy", "never", r"stopping_strategy must be one of .*got 'never'"),
        ("seed", -1, r"seed must be a non-negative integer, got -1"),
        ("seed", 1.5, r"seed must be a non-negative integer, got 1\.5"),
        ("train", None, r"train must be True or False, got None"),
        ("image_size", 0, r"image size must be a positive int or \(height, width\).* got 0"),
        ("image_size", (32, 32, 3), r"image size must be .* got \(32, 32, 3\)"),
        ("crop_scale", (0.5, 0.1), r"crop scale must be \(low, high\) with 0 < low <= high <= 1, got \(0\.5, 0\.1\)"),
        ("crop_ratio", (0.0, 1.0), r"crop ratio must be \(low, high\) with 0 < low <= high, got \(0\.0, 1\.0\)"),
        ("flip_prob", 2, r"flip_prob must be a number in \[0, 1\], got 2"),
        ("context_length", 0, r"context_length must be a positive number of tokens, got 0"),
        ("strict", 1, r"strict must be True or False, got 1"),
    ],
)
def test_bad_values_name_the_field_and_what_is_expected(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainingDataOptions(**{field: value})


def test_values_are_normalised_and_frozen():
    options = TrainingDataOptions(class_names=["a", "b"], image_size=64, probabilities=[0.25, 0.75], seed=3)
    assert options.class_names == ("a", "b") and options.image_size == (64, 64)
    assert options.probabilities == (0.25, 0.75) and options.templates[0] == "a bad photo of a {}."
    with pytest.raises(AttributeError):
        options.seed = 4


def test_options_and_keyword_overrides_build_the_same_dataset(processor):
    labelled, captions = label_dataset(NAMES), caption_dataset(6)
    options = TrainingDataOptions(mixing="batch", label_fraction=0.25, seed=5, crop_scale=(0.5, 1.0))
    from_options = build_training_dataset(processor, [labelled], [captions], options)
    from_keywords = build_training_dataset(
        processor, [labelled], [captions], mixing="batch", label_fraction=0.25, seed=5, crop_scale=(0.5, 1.0)
    )
    assert from_options.options == from_keywords.options
    for a, b in ((from_options[k], from_keywords[k]) for k in range(2 * len(from_options))):
        assert a["text"] == b["text"] and torch.equal(a["pixel_values"], b["pixel_values"])
    assert list(UniCLSampler(from_options, 4)) == list(UniCLSampler(from_keywords, 4))
    overridden = build_training_dataset(processor, [labelled], [captions], options, seed=6)
    assert overridden.options.seed == 6 and overridden.options.label_fraction == 0.25 and options.seed == 5


def test_unknown_options_are_named(processor):
    with pytest.raises(TypeError, match=r"Unknown data option\(s\) \['shuffle'\].*'mixing'"):
        build_training_dataset(processor, [label_dataset(NAMES)], shuffle=True)
    with pytest.raises(TypeError, match="options must be a TrainingDataOptions"):
        build_training_dataset(processor, [label_dataset(NAMES)], [], {"seed": 1})
    with pytest.raises(ValueError, match=r"probabilities must have one value per source \(2: .*got 3"):
        build_training_dataset(
            processor, [label_dataset(NAMES)], [caption_dataset(2)], mixing="interleave", probabilities=[0.2, 0.3, 0.5]
        )
