"""The text-feature cache: the pipeline encodes its candidate labels once, and never serves stale features."""

import numpy as np
import pytest
import torch
from conftest import tiny_config, tiny_processor
from PIL import Image
from transformers import pipeline

from modeling_unicl import UniCLModel


class CountTextForwards:
    def __init__(self, model):
        self.calls = 0
        model.text_model.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        self.calls += 1


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    UniCLModel(tiny_config()).save_pretrained(tmp_path)
    tiny_processor().save_pretrained(tmp_path)
    return tmp_path


def _image(seed):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 48, 3), dtype=np.uint8))


def test_pipeline_encodes_candidate_labels_once(saved):
    classifier = pipeline("zero-shot-image-classification", model=str(saved))
    counter = CountTextForwards(classifier.model)
    labels = [f"class {i}" for i in range(50)]
    first = classifier([_image(0), _image(1), _image(2)], candidate_labels=labels, batch_size=1)
    assert counter.calls == 1
    second = classifier([_image(0), _image(1), _image(2)], candidate_labels=labels)
    assert counter.calls == 1  # a second call with the same labels costs no text forward
    assert first == second
    classifier(_image(0), candidate_labels=labels[:10])
    assert counter.calls == 2  # other labels are other tokens


@pytest.mark.parametrize("change", ["optimizer_step", "load_state_dict", "dtype_round_trip"])
def test_changed_weights_invalidate_the_cache(saved, change):
    classifier = pipeline("zero-shot-image-classification", model=str(saved))
    model = classifier.model
    counter = CountTextForwards(model)
    labels = ["cat", "dog", "bird", "cow"]
    before = classifier(_image(0), candidate_labels=labels)
    if change == "optimizer_step":
        optimizer = torch.optim.SGD(model.text_model.parameters(), lr=1.0)
        model.train()
        inputs = tiny_processor()(images=[_image(1), _image(2)], text=["a cat", "a dog"], return_tensors="pt")
        model(**inputs, return_loss=True).loss.backward()
        optimizer.step()
        model.eval()
    elif change == "load_state_dict":
        torch.manual_seed(1)
        model.load_state_dict(UniCLModel(tiny_config()).state_dict())
    else:
        model.to(torch.float64).to(torch.float32)
        with torch.no_grad():
            model.text_projection.weight.mul_(-1.0)
    counter.calls = 0
    after = classifier(_image(0), candidate_labels=labels)
    assert counter.calls == 1  # the pipeline re-encoded its labels with the new weights
    assert [r["score"] for r in before] != pytest.approx([r["score"] for r in after])


def test_cache_matches_uncached_features_and_is_off_with_gradients():
    model = UniCLModel(tiny_config()).eval()
    inputs = tiny_processor()(images=[_image(0)], text=["a cat", "two dogs"], return_tensors="pt")
    with torch.no_grad():
        first = model(**inputs).logits_per_image
        cached = model(**inputs).logits_per_image
    assert model.text_embedding_cache.hits == 1
    torch.testing.assert_close(first, cached, atol=0, rtol=0)
    out = model(**inputs)  # gradients enabled: always a fresh forward
    assert model.text_embedding_cache.hits == 1 and out.text_embeds.requires_grad
    disabled = UniCLModel(tiny_config(text_embedding_cache_size=0)).eval()
    counter = CountTextForwards(disabled)
    with torch.no_grad():
        disabled(**inputs)
        disabled(**inputs)
    assert counter.calls == 2
