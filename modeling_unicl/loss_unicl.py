"""UniCL loss: bidirectional contrastive learning in image-text-label space.

Yang et al., "Unified Contrastive Learning in Image-Text-Label Space", CVPR 2022, section 3.

A global batch holds B triples (x_i, t_i, y_i). With u_i, v_j the L2-normalised image / text
features, s the logit scale (the multiplier, i.e. already exponentiated) and
P(i) = {k : y_k == y_i} the positives of sample i:

    L_i2t = -1/B sum_i 1/|P(i)| sum_{k in P(i)} log( exp(s u_i.v_k) / sum_j exp(s u_i.v_j) )
    L_t2i = the same with images and texts swapped
    loss  = (L_i2t + L_t2i) / 2

Equivalently, with targets T_ij = [y_i == y_j] normalised row-wise, each direction is a soft
cross-entropy -(T_norm * log_softmax(logits)).sum(1).mean(). When all labels are distinct,
T is the identity and the loss is exactly CLIP's loss (transformers' ``clip_loss``, renamed
``image_text_contrastive_loss`` in transformers 5: the mean of the cross-entropies over the rows
of ``logits_per_text`` and of its transpose), so image-text pairs can be given unique labels and
mixed freely with image-label data.

Memory. By default every rank builds the full global B_global x B_global logits. Each such fp32
matrix is 4 * B_global^2 bytes: 64 MiB for B_global = 4096 (4 GiB for 32768), and the forward
keeps a handful of them alive for backward (logits, the log-softmax of each direction, the
targets), so budget roughly 5 x that per rank (~0.3 GiB at 4096). With ``local_loss=True`` each
rank only computes the rows of its own samples against all global columns, B_local x B_global
per matrix, i.e. 1 / world_size of the above (8 ranks x 512: 8 MiB per matrix).

Distributed. Features are gathered with an autograd-aware all-gather so gradients reach the
rank that produced them; labels are gathered too (no grad), because positives can sit on
other ranks. Per-rank batch sizes may differ: sizes are gathered first, tensors padded to the
largest, gathered and the padding stripped. Everything here imports torch only.
"""

import warnings

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = ["unicl_loss", "clip_loss", "gather_features"]


def clip_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric loss, as in transformers: mean of CE over rows of the logits and of their transpose."""
    targets = torch.arange(logits_per_text.shape[0], device=logits_per_text.device)
    caption_loss = F.cross_entropy(logits_per_text, targets)
    image_loss = F.cross_entropy(logits_per_text.t(), targets)
    return (caption_loss + image_loss) / 2.0


def _is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_features(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All-gather image/text features (with gradient) and labels (without) from every rank.

    Returns ``(all_image, all_text, all_labels)`` concatenated in rank order. Ranks may hold
    different batch sizes. Every rank must call this (it is a collective), and every rank must
    later run backward, since the gradient of the gather is itself a collective.

    Gradient semantics of ``torch.distributed.nn.functional.all_gather``: its backward sums,
    over all ranks, the gradient each rank computed for rank r's slice and hands that sum to
    rank r (reduce-scatter, or all-to-all + sum on gloo). See ``unicl_loss`` for why this plus
    DDP's gradient averaging gives exactly the single-process gradients.
    """
    if not _is_distributed():
        return image_embeds, text_embeds, labels
    from torch.distributed.nn.functional import all_gather as all_gather_with_grad

    world_size = dist.get_world_size()
    device = image_embeds.device
    labels = labels.to(device)  # NCCL needs every tensor of a collective on the GPU

    # Sizes first, so that ranks with fewer samples can pad up to the largest batch.
    local_size = torch.tensor([image_embeds.shape[0]], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(local_size) for _ in range(world_size)]
    dist.all_gather(sizes, local_size)
    sizes = [int(n.item()) for n in sizes]
    max_size = max(sizes)
    pad = max_size - image_embeds.shape[0]

    # F.pad and the slicing below are differentiable: padded rows simply get no gradient.
    # Recent torch (seen on 2.13) flags this public function as deprecated in favour of a private module
    # (torch.distributed._functional_collectives); keep the public one and drop its warning.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_gather is deprecated")
        all_image = all_gather_with_grad(F.pad(image_embeds, (0, 0, 0, pad)))
        all_text = all_gather_with_grad(F.pad(text_embeds, (0, 0, 0, pad)))
    gathered_labels = [torch.empty(max_size, dtype=labels.dtype, device=device) for _ in range(world_size)]
    dist.all_gather(gathered_labels, F.pad(labels, (0, pad)))

    all_image = torch.cat([t[:n] for t, n in zip(all_image, sizes)])
    all_text = torch.cat([t[:n] for t, n in zip(all_text, sizes)])
    all_labels = torch.cat([t[:n] for t, n in zip(gathered_labels, sizes)])
    return all_image, all_text, all_labels


def _validate(image_embeds, text_embeds, labels, logit_scale) -> None:
    if image_embeds.dim() != 2:
        raise ValueError(f"image_embeds must be 2-D (batch, dim), got shape {tuple(image_embeds.shape)}")
    if text_embeds.dim() != 2:
        raise ValueError(f"text_embeds must be 2-D (batch, dim), got shape {tuple(text_embeds.shape)}")
    if image_embeds.shape[0] != text_embeds.shape[0]:
        raise ValueError(
            f"image and text batch sizes differ: image_embeds has {image_embeds.shape[0]} rows, "
            f"text_embeds has {text_embeds.shape[0]}; expected one text per image"
        )
    if image_embeds.shape[1] != text_embeds.shape[1]:
        raise ValueError(
            f"image and text feature dims differ: image_embeds dim {image_embeds.shape[1]}, "
            f"text_embeds dim {text_embeds.shape[1]}; expected a shared embedding space"
        )
    if image_embeds.shape[0] == 0:
        raise ValueError("empty batch: image_embeds and text_embeds have 0 rows, expected at least 1")
    if labels.dim() != 1:
        raise ValueError(f"labels must be 1-D (batch,), got shape {tuple(labels.shape)}")
    if labels.shape[0] != image_embeds.shape[0]:
        raise ValueError(f"labels has length {labels.shape[0]}, expected the batch size {image_embeds.shape[0]}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must have an integer dtype (e.g. torch.int64), got {labels.dtype}")
    if isinstance(logit_scale, torch.Tensor) and logit_scale.numel() != 1:
        raise ValueError(f"logit_scale must be a scalar, got shape {tuple(logit_scale.shape)}")


def _soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # log_softmax, never log(softmax): stays finite for large logit scales.
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def unicl_loss(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: torch.Tensor,
    gather_distributed: bool = False,
    local_loss: bool = False,
) -> torch.Tensor:
    """UniCL bidirectional loss (L_i2t + L_t2i) / 2; equals ``clip_loss`` when labels are distinct.

    Args:
        image_embeds: (B, D) L2-normalised image features (not re-normalised here).
        text_embeds: (B, D) L2-normalised text features, row i pairs with image i.
        labels: (B,) integer labels; samples with equal labels are positives of each other.
        logit_scale: scalar tensor, the multiplier (already ``exp``-ed), may require grad.
        gather_distributed: the caller's decision: if True and torch.distributed is initialised
            with world size > 1, gather features and labels from all ranks (per-rank batch sizes
            may differ); a collective, so every rank must call the loss. False (the default)
            computes the loss of this rank's batch alone and never waits for other ranks.
        local_loss: only with gathering; compute this rank's rows against all global columns
            (B_local x B_global) instead of the full global matrix. With equal per-rank batch
            sizes the mean over ranks equals the global loss; with unequal sizes each rank
            averages its own rows, so the rank mean weights ranks equally, not samples.

    Returns:
        Scalar loss, fp32 for fp32/bf16/fp16 inputs (fp64 for fp64 inputs). Logits and loss are
        computed with autocast disabled, in at least fp32.
    """
    _validate(image_embeds, text_embeds, labels, logit_scale)
    device = image_embeds.device
    labels = labels.to(device)

    # Exactness under DDP (the reason gradients need no rescaling): with W ranks, every rank r
    # computes the same global loss L (or, with local_loss, L_r with L = mean_r L_r). On rank r
    # the all-gather backward sums the W gradients that all ranks computed for rank r's slice:
    # W x dL/dfeat_r. DDP then averages parameter gradients over ranks, dividing by W, so each
    # parameter receives sum_r dL/dfeat_r * dfeat_r/dtheta = dL/dtheta exactly. logit_scale
    # is used locally on every rank, its gradient dL/ds (or dL_r/ds) is averaged to dL/ds.
    distributed = gather_distributed and _is_distributed()
    if distributed:
        all_image, all_text, all_labels = gather_features(image_embeds, text_embeds, labels)
    else:
        all_image, all_text, all_labels = image_embeds, text_embeds, labels
        local_loss = False  # local rows == global rows

    # fp32 logits even under bf16/fp16 autocast: s * u.v reaches ~100, where bf16 keeps only
    # ~3 significant digits. Half inputs are upcast to fp32; fp64 inputs stay fp64.
    dtype = torch.promote_types(torch.promote_types(image_embeds.dtype, text_embeds.dtype), torch.float32)
    with torch.autocast(device_type=device.type, enabled=False):
        scale = torch.as_tensor(logit_scale, device=device).to(dtype).reshape(())
        all_image, all_text = all_image.to(dtype), all_text.to(dtype)

        # T_ij = [y_i == y_j] for this rank's rows against all global columns, normalised per row
        # (each row has at least its own sample as a positive, so the sum is >= 1).
        row_labels = labels if local_loss else all_labels
        targets = (row_labels[:, None] == all_labels[None, :]).to(dtype)
        targets = targets / targets.sum(dim=1, keepdim=True)

        if local_loss:
            logits_per_image = scale * image_embeds.to(dtype) @ all_text.t()
            logits_per_text = scale * text_embeds.to(dtype) @ all_image.t()
        else:
            logits_per_image = scale * all_image @ all_text.t()
            logits_per_text = logits_per_image.t()

        loss_i2t = _soft_cross_entropy(logits_per_image, targets)
        loss_t2i = _soft_cross_entropy(logits_per_text, targets)
        return (loss_i2t + loss_t2i) / 2.0
