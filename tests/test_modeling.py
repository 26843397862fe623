import math

import pytest
import torch
from conftest import TINY_CLIP_TEXT, TINY_SWIN, tiny_config
from transformers import AutoConfig, AutoModel, AutoModelForZeroShotImageClassification
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.clip.modeling_clip import image_text_contrastive_loss as hf_clip_loss

from modeling_unicl import UniCLConfig, UniCLModel, unicl_loss

TINY_VISION = {
    "swin": TINY_SWIN,
    "focalnet": dict(
        model_type="focalnet", image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], hidden_sizes=[32, 32],
        focal_levels=[2, 2], focal_windows=[3, 3], drop_path_rate=0.0,
    ),
    "resnet": dict(model_type="resnet", embedding_size=8, hidden_sizes=[16, 24], depths=[1, 1], layer_type="basic"),
    "vit": dict(
        model_type="vit", image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64,
    ),
}
TINY_TEXT = {
    "clip_text_model": TINY_CLIP_TEXT,
    "bert": dict(
        model_type="bert", vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64,
    ),
    "roberta": dict(
        model_type="roberta", vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64,
    ),
}


def _text_batch(batch=3, length=9, vocab=49408, eos=49407):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, min(vocab, 49405), (batch, length), generator=generator)
    ids[:, 0] = 49406 if vocab == 49408 else 0
    ids[:, -1] = eos if vocab == 49408 else 2
    return ids, torch.ones_like(ids)


def test_default_config_is_the_papers_swin_t():
    config = UniCLConfig()
    vision, text = config.vision_config, config.text_config
    assert vision.model_type == "swin"
    assert (vision.embed_dim, list(vision.depths), list(vision.num_heads), vision.window_size) == (
        96, [2, 2, 6, 2], [3, 6, 12, 24], 7,
    )
    assert vision.image_size == 224 and vision.patch_size == 4 and not vision.use_absolute_embeddings
    assert text.model_type == "clip_text_model"
    assert (text.vocab_size, text.max_position_embeddings, text.hidden_size) == (49408, 77, 512)
    assert (text.num_attention_heads, text.num_hidden_layers, text.hidden_act) == (8, 12, "quick_gelu")
    assert text.layer_norm_eps == 1e-12 and text.eos_token_id == 49407
    assert config.projection_dim == 512


def test_partial_text_dict_keeps_unicl_defaults():
    config = UniCLConfig(text_config={"hidden_size": 64})
    assert config.text_config.hidden_size == 64
    assert config.text_config.layer_norm_eps == 1e-12  # not CLIPTextConfig's 1e-5
    assert config.text_config.eos_token_id == 49407


def test_config_round_trip(tmp_path):
    config = tiny_config()
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded, UniCLConfig)
    assert reloaded.to_dict()["vision_config"] == config.to_dict()["vision_config"]
    assert reloaded.text_config.layer_norm_eps == 1e-12


@pytest.mark.parametrize("vision_type", sorted(TINY_VISION))
@pytest.mark.parametrize("text_type", sorted(TINY_TEXT))
def test_every_tower_family_builds_and_runs(vision_type, text_type):
    config = tiny_config(vision=dict(TINY_VISION[vision_type]), text=dict(TINY_TEXT[text_type]))
    model = UniCLModel(config).eval()
    vocab = 49408 if text_type == "clip_text_model" else 99
    input_ids, attention_mask = _text_batch(vocab=vocab)
    pixel_values = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask, return_loss=True)
    assert out.logits_per_image.shape == (3, 3)
    assert out.image_embeds.shape == (3, 24) and out.text_embeds.shape == (3, 24)
    torch.testing.assert_close(out.image_embeds.norm(dim=-1), torch.ones(3))
    assert torch.isfinite(out.loss)


def test_vit_and_bert_pool_first_token_without_tanh_pooler():
    config = tiny_config(vision=dict(TINY_VISION["vit"]), text=dict(TINY_TEXT["bert"]))
    model = UniCLModel(config).eval()
    assert model.vision_model.pooler is None and model.text_model.pooler is None
    pixel_values = torch.randn(2, 3, 32, 32)
    input_ids, attention_mask = _text_batch(batch=2, vocab=99)
    with torch.no_grad():
        image = model.get_image_features(pixel_values)
        text = model.get_text_features(input_ids, attention_mask)
        cls = model.vision_model(pixel_values).last_hidden_state[:, 0]
        first = model.text_model(input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
    torch.testing.assert_close(image.pooler_output, model.visual_projection(cls))
    torch.testing.assert_close(text.pooler_output, model.text_projection(first))


def test_swin_pools_final_layernorm_then_mean():
    model = UniCLModel(tiny_config()).eval()
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = model.vision_model(pixel_values).last_hidden_state  # after the final LayerNorm
        features = model.get_image_features(pixel_values)
    assert isinstance(features, BaseModelOutputWithPooling)
    torch.testing.assert_close(features.pooler_output, model.visual_projection(tokens.mean(dim=1)))


def test_clip_text_pools_at_first_eos_whatever_the_padding():
    model = UniCLModel(tiny_config()).eval()
    ids = torch.tensor([[49406, 320, 1125, 49407]])
    padded_eos = torch.tensor([[49406, 320, 1125, 49407, 49407, 49407, 49407]])
    padded_zero = torch.tensor([[49406, 320, 1125, 49407, 0, 0, 0]])
    with torch.no_grad():
        reference = model.get_text_features(ids).pooler_output
        for padded in (padded_eos, padded_zero):
            mask = (torch.arange(padded.shape[1]) <= 3).long()[None]
            for attention_mask in (None, mask):
                out = model.get_text_features(padded, attention_mask=attention_mask).pooler_output
                torch.testing.assert_close(out, reference, atol=1e-6, rtol=1e-5)
        # and not at the last position: changing a token before the eos changes the feature
        changed = model.get_text_features(torch.tensor([[49406, 321, 1125, 49407]])).pooler_output
    assert not torch.allclose(changed, reference)


def _padded_texts(lengths, total, eos, pad, first=49406, vocab=49405):
    """Rows of `lengths` tokens (start, words, eos) right-padded with `pad` to `total`, and their attention mask."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.full((len(lengths), total), pad)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(1, vocab, (length,), generator=generator)
        ids[row, 0], ids[row, length - 1] = first, eos
    mask = (torch.arange(total)[None] < torch.tensor(lengths)[:, None]).long()
    return ids, mask


class TextLengths:
    """Records the sequence length every text-tower forward runs on."""

    def __init__(self, model):
        self.lengths = []
        model.text_model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        self.lengths.append((args[0] if args else kwargs["input_ids"]).shape[1])


@pytest.mark.parametrize(
    "text_type, eos, pad",
    [("clip_text_model", 49407, 49407), ("clip_text_model", 49407, 0), ("bert", 2, 0), ("roberta", 2, 1)],
)
def test_trimmed_text_padding_changes_no_feature_loss_or_gradient(text_type, eos, pad):
    vocab = 49408 if text_type == "clip_text_model" else 99
    ids, mask = _padded_texts([4, 7, 5], total=20, eos=eos, pad=pad, first=49406 if vocab == 49408 else 0,
                              vocab=min(vocab, 49405))
    pixel_values = torch.randn(3, 3, 32, 32)
    labels = torch.tensor([0, 1, 0])
    runs = {}
    for trim in (False, True):
        torch.manual_seed(0)
        no_dropout = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0) if text_type != "clip_text_model" else {}
        model = UniCLModel(tiny_config(text={**TINY_TEXT[text_type], **no_dropout}, trim_text_padding=trim))
        lengths = TextLengths(model)
        out = model(input_ids=ids, pixel_values=pixel_values, attention_mask=mask, labels=labels)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        runs[trim] = (out, grads, lengths.lengths)
    (plain, plain_grads, plain_lengths), (trimmed, trimmed_grads, trimmed_lengths) = runs[False], runs[True]
    assert plain_lengths == [20] and trimmed_lengths == [7]  # the longest row's eos / last unmasked token
    torch.testing.assert_close(trimmed.text_embeds, plain.text_embeds, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(trimmed.loss, plain.loss, atol=1e-6, rtol=1e-5)
    assert plain_grads.keys() == trimmed_grads.keys()
    for name in plain_grads:
        scale = plain_grads[name].abs().max().item()  # float rounding of a sum over different kernels' blocks
        torch.testing.assert_close(trimmed_grads[name], plain_grads[name], atol=max(1e-5 * scale, 1e-6), rtol=1e-4)


def test_clip_text_is_trimmed_at_the_last_eos_even_without_an_attention_mask():
    model = UniCLModel(tiny_config()).eval()
    lengths = TextLengths(model)
    ids, _ = _padded_texts([3, 6], total=77, eos=49407, pad=49407)
    with torch.no_grad():
        model(input_ids=ids, pixel_values=torch.randn(2, 3, 32, 32))
    assert lengths.lengths == [6]


def test_bert_is_not_trimmed_where_a_row_still_sees_the_column():
    model = UniCLModel(tiny_config(text=dict(TINY_TEXT["bert"]))).eval()
    lengths = TextLengths(model)
    ids, mask = _padded_texts([3, 6], total=10, eos=2, pad=0, first=0, vocab=99)
    with torch.no_grad():
        model(input_ids=ids, pixel_values=torch.randn(2, 3, 32, 32))  # no mask: every column is seen
        model(input_ids=ids, pixel_values=torch.randn(2, 3, 32, 32), attention_mask=mask)
    assert lengths.lengths == [10, 6]


def test_legacy_clip_eos_id_2_trims_at_the_largest_id():
    config = tiny_config(text={**TINY_CLIP_TEXT, "eos_token_id": 2})
    model = UniCLModel(config).eval()
    lengths = TextLengths(model)
    ids = torch.tensor([[49406, 320, 49407, 0, 0], [49406, 320, 1125, 49407, 0]])
    with torch.no_grad():
        trimmed = model(input_ids=ids, pixel_values=torch.randn(2, 3, 32, 32)).text_embeds
        full = nn_normalize(model.get_text_features(ids).pooler_output)
    assert lengths.lengths == [4, 5]
    torch.testing.assert_close(trimmed, full, atol=1e-6, rtol=1e-5)


def test_trim_text_padding_must_be_a_bool():
    from huggingface_hub.errors import StrictDataclassFieldValidationError  # transformers' typed config fields

    with pytest.raises(StrictDataclassFieldValidationError, match="trim_text_padding"):
        UniCLConfig(trim_text_padding="yes")


def nn_normalize(x):
    return torch.nn.functional.normalize(x, dim=-1)


def test_forward_logits_and_losses():
    model = UniCLModel(tiny_config()).eval()
    input_ids, attention_mask = _text_batch(batch=4)
    pixel_values = torch.randn(4, 3, 32, 32)
    out = model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask, return_loss=True)
    scale = model.logit_scale.exp()
    torch.testing.assert_close(out.logits_per_image, scale * out.image_embeds @ out.text_embeds.t())
    torch.testing.assert_close(out.logits_per_text, out.logits_per_image.t())
    torch.testing.assert_close(out.loss, hf_clip_loss(out.logits_per_text))
    labels = torch.tensor([5, 5, -1, -2])
    with_labels = model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask, labels=labels)
    expected = unicl_loss(with_labels.image_embeds, with_labels.text_embeds, labels, with_labels.logit_scale)
    torch.testing.assert_close(with_labels.loss, expected)
    assert not torch.allclose(with_labels.loss, out.loss)  # shared labels change the objective
    assert model(input_ids=input_ids, pixel_values=pixel_values).loss is None


def test_zero_shot_shapes_allow_different_batch_sizes():
    model = UniCLModel(tiny_config()).eval()
    input_ids, _ = _text_batch(batch=5)
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values=torch.randn(2, 3, 32, 32))
    assert out.logits_per_image.shape == (2, 5)


def test_temperature_is_clamped():
    model = UniCLModel(tiny_config())
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1000.0))
    assert model.get_logit_scale().item() == pytest.approx(100.0)
    model.get_logit_scale().backward()
    assert model.logit_scale.grad.item() == 0.0  # no push further past the bound
    with torch.no_grad():
        model.logit_scale.fill_(-3.0)
    assert model.get_logit_scale().item() == pytest.approx(math.exp(-3.0))  # no lower bound, as the original
    custom = UniCLModel(tiny_config(logit_scale_max=200.0))
    with torch.no_grad():
        custom.logit_scale.fill_(math.log(150.0))
    assert custom.get_logit_scale().item() == pytest.approx(150.0, rel=1e-5)


def test_gradients_reach_both_towers_and_temperature():
    model = UniCLModel(tiny_config()).train()
    input_ids, attention_mask = _text_batch(batch=4)
    out = model(input_ids=input_ids, pixel_values=torch.randn(4, 3, 32, 32), attention_mask=attention_mask,
                labels=torch.tensor([0, 0, 1, 2]))
    out.loss.backward()
    assert model.vision_model.embeddings.patch_embeddings.projection.weight.grad.abs().sum() > 0
    assert model.text_model.embeddings.token_embedding.weight.grad.abs().sum() > 0
    assert model.logit_scale.grad.abs() > 0


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = UniCLModel(tiny_config()).train()
    input_ids, attention_mask = _text_batch(batch=4)
    batch = dict(input_ids=input_ids, pixel_values=torch.randn(4, 3, 32, 32), attention_mask=attention_mask,
                 return_loss=True)
    model(**batch).loss.backward()
    reference = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    for tower in (model.vision_model, model.text_model):
        layers = [m for m in tower.modules() if isinstance(m, GradientCheckpointingLayer)]
        assert layers and all(layer.gradient_checkpointing for layer in layers)
    assert model.text_model.encoder.gradient_checkpointing
    model(**batch).loss.backward()
    for name, grad in reference.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, atol=1e-6, rtol=1e-5)


def test_sdpa_is_used_by_the_text_tower():
    model = UniCLModel(tiny_config())
    assert model.text_model.config._attn_implementation == "sdpa"


def test_save_and_load_round_trip(tmp_path):
    model = UniCLModel(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    for code_file in ("configuration_unicl.py", "modeling_unicl.py", "loss_unicl.py"):
        assert (tmp_path / code_file).is_file()
    config = AutoConfig.from_pretrained(tmp_path)
    assert config.auto_map["AutoModel"] == "modeling_unicl.UniCLModel"
    assert config.auto_map["AutoModelForZeroShotImageClassification"] == "modeling_unicl.UniCLModel"
    input_ids, _ = _text_batch(batch=2)
    pixel_values = torch.randn(2, 3, 32, 32)
    for auto in (AutoModel, AutoModelForZeroShotImageClassification):
        reloaded = auto.from_pretrained(tmp_path).eval()
        assert isinstance(reloaded, UniCLModel)
        with torch.no_grad():
            torch.testing.assert_close(
                reloaded(input_ids=input_ids, pixel_values=pixel_values).logits_per_image,
                model(input_ids=input_ids, pixel_values=pixel_values).logits_per_image,
            )


# ----------------------------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def model():
    return UniCLModel(tiny_config()).eval()


def test_wrong_channel_count_is_a_clear_error(model):
    with pytest.raises(ValueError, match=r"4 channels.*expects 3"):
        model.get_image_features(torch.randn(1, 4, 32, 32))


def test_wrong_pixel_rank_is_a_clear_error(model):
    with pytest.raises(ValueError, match="4-D tensor"):
        model.get_image_features(torch.randn(3, 32, 32))


def test_mismatched_batch_sizes_for_the_loss(model):
    input_ids, _ = _text_batch(batch=3)
    with pytest.raises(ValueError, match="2 images and 3 texts"):
        model(input_ids=input_ids, pixel_values=torch.randn(2, 3, 32, 32), return_loss=True)


def test_labels_of_the_wrong_length(model):
    input_ids, _ = _text_batch(batch=3)
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        model(input_ids=input_ids, pixel_values=torch.randn(3, 3, 32, 32), labels=torch.tensor([0, 1]))


def test_too_long_text_is_a_clear_error(model):
    with pytest.raises(ValueError, match="at most 77"):
        model.get_text_features(torch.ones(1, 78, dtype=torch.long))


def test_missing_modality_is_a_clear_error(model):
    with pytest.raises(ValueError, match="both input_ids and pixel_values"):
        model(pixel_values=torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(vision_config={"model_type": "bert"}), "vision_config has model_type='bert'"),
        (dict(text_config={"model_type": "swin"}), "text_config has model_type='swin'"),
        (dict(vision_config={"model_type": "not-a-model"}), "not-a-model"),
        (dict(projection_dim=0), "projection_dim must be a positive integer, got 0"),
        (dict(projection_dim=-3), "projection_dim must be a positive integer, got -3"),
        (dict(logit_scale_max=0.5), "logit_scale_max must be > 1"),
    ],
)
def test_bad_config_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UniCLConfig(**kwargs)
