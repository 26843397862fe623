"""ONNX export of both towers (modeling_unicl/export/): parity with PyTorch <= 1e-4 at several batch sizes and text
lengths (embedded test images, class prompts, converted original checkpoints), the int8 image graph, and the ONNX Runtime
stand-in in the evaluation code."""

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, SHARED_FIXTURES, tiny_config, tiny_processor

pytest.importorskip("onnxruntime", reason="the export extra (onnx, onnxruntime) is not installed")

from modeling_unicl import UniCLModel, ZeroShotClassifier  # noqa: E402
from modeling_unicl.evaluation import extract_image_embeddings  # noqa: E402
from modeling_unicl.export import (  # noqa: E402
    OnnxUniCLModel,
    check_export_folder,
    export_onnx,
    graph_file,
    load_model_for_inference,
    read_export_config,
)
from modeling_unicl.prompts import IMAGENET_TEMPLATES  # noqa: E402

TOL = 1e-4  # the parity bound: max |diff| of the normalised fp32 embeddings
ANIMALS = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return UniCLModel(tiny_config()).eval()


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx") / "tiny"
    export_onnx(tiny_model, tiny_processor(), folder, int8=True)
    return folder


@pytest.fixture(scope="module")
def onnx_fp32(exported):
    return OnnxUniCLModel.from_exported(exported)


@pytest.fixture(scope="module")
def test_images():
    """120 images of the embedded test pool (real animal silhouettes, 12 per class), as the evaluation sees them."""
    from PIL import Image

    from modeling_unicl.data.embedded import load_animal_silhouettes

    arrays, labels, _ = load_animal_silhouettes(split="test")
    rows = range(0, len(labels), len(labels) // 120)[:120]
    return [Image.fromarray(arrays[row]).convert("RGB") for row in rows], [int(labels[row]) for row in rows]


def _normalised(features):
    return torch.nn.functional.normalize(features.pooler_output.float(), dim=-1)


def _max_diff(a, b) -> float:
    return (a - b).abs().max().item()


def test_the_folder_holds_both_graphs_int8_the_scale_and_the_processor(exported, tiny_model):
    names = {p.name for p in exported.iterdir()}
    assert {"image_encoder.onnx", "text_encoder.onnx", "image_encoder.int8.onnx", "export_config.json",
            "config.json", "tokenizer.json", "processor_config.json"} <= names
    assert "text_encoder.int8.onnx" not in names  # the text tower stays fp32 (folder.INT8_TOWERS)
    config = read_export_config(exported)
    assert config.logit_scale == pytest.approx(tiny_model.get_logit_scale().item())
    assert config.int8 and config.image_size == 32 and config.context_length == 77
    assert max(config.parity_max_abs_diff.values()) <= TOL
    assert json.loads((exported / "config.json").read_text())["model_type"] == "unicl"
    import onnx

    for tower, axes in (("image", ["batch"]), ("text", ["batch", "sequence"])):
        graph = onnx.load(str(exported / graph_file(tower))).graph
        assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim if d.dim_param] == axes
        assert graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("batch", [1, 2, 7])
def test_image_parity_at_several_batch_sizes(tiny_model, onnx_fp32, test_images, batch):
    pixel_values = tiny_processor().image_processor(test_images[0][:batch], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = _normalised(tiny_model.get_image_features(pixel_values=pixel_values))
    got = onnx_fp32.get_image_features(pixel_values).pooler_output
    assert got.shape == expected.shape and _max_diff(got, expected) <= TOL


class _CountingSession:
    """Wraps an ONNX Runtime session and records the batch size and the thread of every run, and how many ran at
    once (`pause_s` holds every run that long, so that concurrent runs overlap even on a tiny model)."""

    def __init__(self, session, pause_s: float = 0.0):
        self.session, self.pause_s = session, pause_s
        self.batches, self.threads, self.running, self.most_at_once = [], set(), 0, 0
        self.lock = threading.Lock()

    def run(self, outputs, feed):
        with self.lock:
            self.batches.append(len(feed["pixel_values"]))
            self.threads.add(threading.get_ident())
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.pause_s)
        try:
            return self.session.run(outputs, feed)
        finally:
            with self.lock:
                self.running -= 1


def _counting(model, pause_s: float = 0.0):
    model.image_session = _CountingSession(model.image_session, pause_s)
    if model.single_thread_image_session is not None:
        model.single_thread_image_session = _CountingSession(model.single_thread_image_session, pause_s)
    return model


@pytest.mark.parametrize("int8", [False, True])
def test_images_run_in_chunks_and_equal_one_run_per_chunk(exported, test_images, int8):
    pixel_values = tiny_processor().image_processor(test_images[0][:11], return_tensors="pt")["pixel_values"]
    chunked = _counting(OnnxUniCLModel.from_exported(exported, int8=int8, image_chunk_size=4,
                                                     concurrent_image_runs=False))
    whole = _counting(OnnxUniCLModel.from_exported(exported, int8=int8, image_chunk_size=None,
                                                   concurrent_image_runs=False))
    got = chunked.get_image_features(pixel_values).pooler_output
    assert chunked.image_session.batches == [4, 4, 3]
    one_run = whole.get_image_features(pixel_values).pooler_output
    assert whole.image_session.batches == [11]
    if int8:  # activations are quantized per run: each chunk as if run alone
        alone = torch.cat([whole.get_image_features(pixel_values[i : i + 4]).pooler_output for i in (0, 4, 8)])
        assert torch.equal(got, alone) and _max_diff(got, one_run) < 0.05
    else:
        assert _max_diff(got, one_run) <= 1e-6
    with pytest.raises(ValueError, match="no image"):
        chunked.get_image_features(pixel_values[:0])


@pytest.mark.parametrize("int8", [False, True])
def test_by_default_images_run_one_per_run_concurrently_on_one_thread_each(exported, test_images, int8):
    """The default: a batch with at least `threads` images runs one image per run, `threads` runs at once on the
    one-thread session, in batch order; in int8 an image's embedding is the one it gets alone (activations are
    quantized per image), in fp32 that of one run of the whole batch."""
    pixel_values = tiny_processor().image_processor(test_images[0][:7], return_tensors="pt")["pixel_values"]
    model = _counting(OnnxUniCLModel.from_exported(exported, int8=int8, threads=2), pause_s=0.02)
    got = model.get_image_features(pixel_values).pooler_output
    concurrent = model.single_thread_image_session
    assert concurrent.batches == [1] * 7 and model.image_session.batches == []
    assert concurrent.most_at_once == 2 and threading.get_ident() not in concurrent.threads
    alone = torch.cat([model.get_image_features(pixel_values[i : i + 1]).pooler_output for i in range(7)])
    assert model.image_session.batches == [1] * 7  # one image: fewer runs than threads, on the two-thread session
    whole = OnnxUniCLModel.from_exported(exported, int8=int8, image_chunk_size=None)
    if int8:
        assert torch.equal(got, alone)
    else:
        assert _max_diff(got, alone) <= 1e-6 and _max_diff(got, whole.get_image_features(pixel_values).pooler_output) <= 1e-6


def test_one_thread_or_no_concurrency_runs_on_the_all_threads_session_only(exported, test_images):
    pixel_values = tiny_processor().image_processor(test_images[0][:3], return_tensors="pt")["pixel_values"]
    for model in (OnnxUniCLModel.from_exported(exported, threads=1),
                  OnnxUniCLModel.from_exported(exported, threads=2, concurrent_image_runs=False)):
        assert model.single_thread_image_session is None
        _counting(model).get_image_features(pixel_values)
        assert model.image_session.batches == [1, 1, 1] and model.image_session.threads == {threading.get_ident()}


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_a_bad_thread_count_is_refused(exported, bad):
    with pytest.raises(ValueError, match="threads must be a positive int"):
        OnnxUniCLModel.from_exported(exported, threads=bad)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_a_bad_image_chunk_size_is_refused(exported, bad):
    with pytest.raises(ValueError, match="image_chunk_size must be a positive int"):
        OnnxUniCLModel.from_exported(exported, image_chunk_size=bad)


@pytest.mark.parametrize("padding", ["longest", "max_length", "none"])
def test_text_parity_at_several_lengths_and_paddings(tiny_model, onnx_fp32, padding):
    """The text graph pools every row at its own end-of-text token, whatever the batch's padding."""
    tokenizer = tiny_processor().tokenizer
    prompts = [template.format(name) for name in ANIMALS[:3] for template in IMAGENET_TEMPLATES[::9]]
    batches = [prompts[:1], prompts[:8], prompts] if padding != "none" else [[p] for p in prompts[:6]]
    for texts in batches:
        kwargs = {"padding": padding, "max_length": 77} if padding != "none" else {}
        tokens = tokenizer(texts, truncation=True, return_tensors="pt", **kwargs)
        with torch.no_grad():
            expected = _normalised(tiny_model.get_text_features(tokens["input_ids"], tokens["attention_mask"]))
        got = onnx_fp32.get_text_features(tokens["input_ids"], tokens["attention_mask"]).pooler_output
        assert _max_diff(got, expected) <= TOL, texts


def test_the_text_graph_runs_without_an_attention_mask(tiny_model, onnx_fp32):
    tokens = tiny_processor().tokenizer(["a photo of a zebra."], return_tensors="pt")
    with torch.no_grad():
        expected = _normalised(tiny_model.get_text_features(tokens["input_ids"]))
    assert _max_diff(onnx_fp32.get_text_features(tokens["input_ids"]).pooler_output, expected) <= TOL


def test_zero_shot_classifier_gives_pytorchs_predictions(tiny_model, onnx_fp32, test_images):
    processor = tiny_processor()
    torch_classifier = ZeroShotClassifier(tiny_model, processor, ANIMALS, IMAGENET_TEMPLATES[:4])
    onnx_classifier = ZeroShotClassifier(onnx_fp32, processor, ANIMALS, IMAGENET_TEMPLATES[:4])
    assert _max_diff(onnx_classifier.class_embeddings, torch_classifier.class_embeddings) <= TOL
    pixel_values = torch_classifier.pixel_values(test_images[0])
    expected, got = torch_classifier.logits(pixel_values), onnx_classifier.logits(pixel_values)
    scale = tiny_model.get_logit_scale().item()
    assert _max_diff(got, expected) <= 2 * TOL * scale  # two embeddings, each within TOL, times the scale
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


def test_linear_probe_features_equal_pytorchs(tiny_model, onnx_fp32, test_images):
    from datasets import Dataset, Image as ImageFeature

    dataset = Dataset.from_dict({"image": test_images[0][:10]}).cast_column("image", ImageFeature())
    processor = tiny_processor()
    expected = extract_image_embeddings(tiny_model, processor, dataset, batch_size=4)
    got = extract_image_embeddings(onnx_fp32, processor, dataset, batch_size=4)
    assert _max_diff(got, expected) <= TOL


def test_int8_image_graph_runs_and_agrees_with_fp32(exported, onnx_fp32, test_images):
    int8 = OnnxUniCLModel.from_exported(exported, int8=True)
    processor = tiny_processor()
    fp32_classifier = ZeroShotClassifier(onnx_fp32, processor, ANIMALS, IMAGENET_TEMPLATES[:4])
    int8_classifier = ZeroShotClassifier(int8, processor, ANIMALS, IMAGENET_TEMPLATES[:4])
    pixel_values = fp32_classifier.pixel_values(test_images[0])
    cosine = (onnx_fp32.get_image_features(pixel_values).pooler_output
              * int8.get_image_features(pixel_values).pooler_output).sum(-1)
    assert cosine.min() > 0.99
    agreement = (fp32_classifier.predict(pixel_values) == int8_classifier.predict(pixel_values)).float().mean()
    assert agreement >= 0.9  # a random tiny model has near-ties; the README's figures are on trained / real-size ones
    assert read_export_config(exported).int8_options["min_image_cosine_to_fp32_at_export"] > 0.99
    tokens = processor.tokenizer(["a photo of a cat."], return_tensors="pt")  # the text tower is the fp32 graph
    assert torch.equal(int8.get_text_features(**tokens).pooler_output, onnx_fp32.get_text_features(**tokens).pooler_output)


def test_int8_says_how_many_layers_it_quantized_and_warns_when_none(exported, tmp_path, caplog):
    assert read_export_config(exported).int8_options["quantized_layers"] > 0  # a Swin: its linear layers
    from modeling_unicl.presets import MODEL_PRESETS, processor_for_config

    config = MODEL_PRESETS["animals-small"].config()  # the main job's ResNet: convolutions + the fp32 projection
    torch.manual_seed(0)
    with caplog.at_level("WARNING"):
        written = export_onnx(UniCLModel(config).eval(), processor_for_config(config), tmp_path / "resnet", int8=True)
    assert written.int8_options["quantized_layers"] == 0
    assert "has no layer that dynamic quantization covers" in caplog.text


def test_the_stand_in_speaks_the_evaluation_codes_language(onnx_fp32, tiny_model):
    assert onnx_fp32.eval() is onnx_fp32 and onnx_fp32.train(False) is onnx_fp32 and not onnx_fp32.training
    assert next(onnx_fp32.parameters()).device.type == "cpu" and onnx_fp32.device.type == "cpu"
    assert onnx_fp32.config.projection_dim == tiny_model.config.projection_dim
    assert onnx_fp32.get_logit_scale().item() == pytest.approx(tiny_model.get_logit_scale().item())
    with pytest.raises(ValueError, match="inference only"):
        onnx_fp32.train()
    with pytest.raises(ValueError, match=r"pixel_values must have shape \(batch, 3, 32, 32\)"):
        onnx_fp32.get_image_features(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="at most 77"):
        onnx_fp32.get_text_features(torch.zeros(1, 78, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask shape"):
        onnx_fp32.get_text_features(torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 4, dtype=torch.long))


def test_folders_that_are_not_complete_exports_are_refused(exported, tmp_path, tiny_model):
    with pytest.raises(ValueError, match="export_config.json"):
        OnnxUniCLModel.from_exported(tmp_path)
    with pytest.raises(OSError, match="does not exist"):
        check_export_folder(tmp_path / "missing")
    partial = tmp_path / "no_int8"
    partial.mkdir()
    for path in exported.iterdir():
        if ".int8." not in path.name:
            (partial / path.name).write_bytes(path.read_bytes())
    check_export_folder(partial)
    with pytest.raises(ValueError, match="image_encoder.int8.onnx.*without int8 graphs"):
        load_model_for_inference(partial, "onnxruntime", int8=True)
    (partial / "text_encoder.onnx").unlink()
    with pytest.raises(ValueError, match="no text_encoder.onnx"):
        check_export_folder(partial)
    with pytest.raises(ValueError, match="onnxruntime backend only"):
        load_model_for_inference(exported, "pytorch", int8=True)
    with pytest.raises(ValueError, match="backend must be one of"):
        load_model_for_inference(exported, "tensorrt")


def test_export_checks_its_arguments_before_writing(tiny_model, tmp_path):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        export_onnx(tiny_model, tiny_processor(), occupied)
    with pytest.raises(ValueError, match="opset must be"):
        export_onnx(tiny_model, tiny_processor(), tmp_path / "a", opset=11)
    half = UniCLModel(tiny_config()).half()
    with pytest.raises(ValueError, match="fp32 model"):
        export_onnx(half, tiny_processor(), tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["occupied"]
    assert [p.name for p in occupied.iterdir()] == ["keep.txt"]


def test_export_leaves_the_model_in_its_mode(tmp_path):
    """torch.onnx.export restores the mode of the module it is given on every submodule: the tower wrappers are in
    eval mode, so the model is not left training (Swin-T's drop path would then change every later output)."""
    torch.manual_seed(0)
    model = UniCLModel(tiny_config(vision={**tiny_config().vision_config.to_dict(), "drop_path_rate": 0.5})).eval()
    export_onnx(model, tiny_processor(), tmp_path / "out")
    assert not any(module.training for module in model.modules())


def test_importing_the_package_imports_no_onnx():
    code = ("import sys, modeling_unicl, modeling_unicl.evaluation, modeling_unicl.export\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxruntime'))\n"
            "assert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------- converted original checkpoints
@pytest.mark.skipif(not SHARED_FIXTURES.is_dir(), reason=f"fixtures not found at {SHARED_FIXTURES}")
@pytest.mark.parametrize("name", ["tiny", "focal_tiny"])
def test_converted_original_checkpoint_exports_within_tolerance_of_the_original(name, tmp_path):
    """Original checkpoint -> converter -> ONNX: the graphs reproduce the original implementation's normalised
    embeddings (fixtures' expected.safetensors) within 1e-4."""
    from safetensors.torch import load_file

    from modeling_unicl.conversion import convert_unicl_checkpoint

    fixture = SHARED_FIXTURES / name
    converted = convert_unicl_checkpoint(fixture / "checkpoint.pth", fixture / "config.yaml", tmp_path / "hf")
    from modeling_unicl import UniCLProcessor

    export_onnx(load_model_for_inference(converted), UniCLProcessor.from_pretrained(converted), tmp_path / "onnx")
    onnx_model = OnnxUniCLModel.from_exported(tmp_path / "onnx")
    inputs, expected = load_file(fixture / "inputs.safetensors"), load_file(fixture / "expected.safetensors")
    image = onnx_model.get_image_features(inputs["pixel_values"]).pooler_output
    assert _max_diff(image, expected["image_embeds"]) <= TOL
    for suffix, ids in (("", inputs["input_ids"]), ("_eot_padded", inputs["input_ids_eot_padded"])):
        text = onnx_model.get_text_features(ids, inputs["attention_mask"]).pooler_output
        assert _max_diff(text, expected["text_embeds" + suffix]) <= TOL
        single = np.concatenate([onnx_model.get_text_features(ids[i : i + 1]).pooler_output.numpy() for i in range(4)])
        assert np.abs(single - expected["text_embeds" + suffix].numpy()).max() <= TOL  # batch 1, no mask
    assert onnx_model.get_logit_scale().item() == pytest.approx(expected["logit_scale_exp"].item(), rel=1e-6)
