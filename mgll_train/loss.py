"""The MGLL loss (soft multi-label CLIP + point-wise BCE + smooth KL across granularities) and CLIP.

Kept apart from the training loop, as in open_clip, so it can be tested and benchmarked on bare
tensors. Notation: a batch of N images, K text granularities, `s^k_ij = scale * <img_i, txt^k_j>`.

Which pairs are positives (the "match" M^k_ij), and why
    Both sample i and sample j must have a text at granularity k (text_mask), and at least one of
      (a) i == j                      -- an image always matches its own text;
      (b) i and j share a positive label (multi-label overlap: labels_i . labels_j > 0);
      (c) their texts at k are identical (text_ids equal and >= 0).
    (b) is the method: chest X-rays with "effusion" and "effusion, atelectasis" are soft positives even
    though their texts differ. (c) is what rows WITHOUT positive labels fall back on: two "no finding"
    reports match when their texts at that granularity are identical, and not otherwise. A labelled
    and an unlabelled sample never match through labels. (c) also applies to labelled rows, because
    an identical string cannot coherently be a positive for one image and a negative for another:
    coarse granularities ("abnormal", "chest radiograph, PA view") match every image they describe.
    Soft targets W^k = M^k row-normalised: each positive gets equal weight 1/|positives of i|.

Masking
    A sample without a text at granularity k (text_mask[k, i] False) is removed from granularity k
    entirely -- as a row and as a column, in both directions and in the BCE -- so granularity k is
    computed exactly as if the batch were the samples that have it. It also leaves row i's sKL
    mixture. Rows and columns are masked by weights / a finite fill, never by -inf, so no term can
    produce NaN (a row with everything masked contributes an exact 0 with a live graph).

Terms (each computed per granularity, then averaged over the granularities with >= 1 sample)
    soft_clip: per valid row, the cross-entropy H(W^k_i., softmax_j s^k_i.) -- i.e. minus the mean,
        over row i's positives, of their log-probability -- for image->text rows and for text->image
        rows; the sum of both directions is divided by 2 * |V_k| (V_k: samples having granularity k).
    point: binary cross-entropy of sigmoid(s^k_ij) against M^k_ij, mean over all |V_k|^2 valid pairs
        (one direction: the pair set is the same both ways).
    skl: P^k_i = softmax_j s^k_i. (image->text rows, over granularity k's valid columns);
        M_i = mean of P^k_i over the K_i granularities row i has; sKL_i = sum_k KL(P^k_i || M_i),
        from log-softmax values, so it is finite and in [0, K_i log K_i]. Mean over rows with
        K_i >= 2 (a row with one granularity has nothing to be consistent with).
    loss = alpha_clip * soft_clip + alpha_point * point + alpha_kl * skl
    kind="clip": the same code with M = identity -> symmetric InfoNCE; returns "loss" == "clip".

Logits are computed in float32 (float64 stays float64) with autocast off: at scale 100 a bf16 matmul
moves logits by ~0.4. In a single process the text->image logits are the transposed image->text ones
(one matmul); under torch.distributed they are a second local-rows x global-columns product.

Multi-GPU (gather=True under torch.distributed): each rank's features are gathered with gradient
and its labels / ids / masks without, and the loss is local rows x global columns in both directions.
Every sum is divided by the GLOBAL count and multiplied by the world size, so the per-rank values
average to the full-batch loss and -- since DDP averages gradients -- the trainer gets exactly the
full-batch gradient. The value on one rank is therefore a per-rank estimate; log
`distributed.all_reduce_mean(loss)` to see the full-batch number.
"""

from __future__ import annotations

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
    """What decides the positives: masks, positive labels and text ids of local rows and all columns."""

    valid_rows: torch.Tensor  # [K, n] bool
    valid_cols: torch.Tensor  # [K, G] bool
    positives_rows: torch.Tensor  # [n, L] bool
    positives_cols: torch.Tensor  # [G, L] bool
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


def match_matrix(
    labels: torch.Tensor | None, text_ids: torch.Tensor | None, text_mask: torch.Tensor
) -> torch.Tensor:
    """The positives M^k_ij [K, N, N] of a single-process batch (see the module docstring)."""
    num_k, n = text_mask.shape
    positives = _positives(labels, n, text_mask.device)
    ids = _ids(text_ids, num_k, n, text_mask.device)
    mask = text_mask.bool()
    return _matches(_Pairing(mask, mask, positives, positives, ids, ids, row_offset=0), soft=True)


def soft_targets(
    labels: torch.Tensor | None, text_ids: torch.Tensor | None, text_mask: torch.Tensor
) -> torch.Tensor:
    """The row-normalised soft targets W^k [K, N, N]; rows of masked samples are all zero."""
    matches = match_matrix(labels, text_ids, text_mask).float()
    return matches / matches.sum(-1, keepdim=True).clamp(min=1.0)


class MGLLLoss(nn.Module):
    """MGLL (kind="mgll") or CLIP (kind="clip") loss over K text granularities.

    Example:
        loss_fn = MGLLLoss()
        out = loss_fn(img, txt, mask, labels, ids, model.logit_scale.exp().clamp(max=100))
        out["loss"].backward()
    """

    def __init__(
        self,
        alpha_clip: float = 0.5,
        alpha_point: float = 1.0,
        alpha_kl: float = 1.0,
        kind: str = "mgll",
        gather: bool = True,
    ) -> None:
        super().__init__()
        if kind not in LOSS_KINDS:
            raise ValueError(f"loss kind must be one of {', '.join(LOSS_KINDS)}, got {kind!r}")
        self.alpha_clip = alpha_clip
        self.alpha_point = alpha_point
        self.alpha_kl = alpha_kl
        self.kind = kind
        self.gather = gather

    def extra_repr(self) -> str:
        if self.kind == "clip":
            return f"kind=clip, gather={self.gather}"
        return (
            f"kind=mgll, alpha_clip={self.alpha_clip}, alpha_point={self.alpha_point}, "
            f"alpha_kl={self.alpha_kl}, gather={self.gather}"
        )

    def forward(
        self,
        image_emb: torch.Tensor,
        text_emb: torch.Tensor,
        text_mask: torch.Tensor,
        labels: torch.Tensor | None,
        text_ids: torch.Tensor | None,
        logit_scale: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """image_emb [N,D], text_emb [K,N,D] (both L2-normalised), text_mask bool [K,N], labels [N,L]
        multi-hot (None: no labels), text_ids long [K,N] (>= 0 present, -1 missing, equal for
        equal texts ON EVERY RANK -- mgll_train.data.text_id, not Python's salted hash(); None: no text
        identity), logit_scale a scalar tensor already exp'ed and clamped.
        Returns a dict of scalar tensors."""
        _check_inputs(image_emb, text_emb, text_mask, labels, text_ids, logit_scale)
        with torch.autocast(device_type=image_emb.device.type, enabled=False):
            batch = _collect(image_emb, text_emb, text_mask, labels, text_ids, self.gather)
            scale = torch.as_tensor(logit_scale, device=image_emb.device).to(batch.img_rows.dtype)
            if self.kind == "clip":
                clip = _clip_terms(batch, scale, soft=False)["soft_clip"]
                return {"loss": clip, "clip": clip}
            terms = _clip_terms(batch, scale, soft=True)
        loss = (
            self.alpha_clip * terms["soft_clip"] + self.alpha_point * terms["point"] + self.alpha_kl * terms["skl"]
        )
        return {"loss": loss, **terms}


def _check_inputs(image_emb, text_emb, text_mask, labels, text_ids, logit_scale) -> None:
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
    if labels is not None and (labels.dim() != 2 or labels.shape[0] != n):
        raise ValueError(f"labels must be [{n}, L], got {tuple(labels.shape)}")
    if text_ids is not None and tuple(text_ids.shape) != (k, n):
        raise ValueError(f"text_ids must be [{k}, {n}], got {tuple(text_ids.shape)}")
    if torch.is_tensor(logit_scale) and logit_scale.numel() != 1:
        raise ValueError(f"logit_scale must be a scalar, got shape {tuple(logit_scale.shape)}")


def _positives(labels: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
    if labels is None:
        return torch.zeros((n, 0), dtype=torch.bool, device=device)
    return labels > 0


def _ids(text_ids: torch.Tensor | None, num_k: int, n: int, device: torch.device) -> torch.Tensor:
    if text_ids is None:
        return torch.full((num_k, n), -1, dtype=torch.long, device=device)
    return text_ids.long()


def _collect(image_emb, text_emb, text_mask, labels, text_ids, gather: bool) -> _Batch:
    """Local rows plus every rank's columns (one feature gather with grad, one metadata gather)."""
    num_k, n, _ = text_emb.shape
    device = image_emb.device
    compute_dtype = torch.promote_types(torch.promote_types(image_emb.dtype, text_emb.dtype), torch.float32)
    img = image_emb.to(compute_dtype)
    txt = text_emb.to(compute_dtype)
    mask = text_mask.bool()
    positives = _positives(labels, n, device)
    ids = _ids(text_ids, num_k, n, device)
    if not (gather and distributed.is_distributed()):
        pairing = _Pairing(mask, mask, positives, positives, ids, ids, row_offset=0)
        return _Batch(img, txt, img, txt, pairing, world=1, cols_are_rows=True)

    sizes = distributed.gathered_sizes(n, device)
    features = torch.cat([img.unsqueeze(1), txt.transpose(0, 1)], dim=1)  # [n, K+1, D]
    all_features, offset = distributed.gather_rows(features, with_grad=True, sizes=sizes)
    meta = torch.cat([positives.long(), ids.t(), mask.t().long()], dim=1)  # [n, L + 2K]
    all_meta, _ = distributed.gather_rows(meta, with_grad=False, sizes=sizes)
    num_labels = positives.shape[1]
    return _Batch(
        img_rows=img,
        txt_rows=txt,
        img_cols=all_features[:, 0],
        txt_cols=all_features[:, 1:].transpose(0, 1),
        pairing=_Pairing(
            valid_rows=mask,
            valid_cols=all_meta[:, num_labels + num_k :].t().bool(),
            positives_rows=positives,
            positives_cols=all_meta[:, :num_labels].bool(),
            ids_rows=ids,
            ids_cols=all_meta[:, num_labels : num_labels + num_k].t(),
            row_offset=offset,
        ),
        world=len(sizes),
        cols_are_rows=False,
    )


def _matches(p: _Pairing, soft: bool) -> torch.Tensor:
    """M^k_ij [K, n, G] for local rows i and global columns j: the module docstring's rule (soft) or
    the identity (CLIP)."""
    n, g = p.valid_rows.shape[1], p.valid_cols.shape[1]
    device = p.valid_rows.device
    rows = torch.arange(n, device=device) + p.row_offset
    same_sample = rows[:, None] == torch.arange(g, device=device)[None, :]
    both_present = p.valid_rows[:, :, None] & p.valid_cols[:, None, :]
    if not soft:
        return both_present & same_sample
    shared_label = (p.positives_rows.float() @ p.positives_cols.float().t()) > 0
    same_text = (p.ids_rows[:, :, None] == p.ids_cols[:, None, :]) & (p.ids_rows[:, :, None] >= 0)
    return both_present & (same_sample | shared_label | same_text)


def _per_granularity_mean(sums: torch.Tensor, counts: torch.Tensor, world: int) -> torch.Tensor:
    """Average of sums[k] / counts[k] over the granularities present (counts > 0), times world."""
    present = counts > 0
    per_k = sums / counts.clamp(min=1)
    return world * (per_k * present).sum() / present.sum().clamp(min=1)


def _column_log_softmax(logits: torch.Tensor, valid_cols: torch.Tensor) -> torch.Tensor:
    """log-softmax over the valid columns; masked columns come out near _MASKED (finite, never -inf)."""
    return F.log_softmax(logits.masked_fill(~valid_cols[:, None, :], _MASKED), dim=-1)


def _clip_terms(batch: _Batch, scale: torch.Tensor, soft: bool) -> dict[str, torch.Tensor]:
    """soft_clip / point / skl (soft=True) or the plain CLIP term in "soft_clip" (soft=False)."""
    matches = _matches(batch.pairing, soft)
    valid_rows, valid_cols = batch.pairing.valid_rows, batch.pairing.valid_cols
    logits_i2t = scale * torch.einsum("nd,kgd->kng", batch.img_rows, batch.txt_cols)
    if batch.cols_are_rows:
        logits_t2i = logits_i2t.transpose(1, 2)
    else:
        logits_t2i = scale * torch.einsum("knd,gd->kng", batch.txt_rows, batch.img_cols)
    targets = matches.to(logits_i2t.dtype)
    targets = targets / targets.sum(-1, keepdim=True).clamp(min=1.0)
    logp_i2t = _column_log_softmax(logits_i2t, valid_cols)
    logp_t2i = _column_log_softmax(logits_t2i, valid_cols)

    samples_k = valid_cols.sum(-1).to(logits_i2t.dtype)  # |V_k|, global
    # Two separate products: targets are 0 on masked columns, and 0 * _MASKED is 0, but the sum of two
    # masked log-probabilities would overflow to -inf and 0 * -inf is NaN.
    clip_sums = -(targets * logp_i2t).sum(dim=(1, 2)) - (targets * logp_t2i).sum(dim=(1, 2))
    soft_clip = _per_granularity_mean(clip_sums, 2 * samples_k, batch.world)
    if not soft:
        return {"soft_clip": soft_clip}

    pair_valid = valid_rows[:, :, None] & valid_cols[:, None, :]
    bce = F.binary_cross_entropy_with_logits(logits_i2t, matches.to(logits_i2t.dtype), reduction="none")
    point_sums = torch.where(pair_valid, bce, 0.0).sum(dim=(1, 2))
    point = _per_granularity_mean(point_sums, samples_k * samples_k, batch.world)

    return {"soft_clip": soft_clip, "point": point, "skl": _smooth_kl(logp_i2t, batch)}


def _smooth_kl(logp: torch.Tensor, batch: _Batch) -> torch.Tensor:
    """sum_k KL(P^k_i || M_i), M_i the mean of row i's present P^k_i, from log-probabilities only."""
    row_has, valid_cols = batch.pairing.valid_rows, batch.pairing.valid_cols  # [K, n], [K, G]
    keep = row_has[:, :, None] & valid_cols[:, None, :]  # P^k_ij exists
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
