"""Tests for modeling_unicl.loss_unicl (UniCL loss, CVPR 2022 section 3).

Tolerances: comparisons against references computed on the same inputs use atol 1e-6; the
formula and permutation checks run on fp64 inputs so that 1e-6 holds for any logit scale in
[1, 100] (fp32 logits near 100 carry ~1e-5 rounding error, which is not what is tested here).
"""

import math
import time

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dist_loss_worker import SCENARIOS, WORLD, TwoTowers, dist_worker
from dist_loss_worker import raw_batch as _raw_batch

from modeling_unicl.loss_unicl import clip_loss, gather_features, unicl_loss

HYP = settings(max_examples=40, deadline=None, database=None)  # no .hypothesis/ writes


def _hf_clip_loss():
    # transformers renamed clip_loss to image_text_contrastive_loss; both compute
    # (CE(logits_per_text, arange) + CE(logits_per_text.T, arange)) / 2.
    try:
        from transformers.models.clip.modeling_clip import clip_loss as hf_clip_loss
    except ImportError:
        from transformers.models.clip.modeling_clip import image_text_contrastive_loss as hf_clip_loss
    return hf_clip_loss


def _batch(b, d, n_labels=None, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    img = F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=-1).to(dtype)
    txt = F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=-1).to(dtype)
    labels = torch.arange(b) if n_labels is None else torch.randint(0, n_labels, (b,), generator=g)
    return img, txt, labels


def _loop_reference(img, txt, labels, s):
    """The paper's formula with plain python loops, in python floats (fp64)."""
    u, v, y = img.double().tolist(), txt.double().tolist(), labels.tolist()
    b = len(y)

    def direction(a, c):
        total = 0.0
        for i in range(b):
            logits = [s * sum(x * z for x, z in zip(a[i], c[j])) for j in range(b)]
            m = max(logits)
            log_denominator = m + math.log(sum(math.exp(z - m) for z in logits))
            positives = [k for k in range(b) if y[k] == y[i]]
            total += sum(logits[k] - log_denominator for k in positives) / len(positives)
        return -total / b

    return (direction(u, v) + direction(v, u)) / 2


@st.composite
def labelled_batches(draw):
    b = draw(st.integers(1, 16))
    d = draw(st.integers(1, 32))
    n_labels = draw(st.integers(1, 4))  # small label range: duplicates are common
    seed = draw(st.integers(0, 2**31 - 1))
    s = draw(st.floats(1.0, 100.0))
    img, txt, labels = _batch(b, d, n_labels, seed, dtype=torch.float64)
    return img, txt, labels, s


# --- equivalence with CLIP and with the formula ------------------------------------------


@pytest.mark.parametrize("b", [1, 2, 7, 32])
@pytest.mark.parametrize("s", [1.0, 1 / 0.07, 100.0])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_equals_transformers_clip_loss_with_distinct_labels(b, s, dtype):
    hf_clip_loss = _hf_clip_loss()
    img, txt, labels = _batch(b, 16, seed=b, dtype=dtype)
    scale = torch.tensor(s, dtype=dtype)
    logits_per_text = scale * txt @ img.t()
    expected = hf_clip_loss(logits_per_text)
    got = unicl_loss(img, txt, labels, scale)
    assert got.dtype == dtype
    # fp64: atol 1e-6. fp32: atol 1e-6 plus rtol 1e-6, as a loss of ~8 is only resolved to
    # ~1e-6 in fp32 (its ulp) and the two sides round the matmul differently.
    rtol = 0 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=rtol)
    torch.testing.assert_close(clip_loss(logits_per_text), expected, atol=1e-6, rtol=0)


@HYP
@given(labelled_batches())
def test_equals_loop_reference(batch):
    img, txt, labels, s = batch  # fp64 inputs, tolerance 1e-6
    got = unicl_loss(img, txt, labels, torch.tensor(s, dtype=torch.float64))
    assert got.dtype == torch.float64
    assert abs(got.item() - _loop_reference(img, txt, labels, s)) < 1e-6


@HYP
@given(labelled_batches())
def test_fp32_close_to_loop_reference(batch):
    img, txt, labels, s = batch
    img32, txt32 = img.float(), txt.float()
    got = unicl_loss(img32, txt32, labels, torch.tensor(s))
    assert got.dtype == torch.float32
    # fp32 logits of magnitude <= s carry ~s * 1e-7 rounding: tolerance 1e-5 * s.
    assert abs(got.item() - _loop_reference(img32, txt32, labels, s)) < 1e-5 * s


@HYP
@given(labelled_batches(), st.randoms(use_true_random=False))
def test_permutation_invariant(batch, rnd):
    img, txt, labels, s = batch
    perm = list(range(len(labels)))
    rnd.shuffle(perm)
    perm = torch.tensor(perm)
    scale = torch.tensor(s, dtype=torch.float64)
    a = unicl_loss(img, txt, labels, scale)
    b = unicl_loss(img[perm], txt[perm], labels[perm], scale)
    assert abs(a.item() - b.item()) < 1e-9


def test_duplicate_labels_change_the_loss():
    img, txt, _ = _batch(6, 8, seed=3)
    s = torch.tensor(10.0)
    distinct = unicl_loss(img, txt, torch.arange(6), s)
    shared = unicl_loss(img, txt, torch.tensor([0, 0, 1, 1, 2, 3]), s)
    assert not torch.allclose(distinct, shared)


# --- edge cases --------------------------------------------------------------------------


def test_single_sample_is_zero():
    img, txt, labels = _batch(1, 8)
    loss = unicl_loss(img, txt, labels, torch.tensor(100.0))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(0.0, abs=1e-7)


def test_single_label_targets_are_uniform():
    b = 5
    img, txt, _ = _batch(b, 8, seed=1)
    labels = torch.full((b,), 7)
    s = torch.tensor(20.0)
    loss = unicl_loss(img, txt, labels, s)
    assert torch.isfinite(loss)
    # Uniform target per row: loss_row = logsumexp_j(l_ij) - mean_j(l_ij), in both directions.
    logits = s * img @ txt.t()
    per_dir = [(l.logsumexp(1) - l.mean(1)).mean() for l in (logits, logits.t())]
    torch.testing.assert_close(loss, sum(per_dir) / 2, atol=1e-6, rtol=0)
    # Identical features: the prediction is uniform too, and CE(uniform, uniform) = log B.
    same = F.normalize(torch.ones(b, 8), dim=-1)
    assert unicl_loss(same, same, labels, s).item() == pytest.approx(math.log(b), abs=1e-6)


def test_large_logit_scale_is_finite():
    img, txt, labels = _batch(8, 4, n_labels=2, seed=2)
    loss = unicl_loss(img, txt, labels, torch.tensor(1e4))
    assert torch.isfinite(loss)


def test_local_loss_without_distributed_is_the_global_loss():
    img, txt, labels = _batch(6, 8, n_labels=3, seed=4)
    s = torch.tensor(10.0)
    torch.testing.assert_close(unicl_loss(img, txt, labels, s, local_loss=True), unicl_loss(img, txt, labels, s))


def test_gather_features_without_distributed_is_identity():
    img, txt, labels = _batch(3, 4)
    out = gather_features(img, txt, labels)
    assert all(a is b for a, b in zip(out, (img, txt, labels)))


# --- gradients and precision ---------------------------------------------------------------


def test_gradients_reach_both_towers_and_temperature():
    torch.manual_seed(0)
    model = TwoTowers()
    x_img, x_txt, labels = _raw_batch()
    unicl_loss(*model(x_img, x_txt)[:2], labels, model.log_scale.exp()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_bf16_autocast_gives_fp32_loss():
    torch.manual_seed(0)
    model = TwoTowers()
    x_img, x_txt, labels = _raw_batch()
    with torch.no_grad():
        img, txt, s = model(x_img, x_txt)
        ref = unicl_loss(img, txt, labels, s)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            img_bf, txt_bf, s_bf = model(x_img, x_txt)
            assert img_bf.dtype == torch.bfloat16  # autocast really is active
            loss_bf = unicl_loss(img_bf, txt_bf, labels, s_bf)
            # Same bf16 inputs, loss inside autocast vs plain fp32 maths: must be (near) exact,
            # which fails if the matmul were left to autocast (bf16 logits err ~1e-2).
            loss_bf_inputs = unicl_loss(img_bf, txt_bf, labels, s)
    assert loss_bf.dtype == torch.float32 and loss_bf_inputs.dtype == torch.float32
    exact = unicl_loss(img_bf.float(), txt_bf.float(), labels, s)
    torch.testing.assert_close(loss_bf_inputs, exact, atol=1e-6, rtol=0)
    # End to end (towers in bf16): within bf16 feature rounding, 2% relative.
    torch.testing.assert_close(loss_bf, ref, rtol=2e-2, atol=0)


# --- validation ----------------------------------------------------------------------------

_I, _T, _L = _batch(4, 3)
_S = torch.tensor(10.0)


@pytest.mark.parametrize(
    "args, match",
    [
        ((_I[0], _T, _L, _S), r"image_embeds must be 2-D .* got shape \(3,\)"),
        ((_I, _T[None], _L, _S), r"text_embeds must be 2-D .* got shape \(1, 4, 3\)"),
        ((_I, _T[:3], _L, _S), r"batch sizes differ: image_embeds has 4 rows, text_embeds has 3"),
        ((_I, _T[:, :2], _L, _S), r"feature dims differ: image_embeds dim 3, text_embeds dim 2"),
        ((_I, _T, _L[None], _S), r"labels must be 1-D .* got shape \(1, 4\)"),
        ((_I, _T, _L[:3], _S), r"labels has length 3, expected the batch size 4"),
        ((_I, _T, _L.float(), _S), r"integer dtype .* got torch.float32"),
        ((_I, _T, _L > 0, _S), r"integer dtype .* got torch.bool"),
        ((_I[:0], _T[:0], _L[:0], _S), r"empty batch"),
        ((_I, _T, _L, torch.ones(2)), r"logit_scale must be a scalar, got shape \(2,\)"),
    ],
)
def test_validation_errors(args, match):
    with pytest.raises(ValueError, match=match):
        unicl_loss(*args)


# --- distributed (2 CPU processes, gloo, DDP) -------------------------------------------------

def test_distributed_matches_single_process(tmp_path):
    import torch.multiprocessing as mp

    ctx = mp.spawn(dist_worker, args=(f"file://{tmp_path}/init", str(tmp_path)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 120  # hang guard; a few seconds normally (children import torch only)
    try:
        while not ctx.join(timeout=1):  # raises if a child failed
            if time.monotonic() > deadline:
                pytest.fail("distributed workers did not finish within 120 s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()

    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for r in results:
        torch.testing.assert_close(r["all_gather_grad"], torch.full((3,), float(WORLD)))

    # Single-process reference on the concatenated global batch.
    torch.manual_seed(0)
    model = TwoTowers()
    x_img, x_txt, labels = _raw_batch()
    img, txt, s = model(x_img, x_txt)
    ref_loss = unicl_loss(img, txt, labels, s)
    ref_loss.backward()
    ref_grads = {n: p.grad for n, p in model.named_parameters()}

    for name, local_loss, rows in SCENARIOS:
        losses = torch.stack([r[name]["loss"] for r in results])
        if not local_loss:  # every rank computes the full global loss
            for loss in losses:
                torch.testing.assert_close(loss, ref_loss.detach(), atol=1e-6, rtol=0)
        else:  # per-rank losses differ, their mean is the global loss
            assert not torch.allclose(losses[0], losses[1])
            torch.testing.assert_close(losses.mean(), ref_loss.detach(), atol=1e-6, rtol=0)
        for r in results:
            for n, g in ref_grads.items():
                torch.testing.assert_close(r[name]["grads"][n], g, atol=1e-6, rtol=0, msg=f"{name} {n}")
