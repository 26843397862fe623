"""Every bad input UniCL is tried on, and what it must do: a clear error naming the problem (and the file / row /
step where there is one), or, where the docs promise it, a recorded skip. One row per kind of bad input.

`here` = tested in this file; otherwise the test that covers it (not repeated here).

| #  | area      | bad input                                              | expected                                           | test |
|----|-----------|--------------------------------------------------------|----------------------------------------------------|------|
| 1  | processor | array with 2 channels (H, W, 2)                        | ValueError "2 channels"                            | here |
| 2  | processor | 5-D tensor                                             | ValueError "5 dimensions"                          | here |
| 3  | processor | 3-D array with no channel axis of 1/3/4 (5, 7, 9)      | ValueError "cannot find a channel axis"            | here |
| 4  | processor | image path that does not exist                         | ValueError naming the path, "does not exist"       | here |
| 5  | processor | a directory as image path                              | ValueError "is a directory"                        | here |
| 6  | processor | bytes that are not an image                            | ValueError "not a readable image"                  | here |
| 7  | processor | truncated JPEG file (path and open PIL image)          | ValueError naming the file, "truncated"            | here |
| 8  | processor | empty array (0 x W), object dtype, int, None           | ValueError naming the problem                      | here |
| 9  | processor | neither images nor text                                | ValueError                                         | test_processing::test_processor_without_inputs_is_a_clear_error |
| 10 | processor | folder without tokenizer.json                          | OSError naming tokenizer.json (was: silent 2-token vocab) | here |
| 11 | processor | truncated tokenizer.json                               | OSError naming tokenizer.json                      | here |
| 12 | processor | processor folder that does not exist                   | OSError naming the folder                          | here |
| 13 | model     | truncated / empty model.safetensors                    | OSError naming model.safetensors                   | here |
| 14 | model     | config.json: projection_dim "abc", logit_scale_max str | ValueError naming config.json and the field        | here |
| 15 | model     | config.json with unknown fields                        | loads; warning naming config.json and the fields   | here |
| 16 | model     | config.json not JSON / missing                         | OSError naming config.json                         | here |
| 17 | model     | folder of another architecture (a saved BertModel)     | ValueError naming config.json and 'bert' (was: random UniCL weights, no error) | here |
| 18 | model     | pixel_values with 4 channels / wrong rank              | ValueError                                         | test_modeling::test_wrong_channel_count_is_a_clear_error, test_wrong_pixel_rank_is_a_clear_error |
| 19 | model     | 2 images, 3 texts; labels of wrong length; >77 tokens  | ValueError                                         | test_modeling::test_mismatched_batch_sizes_for_the_loss, test_labels_of_the_wrong_length, test_too_long_text_is_a_clear_error |
| 20 | model     | bad config values (projection_dim 0, unknown tower...) | ValueError                                         | test_modeling::test_bad_config_values |
| 21 | model     | class embeddings of the wrong shape                    | ValueError                                         | test_classification::test_wrong_class_embedding_shape |
| 22 | loss      | wrong ranks, batch/dim mismatch, float labels, empty   | ValueError                                         | test_loss::test_validation_errors |
| 23 | loss      | NaN image features                                     | NaN loss (the trainer catches it, #33)             | here |
| 24 | data      | training image file truncated (JPEG, PNG) / missing    | skipped, substituted, logged with row and file     | test_reliability::test_corrupt_rows_are_skipped_deterministically_and_recorded |
| 25 | data      | same, strict=True                                      | ValueError naming row and file                     | test_reliability::test_strict_raises_with_the_row |
| 26 | data      | every image of a type unreadable                       | RuntimeError "the data is broken"                  | here |
| 27 | data      | missing column, empty dataset, labels out of range, -1 | ValueError naming the column / range               | test_data::test_missing_columns_name_the_column_and_list_the_available_ones, test_empty_dataset_and_out_of_range_labels |
| 28 | data      | empty / missing captions; non-ClassLabel labels        | ValueError                                         | test_data::test_bad_captions, test_label_column_needs_classlabel_or_class_names |
| 29 | data      | streaming (Iterable) dataset; non-image column         | ValueError "map-style" / "not images"              | here |
| 30 | data      | collator: partial labels                               | ValueError                                         | test_data::test_collator_rejects_partial_labels |
| 31 | data      | collator: empty text, no text, empty batch             | ValueError                                         | here |
| 32 | data      | bad mixing / probabilities / label_fraction            | ValueError                                         | test_data::test_interleave_and_concat_modes |
| 33 | trainer   | NaN loss at step 3                                     | NonFiniteLossError "... at step 3"; or skipped     | test_reliability::test_nonfinite_loss_stops_training_naming_the_step, test_nonfinite_loss_is_skipped_when_asked |
| 34 | trainer   | zero-shot dataset without the label column             | ValueError at construction                         | test_trainer::test_zero_shot_dataset_is_checked_at_construction |
| 35 | converter | unsafe pickle, garbage file, unknown / missing keys    | ConversionError naming the file / key              | test_convert::test_unsafe_pickle_fails_clearly, test_not_a_checkpoint, test_unknown_key_is_listed, test_missing_key_is_listed |
| 36 | converter | truncated checkpoint (zip cut in half), missing file   | ConversionError naming the file                    | here |
| 37 | scripts   | missing dataset paths, bad preset / mixing             | exit 2, one line                                   | test_scripts::test_train_bad_inputs_exit_2_and_write_nothing |
| 38 | scripts   | --model_name_or_path: another model type, not JSON     | UsageError naming the folder / file                | here (and test_scripts::test_train_rejects_a_folder_that_is_not_unicl) |
| 39 | scripts   | --model_name_or_path with truncated weights            | OSError naming model.safetensors                   | here |
"""

import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image, Value
from PIL import Image as PILImage

from conftest import REPO_ROOT, tiny_config, tiny_processor
from modeling_unicl import UniCLModel, UniCLProcessor
from modeling_unicl.data import UniCLCollator, build_training_dataset, validate_image_text_dataset
from modeling_unicl.processing_unicl import UnreadableImageError, to_rgb


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    torch.manual_seed(0)
    UniCLModel(tiny_config()).save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return folder


@pytest.fixture
def folder_copy(saved_folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(saved_folder, copy)
    return copy


def _jpeg(size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(np.random.default_rng(0).integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(
        buffer, format="JPEG"
    )
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------ processor
@pytest.mark.parametrize(
    "value, message",
    [
        (np.zeros((8, 8, 2), np.uint8), r"shape \(8, 8, 2\).*2 channels"),  # 1
        (torch.zeros(1, 2, 3, 8, 8), r"5 dimensions"),  # 2
        (np.zeros((5, 7, 9), np.uint8), r"cannot find a channel axis"),  # 3
        ("/no/such/image.png", r"'/no/such/image.png' does not exist"),  # 4
        (Path("/no/such/image.png"), r"does not exist"),  # 4
        (b"GIF89a but not really", r"not a readable image"),  # 6
        (np.zeros((0, 5), np.uint8), r"empty"),  # 8
        (np.zeros((5, 5), dtype=object), r"dtype object"),  # 8
        (3, r"Cannot read an image from a int"),  # 8
        ([None], r"Missing image"),  # 8
        ([np.zeros((4, 4, 3), np.uint8), np.zeros((8, 8, 2), np.uint8)], r"2 channels"),  # 1, in a list
    ],
)
def test_processor_rejects_unreadable_images(processor, value, message):
    with pytest.raises(ValueError, match=message):
        processor(images=value, return_tensors="pt")
    with pytest.raises(UnreadableImageError, match=message):  # the image processor alone too (pipeline path)
        processor.image_processor(value, return_tensors="pt")


def test_processor_rejects_directories_and_truncated_files(processor, tmp_path):
    with pytest.raises(ValueError, match="is a directory"):  # 5
        processor(images=str(tmp_path))
    path = tmp_path / "cut.jpg"
    data = _jpeg()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.jpg.*truncated"):  # 7
        processor(images=path)
    with pytest.raises(ValueError, match=r"cut\.jpg.*truncated"):  # 7: an opened (lazy) PIL image
        to_rgb(PILImage.open(path))
    with pytest.raises(ValueError, match=r"image bytes.*truncated"):
        processor(images=data[: len(data) // 2])


def test_processor_folder_missing_or_broken_tokenizer(folder_copy, tmp_path):
    tokenizer_file = folder_copy / "tokenizer.json"
    text = tokenizer_file.read_text()
    tokenizer_file.write_text(text[: len(text) // 2])
    with pytest.raises(OSError, match=r"tokenizer\.json is not valid JSON"):  # 11
        UniCLProcessor.from_pretrained(folder_copy)
    tokenizer_file.unlink()
    with pytest.raises(OSError, match=r"tokenizer\.json is missing"):  # 10
        UniCLProcessor.from_pretrained(folder_copy)
    with pytest.raises(OSError, match=r"'/no/such/processor' does not exist"):  # 12
        UniCLProcessor.from_pretrained("/no/such/processor")


# ---------------------------------------------------------------------------------------------------- model
@pytest.mark.parametrize("keep", [0.5, 5 / 1e9, 0.0])
def test_truncated_weights_name_the_file(folder_copy, keep):
    weights = folder_copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(OSError, match=r"model\.safetensors.*truncated or corrupt"):  # 13
        UniCLModel.from_pretrained(folder_copy)


@pytest.mark.parametrize(
    "field, value", [("projection_dim", "abc"), ("logit_scale_max", "big"), ("vision_config", 5)]
)
def test_config_with_wrong_types_names_file_and_field(folder_copy, field, value):
    config_file = folder_copy / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, field: value}))
    with pytest.raises(ValueError, match=rf"config\.json: invalid UniCL config.*{field}"):  # 14
        UniCLModel.from_pretrained(folder_copy)


def test_config_with_unknown_fields_warns(folder_copy, caplog):
    config_file = folder_copy / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "projection_dimm": 7}))
    with caplog.at_level("WARNING", logger="modeling_unicl.modeling_unicl"):
        model = UniCLModel.from_pretrained(folder_copy)  # 15
    assert model.config.projection_dim == 24
    assert "config.json: unknown fields ['projection_dimm']" in caplog.text


def test_config_not_json_or_missing(folder_copy):
    config_file = folder_copy / "config.json"
    config_file.write_text('{"model_type": "unicl", ')
    with pytest.raises(OSError, match=r"config\.json is not valid JSON"):  # 16
        UniCLModel.from_pretrained(folder_copy)
    config_file.unlink()
    with pytest.raises(OSError, match=r"config\.json does not exist"):  # 16 (was: an unrelated size-mismatch error)
        UniCLModel.from_pretrained(folder_copy)


def test_folder_of_another_architecture(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)).save_pretrained(
        tmp_path
    )
    with pytest.raises(ValueError, match=r"config\.json describes a 'bert' model, not a UniCL model"):  # 17
        UniCLModel.from_pretrained(tmp_path)


# ----------------------------------------------------------------------------------------------------- loss
def test_nan_features_give_a_nan_loss_not_an_exception():
    from modeling_unicl import unicl_loss

    features = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    loss = unicl_loss(features * float("nan"), features, torch.tensor([0, 1, 1, -1]), torch.tensor(10.0))  # 23
    assert torch.isnan(loss)  # the trainer turns this into NonFiniteLossError (test_reliability)


# ----------------------------------------------------------------------------------------------------- data
def test_every_image_of_a_type_unreadable(processor):
    broken = Dataset.from_dict(
        {"image": [{"bytes": b"junk", "path": f"img{i}.jpg"} for i in range(3)], "label": [0, 1, 0]},
        features=Features({"image": Image(), "label": ClassLabel(names=["a", "b"])}),
    )
    data = build_training_dataset(processor, [broken])
    with pytest.raises(RuntimeError, match=r"3 unreadable images in a row from row 0 .*the data is broken.*img0\.jpg"):
        data[0]  # 26


def test_streaming_dataset_and_non_image_column():
    streaming = Dataset.from_dict({"image": ["a.png"], "caption": ["x"]}).to_iterable_dataset()
    with pytest.raises(ValueError, match="map-style"):  # 29
        validate_image_text_dataset(streaming)
    numbers = Dataset.from_dict({"image": [1.5], "caption": ["x"]}, features=Features(
        {"image": Value("float32"), "caption": Value("string")}))
    with pytest.raises(ValueError, match="not images"):  # 29
        validate_image_text_dataset(numbers)


def test_collator_rejects_missing_text_and_empty_batches(processor):
    collator = UniCLCollator(processor)
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"Samples \[1\] of the batch have no text"):  # 31
        collator([{"image": image, "text": "a", "labels": 0}, {"image": image, "text": "  ", "labels": 1}])
    with pytest.raises(ValueError, match="needs 'text'"):
        collator([{"image": image, "labels": 0}])
    with pytest.raises(ValueError, match="empty batch"):
        collator([])
    with pytest.raises(ValueError, match="2 channels"):  # a bad image in a sample: the same conversion error
        collator([{"image": np.zeros((8, 8, 2), np.uint8), "text": "a"}])


# ------------------------------------------------------------------------------------------------ converter
def test_converter_truncated_and_missing_checkpoint(tmp_path):
    from modeling_unicl.conversion.convert import ConversionError, load_original_checkpoint

    path = tmp_path / "ckpt.pth"
    torch.save({"model": {"logit_scale": torch.ones(())}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConversionError, match=r"ckpt\.pth: not a readable torch checkpoint"):  # 36
        load_original_checkpoint(path)
    with pytest.raises(ConversionError, match=r"gone\.pth: no such file"):  # 36
        load_original_checkpoint(tmp_path / "gone.pth")


# -------------------------------------------------------------------------------------------------- scripts
@pytest.fixture
def scripts_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "scripts"))
    yield
    sys.modules.pop("train", None)


def test_scripts_reject_bad_model_folders(folder_copy, tmp_path, scripts_on_path):
    from cli_utils import UsageError, check_unicl_folder
    from train import ModelArguments, load_model

    config_file = folder_copy / "config.json"
    original = config_file.read_text()
    config_file.write_text(json.dumps({**json.loads(original), "model_type": "clip"}))
    with pytest.raises(UsageError, match=r"is a 'clip' model, not a UniCL model"):  # 38
        check_unicl_folder(str(folder_copy), "--model_name_or_path")
    config_file.write_text(original[:10])
    with pytest.raises(UsageError, match=r"config\.json is not valid JSON"):  # 38
        check_unicl_folder(str(folder_copy), "--model_name_or_path")
    config_file.write_text(original)
    weights = folder_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(OSError, match=r"model\.safetensors.*truncated or corrupt"):  # 39
        load_model(ModelArguments(model_name_or_path=str(folder_copy)))
