"""The MGLL loss (soft multi-label CLIP + point-wise BCE + smooth KL across granularities) and CLIP.

Kept apart from the training loop, as in open_clip, so it can be tested and benchmarked on bare
tensors. Notation: a batch of N images, K text granularities, `s^k_ij = scale * <img_i, txt^k_j>`.

Targets: each granularity from its own items
    Granularity k describes an image by a set of items I^k_i: the label set at `disease` / `category`,
    and at the free-text levels the items that text carries (a finding with its side and size in a
    `description`, a finding with its severity in an `explanation`). Two images are alike at k as far
    as their item sets overlap, so the target strength is the Jaccard index
        T^k_ij = |I^k_i & I^k_j| / |I^k_i | I^k_j|,
    raised to 1 when i == j or when their texts at k are identical (text_ids equal and >= 0) -- the
    fallback for rows without items, e.g. two "no finding" reports. Both i and j must have a text at k
    (text_mask), else T^k_ij = 0. An image with "effusion" and one with "effusion, atelectasis" are
    half-positives at `disease`; the same two images are strangers at `description` if one effusion
    is "small, left" and the other "large, right". Items are passed per granularity as a multi-hot
    [K, N, M] tensor (nonzero = the item is present). A dataset that carries only labels passes them as
    [N, L]: they are the items of the granularities flagged in `label_levels` (default: all), and the
    other granularities fall back on identical text. Soft CLIP targets are T^k row-normalised (W^k).
    kind="clip" uses T = identity.

Instance weight (optional, default 0: the paper's targets)
    With instance_weight a in [0, 1] the targets become (1 - a) * T^k + a * identity: the sample's
    own text keeps its full target while every other positive is scaled by 1 - a. Why: with Jaccard
    targets, two studies that differ only in one attribute (the same effusion, one severity apart) are
    half-positives, so soft CLIP never asks the image tower to tell them apart; CLIP's instance
    discrimination does (a = 1 is CLIP's target, restricted to the samples present at k).

Masking
    A sample without a text at granularity k (text_mask[k, i] False) is removed from granularity k
    entirely -- as a row and as a column, in both directions and in the BCE -- so granularity k is
    computed exactly as if the batch were the samples that have it. Rows and columns are masked by
    weights / a finite fill, never by -inf, so no term can produce NaN (a row with everything masked
    contributes an exact 0 with a live graph). Masks are multiplications and `where`s, never Python
    branches on tensor values, so the loss compiles as one graph (torch.compile fullgraph).

Terms (each computed per granularity, then averaged over the granularities with >= 1 sample)
    soft_clip: per valid row, the cross-entropy H(W^k_i., softmax_j s^k_i.) for image->text rows and
        for text->image rows; the sum of both directions is divided by 2 * |V_k| (V_k: samples having
        granularity k).
    point: binary cross-entropy of sigmoid(s^k_ij + b) against T^k_ij, mean over all |V_k|^2 valid
        pairs (one direction: the pair set is the same both ways). b is a learnable logit bias, as in
        SigLIP, scalar or one per granularity, best initialised at the log-odds of the targets' mean
        (`logit_bias_prior`): without it, with ~30% positive pairs, pushing every similarity to one
        constant lowers the BCE without telling any pair apart, and the embeddings collapse.
    skl: P^k_i = softmax_j s^k_i. over the columns C_i that have every granularity row i has (for two
        granularities: the columns both have), M_i = mean of P^k_i over the K_i granularities row i
        has; sKL_i = sum_k KL(P^k_i || M_i), from log-softmax values, so it is finite and in
        [0, K_i log K_i], and exactly 0 when the granularities agree, whatever texts are missing.
        Mean over rows with K_i >= 2 (a row with one granularity has nothing to be consistent with).
    loss = alpha_clip * soft_clip + alpha_point * point + alpha_kl * skl

Logits are computed in float32 (float64 stays float64) with autocast off: at scale 100 a bf16 matmul
moves logits by ~0.4. In a single process the text->image logits are the transposed image->text ones
(one matmul); under torch.distributed they are a second local-rows x global-columns product.

Multi-GPU (gather=True under torch.distributed): each rank's features are gathered with gradient
and its items / ids / masks without, and the loss is local rows x global columns in both directions.
Every sum is divided by the GLOBAL count and multiplied by the world size, so the per-rank values
average to the full-batch loss and -- since DDP averages gradients -- the trainer gets exactly the
full-batch gradient. The value on one rank is therefore a per-rank estimate; log
`distributed.all_reduce_mean(loss)` to see the full-batch number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mgll_train import distributed

LOSS_KINDS = ("mgll", "clip")
# Finite stand-in for -inf on masked logits: exp() of it is exactly 0, and unlike -inf it never turns
# 0 * log(0) or an all-masked row into NaN.
_MASKED = torch.finfo(torch.float32).min


@dataclass(frozen=True)
class _Pairing:
    """What decides the targets: masks, items and text ids of local rows and all columns."""

    valid_rows: torch.Tensor  # [K, n] bool
    valid_cols: torch.Tensor  # [K, G] bool
    items_rows: torch.Tensor  # [K, n, M] float, 0/1
    items_cols: torch.Tensor  # [K, G, M] float, 0/1
    ids_rows: torch.Tensor  # [K, n] long
    ids_cols: torch.Tensor  # [K, G] long
    row_offset: int  # global index of local row 0


@dataclass(frozen=True)
class _Batch:
    """The local rows and the (possibly gathered) columns of one loss call."""

    img_rows: torch.Tensor  # [n, D]
    txt_rows: torch.Tensor  # [K, n, D]
    img_cols: torch.Tensor  # [G, D]
    txt_cols: torch.Tensor  # [K, G, D]
    pairing: _Pairing
    world: int  # factor that makes the per-rank values average to the full-batch loss
    cols_are_rows: bool  # single process: text->image logits are the transposed image->text ones


# Granularities whose items are the image's label set when a dataset carries no per-level items.
LABEL_LEVELS = ("category", "disease")


def label_levels(granularities: Sequence[str]) -> list[bool]:
    """Which of the granularities take the label set as their items (`MGLLLoss(label_levels=...)`)."""
    return [g in LABEL_LEVELS for g in granularities]


def pair_targets(
    items: torch.Tensor | None,
    text_ids: torch.Tensor | None,
    text_mask: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    levels: Sequence[bool] | None = None,
    instance_weight: float = 0.0,
) -> torch.Tensor:
    """The target strengths T^k_ij [K, N, N] in [0, 1] of a single-process batch (module docstring)."""
    pairing = _single_process_pairing(items, text_ids, text_mask, levels)
    return _targets(pairing, soft=True, dtype=dtype, instance_weight=instance_weight)


def logit_bias_prior(
    items: torch.Tensor | None,
    text_ids: torch.Tensor | None,
    text_mask: torch.Tensor,
    levels: Sequence[bool] | None = None,
    instance_weight: float = 0.0,
) -> torch.Tensor:
    """Log-odds of the mean target over valid pairs, per granularity [K]: the point-wise term's bias
    at which sigmoid(0 + b) already predicts the batch's share of positives (SigLIP-style start)."""
    targets = pair_targets(items, text_ids, text_mask, levels=levels, instance_weight=instance_weight)
    mask = text_mask.bool()
    pairs = (mask[:, :, None] & mask[:, None, :]).float()
    mean = (targets * pairs).sum(dim=(1, 2)) / pairs.sum(dim=(1, 2)).clamp(min=1.0)
    p = mean.clamp(1e-4, 1 - 1e-4)
    return torch.log(p) - torch.log1p(-p)


class MGLLLoss(nn.Module):
    """MGLL (kind="mgll") or CLIP (kind="clip") loss over K text granularities.

    Example:
        loss_fn = MGLLLoss()
        out = loss_fn(img, txt, mask, items, ids, model.clamped_logit_scale(), model.logit_bias)
        out["loss"].backward()
    """

    def __init__(
        self,
        alpha_clip: float = 0.5,
        alpha_point: float = 1.0,
        alpha_kl: float = 1.0,
        kind: str = "mgll",
        gather: bool = True,
        label_levels: Sequence[bool] | None = None,
        instance_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if kind not in LOSS_KINDS:
            raise ValueError(f"loss kind must be one of {', '.join(LOSS_KINDS)}, got {kind!r}")
        if not 0.0 <= instance_weight <= 1.0:
            raise ValueError(f"instance_weight must be between 0 and 1, got {instance_weight}")
        self.alpha_clip = alpha_clip
        self.alpha_point = alpha_point
        self.alpha_kl = alpha_kl
        self.kind = kind
        self.gather = gather
        self.label_levels = None if label_levels is None else [bool(v) for v in label_levels]
        self.instance_weight = float(instance_weight)

    def bias_prior(
        self, items: torch.Tensor | None, text_ids: torch.Tensor | None, text_mask: torch.Tensor
    ) -> torch.Tensor:
        """`logit_bias_prior` of a batch as this loss reads it: where to start a learnable logit bias."""
        return logit_bias_prior(items, text_ids, text_mask, self.label_levels, self.instance_weight)

    def extra_repr(self) -> str:
        if self.kind == "clip":
            return f"kind=clip, gather={self.gather}"
        return (
            f"kind=mgll, alpha_clip={self.alpha_clip}, alpha_point={self.alpha_point}, "
            f"alpha_kl={self.alpha_kl}, instance_weight={self.instance_weight}, gather={self.gather}"
        )

    def forward(
        self,
        image_emb: torch.Tensor,
        text_emb: torch.Tensor,
        text_mask: torch.Tensor,
        items: torch.Tensor | None,
        text_ids: torch.Tensor | None,
        logit_scale: torch.Tensor,
        logit_bias: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """image_emb [N,D], text_emb [K,N,D] (both L2-normalised), text_mask bool [K,N], items multi-hot
        [K,N,M] per granularity or [N,M] shared (None: no items), text_ids long [K,N] (>= 0 present, -1
        missing, equal for equal texts ON EVERY RANK -- mgll_train.data.text_id, not Python's salted
        hash(); None: no text identity), logit_scale a scalar tensor already exp'ed and clamped,
        logit_bias a scalar or [K] tensor for the point-wise term (None: no bias).
        Returns a dict of scalar tensors."""
        _check_inputs(image_emb, text_emb, text_mask, items, text_ids, logit_scale, logit_bias, self.label_levels)
        with torch.autocast(device_type=image_emb.device.type, enabled=False):
            batch = _collect(image_emb, text_emb, text_mask, items, text_ids, self.gather, self.label_levels)
            scale = torch.as_tensor(logit_scale, device=image_emb.device).to(batch.img_rows.dtype)
            if self.kind == "clip":
                clip = _clip_terms(batch, scale, None, soft=False)["soft_clip"]
                return {"loss": clip, "clip": clip}
            bias = None if logit_bias is None else logit_bias.to(batch.img_rows.dtype)
            terms = _clip_terms(batch, scale, bias, soft=True, instance_weight=self.instance_weight)
        loss = (
            self.alpha_clip * terms["soft_clip"] + self.alpha_point * terms["point"] + self.alpha_kl * terms["skl"]
        )
        return {"loss": loss, **terms}


def _check_inputs(image_emb, text_emb, text_mask, items, text_ids, logit_scale, logit_bias, levels) -> None:
    """Shape errors here name the argument; deep inside an einsum they would not."""
    if image_emb.dim() != 2:
        raise ValueError(f"image_emb must be [N, D], got shape {tuple(image_emb.shape)}")
    n, d = image_emb.shape
    if text_emb.dim() != 3 or text_emb.shape[1:] != (n, d):
        raise ValueError(f"text_emb must be [K, {n}, {d}] to match image_emb, got {tuple(text_emb.shape)}")
    k = text_emb.shape[0]
    if k == 0:
        raise ValueError("text_emb has no granularities (K = 0)")
    if tuple(text_mask.shape) != (k, n):
        raise ValueError(f"text_mask must be [{k}, {n}], got {tuple(text_mask.shape)}")
    if items is not None and not (
        (items.dim() == 2 and items.shape[0] == n) or (items.dim() == 3 and tuple(items.shape[:2]) == (k, n))
    ):
        raise ValueError(f"items must be [{k}, {n}, M] or [{n}, M], got {tuple(items.shape)}")
    if text_ids is not None and tuple(text_ids.shape) != (k, n):
        raise ValueError(f"text_ids must be [{k}, {n}], got {tuple(text_ids.shape)}")
    if torch.is_tensor(logit_scale) and logit_scale.numel() != 1:
        raise ValueError(f"logit_scale must be a scalar, got shape {tuple(logit_scale.shape)}")
    if logit_bias is not None and logit_bias.numel() not in (1, k):
        raise ValueError(f"logit_bias must be a scalar or [{k}], got shape {tuple(logit_bias.shape)}")
    if levels is not None and len(levels) != k:
        raise ValueError(f"label_levels has {len(levels)} entries for {k} granularities")


def _level_items(
    items: torch.Tensor | None, num_k: int, n: int, device: torch.device, levels: Sequence[bool] | None
) -> torch.Tensor:
    """Items as float 0/1 [K, n, M]; labels [n, M] go to the label levels, None becomes an empty set."""
    if items is None:
        return torch.zeros((num_k, n, 0), device=device)
    present = (items > 0).float()
    if items.dim() == 3:
        return present
    shared = present.unsqueeze(0).expand(num_k, -1, -1)
    if levels is None:
        return shared
    return shared * torch.tensor(levels, dtype=present.dtype, device=device)[:, None, None]


def _ids(text_ids: torch.Tensor | None, num_k: int, n: int, device: torch.device) -> torch.Tensor:
    if text_ids is None:
        return torch.full((num_k, n), -1, dtype=torch.long, device=device)
    return text_ids.long()


def _single_process_pairing(items, text_ids, text_mask, levels) -> _Pairing:
    num_k, n = text_mask.shape
    device = text_mask.device
    level_items = _level_items(items, num_k, n, device, levels)
    ids = _ids(text_ids, num_k, n, device)
    mask = text_mask.bool()
    return _Pairing(mask, mask, level_items, level_items, ids, ids, row_offset=0)


def _collect(image_emb, text_emb, text_mask, items, text_ids, gather: bool, levels) -> _Batch:
    """Local rows plus every rank's columns (one feature gather with grad, one metadata gather)."""
    num_k, n, _ = text_emb.shape
    compute_dtype = torch.promote_types(torch.promote_types(image_emb.dtype, text_emb.dtype), torch.float32)
    img = image_emb.to(compute_dtype)
    txt = text_emb.to(compute_dtype)
    local = _single_process_pairing(items, text_ids, text_mask.to(image_emb.device), levels)
    if not (gather and distributed.is_distributed()):
        return _Batch(img, txt, img, txt, local, world=1, cols_are_rows=True)

    sizes = distributed.gathered_sizes(n, image_emb.device)
    features = torch.cat([img.unsqueeze(1), txt.transpose(0, 1)], dim=1)  # [n, K+1, D]
    all_features, offset = distributed.gather_rows(features, with_grad=True, sizes=sizes)
    num_items = local.items_rows.shape[2]
    flat_items = local.items_rows.transpose(0, 1).reshape(n, num_k * num_items).long()
    meta = torch.cat([flat_items, local.ids_rows.t(), local.valid_rows.t().long()], dim=1)  # [n, K*M + 2K]
    all_meta, _ = distributed.gather_rows(meta, with_grad=False, sizes=sizes)
    width = num_k * num_items
    return _Batch(
        img_rows=img,
        txt_rows=txt,
        img_cols=all_features[:, 0],
        txt_cols=all_features[:, 1:].transpose(0, 1),
        pairing=_Pairing(
            valid_rows=local.valid_rows,
            valid_cols=all_meta[:, width + num_k :].t().bool(),
            items_rows=local.items_rows,
            items_cols=all_meta[:, :width].reshape(-1, num_k, num_items).transpose(0, 1).float(),
            ids_rows=local.ids_rows,
            ids_cols=all_meta[:, width : width + num_k].t(),
            row_offset=offset,
        ),
        world=len(sizes),
        cols_are_rows=False,
    )


def _targets(p: _Pairing, soft: bool, dtype: torch.dtype, instance_weight: float = 0.0) -> torch.Tensor:
    """T^k_ij [K, n, G] for local rows i and global columns j: the module docstring's rule (soft, mixed
    with the identity by instance_weight) or the identity (CLIP); 0 wherever i or j lacks granularity k."""
    n, g = p.valid_rows.shape[1], p.valid_cols.shape[1]
    device = p.valid_rows.device
    rows = torch.arange(n, device=device) + p.row_offset
    same_sample = (rows[:, None] == torch.arange(g, device=device)[None, :]).to(dtype)
    both_present = (p.valid_rows[:, :, None] & p.valid_cols[:, None, :]).to(dtype)
    if not soft:
        return both_present * same_sample
    items_rows, items_cols = p.items_rows.to(dtype), p.items_cols.to(dtype)
    shared = torch.einsum("knm,kgm->kng", items_rows, items_cols)
    union = items_rows.sum(-1)[:, :, None] + items_cols.sum(-1)[:, None, :] - shared
    jaccard = shared / union.clamp(min=1.0)
    same_text = ((p.ids_rows[:, :, None] == p.ids_cols[:, None, :]) & (p.ids_rows[:, :, None] >= 0)).to(dtype)
    soft_targets = torch.maximum(jaccard, torch.maximum(same_text, same_sample))
    return both_present * ((1.0 - instance_weight) * soft_targets + instance_weight * same_sample)


def _per_granularity_mean(sums: torch.Tensor, counts: torch.Tensor, world: int) -> torch.Tensor:
    """Average of sums[k] / counts[k] over the granularities present (counts > 0), times world."""
    present = (counts > 0).to(sums.dtype)
    per_k = sums / counts.clamp(min=1)
    return world * (per_k * present).sum() / present.sum().clamp(min=1)


def _column_log_softmax(logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """log-softmax over the kept columns; dropped ones come out near _MASKED (finite, never -inf)."""
    return F.log_softmax(logits.masked_fill(~keep, _MASKED), dim=-1)


def _clip_terms(
    batch: _Batch, scale: torch.Tensor, bias: torch.Tensor | None, soft: bool, instance_weight: float = 0.0
) -> dict[str, torch.Tensor]:
    """soft_clip / point / skl (soft=True) or the plain CLIP term in "soft_clip" (soft=False)."""
    valid_rows, valid_cols = batch.pairing.valid_rows, batch.pairing.valid_cols
    logits_i2t = scale * torch.einsum("nd,kgd->kng", batch.img_rows, batch.txt_cols)
    if batch.cols_are_rows:
        logits_t2i = logits_i2t.transpose(1, 2)
    else:
        logits_t2i = scale * torch.einsum("knd,gd->kng", batch.txt_rows, batch.img_cols)
    targets = _targets(batch.pairing, soft, logits_i2t.dtype, instance_weight)
    weights = targets / targets.sum(-1, keepdim=True).clamp(min=1.0e-12)
    logp_i2t = _column_log_softmax(logits_i2t, valid_cols[:, None, :])
    logp_t2i = _column_log_softmax(logits_t2i, valid_cols[:, None, :])

    samples_k = valid_cols.sum(-1).to(logits_i2t.dtype)  # |V_k|, global
    # Two separate products: weights are 0 on masked columns, and 0 * _MASKED is 0, but the sum of two
    # masked log-probabilities would overflow to -inf and 0 * -inf is NaN.
    clip_sums = -(weights * logp_i2t).sum(dim=(1, 2)) - (weights * logp_t2i).sum(dim=(1, 2))
    soft_clip = _per_granularity_mean(clip_sums, 2 * samples_k, batch.world)
    if not soft:
        return {"soft_clip": soft_clip}

    pair_valid = valid_rows[:, :, None] & valid_cols[:, None, :]
    point_logits = logits_i2t if bias is None else logits_i2t + bias.reshape(-1, 1, 1)
    bce = F.binary_cross_entropy_with_logits(point_logits, targets, reduction="none")
    point_sums = torch.where(pair_valid, bce, 0.0).sum(dim=(1, 2))
    point = _per_granularity_mean(point_sums, samples_k * samples_k, batch.world)
    return {"soft_clip": soft_clip, "point": point, "skl": _smooth_kl(logits_i2t, batch)}


def _smooth_kl(logits: torch.Tensor, batch: _Batch) -> torch.Tensor:
    """sum_k KL(P^k_i || M_i) over the columns every granularity of row i has (module docstring)."""
    row_has, valid_cols = batch.pairing.valid_rows, batch.pairing.valid_cols  # [K, n], [K, G]
    # common[i, j]: column j has every granularity row i has
    common = (~row_has[:, :, None] | valid_cols[:, None, :]).all(dim=0)  # [n, G]
    keep = row_has[:, :, None] & common[None]  # P^k_ij exists
    logp = _column_log_softmax(logits, keep)
    granularities_per_row = row_has.sum(0)  # [n]
    log_mixture = torch.logsumexp(logp.masked_fill(~keep, _MASKED), dim=0) - (
        granularities_per_row.clamp(min=1).to(logp.dtype).log()[:, None]
    )
    log_ratio = torch.where(keep, logp - log_mixture.unsqueeze(0), 0.0)
    probs = torch.where(keep, logp.exp(), 0.0)
    per_row = (probs * log_ratio).sum(dim=(0, 2))  # [n]
    rows_with_pairs = granularities_per_row >= 2
    global_rows = (valid_cols.sum(0) >= 2).sum().to(logp.dtype)
    return batch.world * torch.where(rows_with_pairs, per_row, 0.0).sum() / global_rows.clamp(min=1)

