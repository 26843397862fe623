"""A saved folder must work where `modeling_unicl` is not installed (what the Hub does after a download)."""

import json
import logging

import numpy as np
import pytest
import torch
from conftest import run_isolated_python, tiny_config, tiny_processor
from PIL import Image
from safetensors.torch import save_file
from transformers import pipeline

from modeling_unicl import UniCLModel


def _images(count, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (40 + 7 * i, 50, 3), dtype=np.uint8)) for i in range(count)]


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unicl-tiny")
    torch.manual_seed(0)
    model = UniCLModel(tiny_config()).eval()
    processor = tiny_processor()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    inputs = processor(images=_images(2), text=["a photo of a cat.", "a dog on the grass"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits_per_image
    save_file({**{k: v.contiguous() for k, v in inputs.items()}, "logits": logits.contiguous()}, folder / "check.safetensors")
    return folder


def test_saved_folder_has_code_and_auto_map(saved_folder):
    config = json.loads((saved_folder / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_unicl.UniCLConfig",
        "AutoModel": "modeling_unicl.UniCLModel",
        "AutoModelForZeroShotImageClassification": "modeling_unicl.UniCLModel",
        "AutoModelForImageClassification": "modeling_unicl.UniCLForImageClassification",
    }
    processor_config = json.loads((saved_folder / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_unicl.UniCLProcessor"
    assert processor_config["image_processor"]["image_processor_type"] == "UniCLImageProcessor"
    for name in ("configuration_unicl.py", "modeling_unicl.py", "loss_unicl.py", "processing_unicl.py"):
        assert (saved_folder / name).is_file(), name


def test_loads_with_trust_remote_code_in_a_clean_process(saved_folder, tmp_path):
    result = run_isolated_python(
        f"""
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoProcessor
        folder = {str(saved_folder)!r}
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        assert type(model).__name__ == "UniCLModel" and "transformers_modules" in type(model).__module__
        assert type(processor).__name__ == "UniCLProcessor"
        assert type(processor.image_processor).__name__ == "UniCLImageProcessor"
        check = load_file(folder + "/check.safetensors")
        with torch.no_grad():
            logits = model(input_ids=check["input_ids"], attention_mask=check["attention_mask"],
                           pixel_values=check["pixel_values"]).logits_per_image
        print("MAXDIFF", (logits - check["logits"]).abs().max().item())
        ids = processor(text=["a photo of a cat.", "a dog on the grass"], return_tensors="pt")["input_ids"]
        assert torch.equal(ids, check["input_ids"]), (ids, check["input_ids"])
        """,
        cwd=tmp_path,
    )
    max_diff = float(result.stdout.split("MAXDIFF")[1].split()[0])
    assert max_diff <= 1e-6


def test_zero_shot_pipeline_in_process(saved_folder):
    classifier = pipeline("zero-shot-image-classification", model=str(saved_folder))
    labels = ["cat", "dog", "bird"]
    single = classifier(_images(1)[0], candidate_labels=labels)
    assert sorted(r["label"] for r in single) == sorted(labels)
    assert sum(r["score"] for r in single) == pytest.approx(1.0, abs=1e-5)
    batched = classifier(_images(3), candidate_labels=labels, hypothesis_template="a photo of a {}.", batch_size=2)
    assert len(batched) == 3 and all(len(r) == 3 for r in batched)
    # the pipeline's scores are the model's own softmax over the prompts
    processor = tiny_processor()
    model = classifier.model
    inputs = processor(images=_images(1), text=[f"a photo of a {x}." for x in labels], return_tensors="pt")
    with torch.no_grad():
        probs = model(**inputs).logits_per_image.softmax(-1)[0]
    scores = {r["label"]: r["score"] for r in classifier(_images(1)[0], candidate_labels=labels,
                                                         hypothesis_template="a photo of a {}.")}
    for label, prob in zip(labels, probs.tolist()):
        assert scores[label] == pytest.approx(prob, abs=1e-5)


def test_pipeline_truncates_a_long_label_with_a_warning_and_refuses_no_labels(saved_folder, caplog):
    """transformers' pipeline tokenizes with padding=True only (it drops tokenizer_kwargs): the folder's own
    `UniCLTokenizer` truncates to the context, keeping the end-of-text token, and says so."""
    classifier = pipeline("zero-shot-image-classification", model=str(saved_folder))
    assert type(classifier.tokenizer).__name__ == "UniCLTokenizer"
    long_label = " ".join(["tabby"] * 120)
    labels = [long_label, "dog"]
    with caplog.at_level(logging.WARNING):
        scores = {r["label"]: r["score"] for r in classifier(_images(1)[0], candidate_labels=labels)}
    assert "1 of 2 text(s) are longer than 77 tokens and were truncated" in caplog.text
    processor = tiny_processor()  # truncates explicitly: the reference for the pipeline's scores
    inputs = processor(images=_images(1), text=[f"This is a photo of {x}." for x in labels], return_tensors="pt")
    assert inputs["input_ids"].shape[1] == 77 and inputs["input_ids"][0, -1].item() == 49407  # end-of-text kept
    with torch.no_grad():
        probs = classifier.model(**inputs).logits_per_image.softmax(-1)[0]
    assert scores[long_label] == pytest.approx(probs[0].item(), abs=1e-5)
    with pytest.raises(ValueError, match="at least one candidate label"):
        classifier(_images(1)[0], candidate_labels=[])


def test_unicl_tokenizer_gives_clip_ids_and_truncates_only_by_default(saved_folder):
    from transformers import AutoTokenizer, CLIPTokenizer

    tokenizer = AutoTokenizer.from_pretrained(saved_folder)
    clip = CLIPTokenizer.from_pretrained(saved_folder)
    assert type(tokenizer).__name__ == "UniCLTokenizer" and isinstance(tokenizer, CLIPTokenizer)
    texts = ["a photo of a cat.", "A Dog on the GRASS!"]
    assert tokenizer(texts)["input_ids"] == clip(texts)["input_ids"]
    long_text = "cat " * 100
    assert len(tokenizer(long_text)["input_ids"]) == 77
    assert len(tokenizer(long_text, truncation=False)["input_ids"]) == 102  # asked for: kept whole
    assert len(tokenizer(long_text, max_length=10, truncation=True)["input_ids"]) == 10


def test_zero_shot_pipeline_in_a_clean_process(saved_folder, tmp_path):
    run_isolated_python(
        f"""
        import numpy as np
        from PIL import Image
        from transformers import pipeline
        classifier = pipeline("zero-shot-image-classification", model={str(saved_folder)!r}, trust_remote_code=True)
        rng = np.random.default_rng(0)
        images = [Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)) for _ in range(3)]
        out = classifier(images[0], candidate_labels=["cat", "dog"])
        assert {{r["label"] for r in out}} == {{"cat", "dog"}}, out
        out = classifier(images, candidate_labels=["cat", "dog", "cow"], hypothesis_template="a sketch of a {{}}.",
                         batch_size=2)
        assert len(out) == 3 and all(len(r) == 3 for r in out), out
        assert type(classifier.tokenizer).__name__ == "UniCLTokenizer", type(classifier.tokenizer)
        out = classifier(images[0], candidate_labels=["cat " * 100, "dog"])  # truncated, not an error
        assert len(out) == 2, out
        try:
            classifier(images[0], candidate_labels=[])
            raise AssertionError("no error for an empty label list")
        except ValueError as error:
            assert "at least one candidate label" in str(error), error
        """,
        cwd=tmp_path,
    )
