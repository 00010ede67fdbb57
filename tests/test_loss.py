"""MGLLLoss on bare tensors: each term against a per-sample reference, and the properties the maths promises."""

import math

import pytest
import torch
import torch.nn.functional as F

from mgll_train.loss import MGLLLoss, label_levels, logit_bias_prior, pair_targets

TERMS = ("soft_clip", "point", "skl")


def _unit(*shape, generator, dtype=torch.float64):
    return F.normalize(torch.randn(*shape, generator=generator, dtype=dtype), dim=-1)


def _random_batch(n=10, k=3, d=16, num_items=5, seed=0, dtype=torch.float64, per_level=True):
    """Items, masks and duplicated text ids chosen so every rule of the targets is exercised."""
    g = torch.Generator().manual_seed(seed)
    shape = (k, n, num_items) if per_level else (n, num_items)
    items = (torch.rand(*shape, generator=g) > 0.6).to(dtype)
    items[..., : n // 3, :] = 0  # some rows without items at any level
    mask = torch.rand(k, n, generator=g) > 0.25
    ids = torch.randint(0, 3, (k, n), generator=g)  # few distinct texts -> identical-text matches
    ids[~mask] = -1
    return dict(
        image_emb=_unit(n, d, generator=g, dtype=dtype),
        text_emb=_unit(k, n, d, generator=g, dtype=dtype),
        text_mask=mask,
        items=items,
        text_ids=ids,
        logit_scale=torch.tensor(1 / 0.07, dtype=dtype),
    )


def _jaccard(a, b):
    union = ((a > 0) | (b > 0)).sum()
    return float(((a > 0) & (b > 0)).sum() / union) if union else 0.0


def _target(kind, level_ids, level_items, i, j, instance_weight=0.0):
    """Row i's soft target for column j: 1 on the diagonal, else (1 - instance_weight) times 1 for an identical
    text or the items' Jaccard."""
    if kind == "clip" or i == j:
        return float(i == j)
    same_text = level_ids[i] >= 0 and level_ids[i] == level_ids[j]
    return (1 - instance_weight) * (1.0 if same_text else _jaccard(level_items[i], level_items[j]))


def _reference(image_emb, text_emb, text_mask, items, text_ids, logit_scale, logit_bias=None, kind="mgll",
               instance_weight=0.0):
    """The maths of the module docstring written one sample at a time, as a reader would check it."""
    k_count, n = text_mask.shape
    soft_clip, point = [], []
    row_logits = [dict() for _ in range(n)]  # row i -> {k: {j: logit}}
    for k in range(k_count):
        level_items = items[k] if items.dim() == 3 else items
        bias = 0.0 if logit_bias is None else logit_bias.reshape(-1)[k if logit_bias.numel() > 1 else 0]
        valid = [i for i in range(n) if text_mask[k, i]]
        if not valid:
            continue
        ce_sum, bce_sum = 0.0, 0.0
        for i in valid:
            t = torch.tensor([_target(kind, text_ids[k], level_items, i, j, instance_weight) for j in valid],
                             dtype=image_emb.dtype)
            w = t / t.sum()
            i2t = torch.stack([logit_scale * image_emb[i] @ text_emb[k, j] for j in valid])
            t2i = torch.stack([logit_scale * text_emb[k, i] @ image_emb[j] for j in valid])
            for row in (i2t, t2i):
                ce_sum = ce_sum - (w * torch.log_softmax(row, dim=0)).sum()
            bce_sum = bce_sum + F.binary_cross_entropy_with_logits(i2t + bias, t, reduction="sum")
            row_logits[i][k] = dict(zip(valid, i2t))
        soft_clip.append(ce_sum / (2 * len(valid)))
        point.append(bce_sum / len(valid) ** 2)
    zero = logit_scale * 0
    clip = sum(soft_clip) / len(soft_clip) if soft_clip else zero
    if kind == "clip":
        return {"loss": clip, "clip": clip}
    skl_rows = []
    for levels in row_logits:
        if len(levels) < 2:
            continue
        common = sorted(set.intersection(*(set(v) for v in levels.values())))  # columns every level has
        dists = [torch.softmax(torch.stack([v[j] for j in common]), 0) for v in levels.values()]
        mixture = sum(dists) / len(dists)
        skl_rows.append(sum((p * (p.log() - mixture.log())).sum() for p in dists))
    out = {
        "soft_clip": clip,
        "point": sum(point) / len(point) if point else zero,
        "skl": sum(skl_rows) / len(skl_rows) if skl_rows else zero,
    }
    out["loss"] = 0.5 * out["soft_clip"] + out["point"] + out["skl"]
    return out


@pytest.mark.parametrize("per_level", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["mgll", "clip"])
def test_every_term_equals_the_per_sample_reference(seed, kind, per_level):
    batch = _random_batch(seed=seed, per_level=per_level)
    got = MGLLLoss(kind=kind)(**batch)
    want = _reference(**batch, kind=kind)
    assert set(got) == set(want)
    for name in want:
        assert torch.allclose(got[name], want[name], rtol=1e-9, atol=1e-9), name


@pytest.mark.parametrize("bias", [torch.tensor(-1.3), torch.tensor([-2.0, 0.5, 1.0])])
def test_the_logit_bias_shifts_only_the_point_wise_term(bias):
    batch = _random_batch(seed=15)
    bias = bias.double()
    got = MGLLLoss()(**batch, logit_bias=bias)
    want = _reference(**batch, logit_bias=bias)
    for name in want:
        assert torch.allclose(got[name], want[name], rtol=1e-9, atol=1e-9), name
    plain = MGLLLoss()(**batch)
    assert torch.allclose(got["soft_clip"], plain["soft_clip"]) and torch.allclose(got["skl"], plain["skl"])
    assert not torch.allclose(got["point"], plain["point"])


@pytest.mark.parametrize("instance_weight", [0.25, 0.5, 1.0])
def test_the_instance_weight_mixes_the_targets_with_the_identity(instance_weight):
    batch = _random_batch(seed=21)
    got = MGLLLoss(instance_weight=instance_weight)(**batch)
    want = _reference(**batch, instance_weight=instance_weight)
    for name in want:
        assert torch.allclose(got[name], want[name], rtol=1e-9, atol=1e-9), name
    plain = MGLLLoss()(**batch)
    assert not torch.allclose(got["soft_clip"], plain["soft_clip"]) and not torch.allclose(got["point"], plain["point"])


def test_the_instance_weight_keeps_the_own_text_and_scales_the_other_positives():
    # Hand-written: 0 and 1 share one of two items (Jaccard 1/2), 2 and 3 have identical text, 4 is masked.
    items = torch.tensor([[[1.0, 0], [1, 1], [0, 0], [0, 0], [1, 0]]])
    ids = torch.tensor([[1, 2, 3, 3, -1]])
    t = pair_targets(items, ids, ids >= 0, torch.float64, instance_weight=0.5)[0]
    want = torch.tensor([[1, 0.25, 0, 0, 0], [0.25, 1, 0, 0, 0], [0, 0, 1, 0.5, 0], [0, 0, 0.5, 1, 0], [0, 0, 0, 0, 0]],
                        dtype=torch.float64)  # fmt: skip
    assert torch.equal(t, want)


def test_an_instance_weight_of_one_turns_soft_clip_into_clip():
    batch = _random_batch(seed=22)
    assert torch.allclose(MGLLLoss(instance_weight=1.0)(**batch)["soft_clip"], MGLLLoss(kind="clip")(**batch)["clip"])


def test_the_bias_prior_follows_the_instance_weight():
    batch = _random_batch(seed=23)
    args = (batch["items"], batch["text_ids"], batch["text_mask"])
    prior = MGLLLoss(instance_weight=0.5).bias_prior(*args)
    t = pair_targets(*args, torch.float64, instance_weight=0.5)
    valid = batch["text_mask"][0]
    p = t[0][valid][:, valid].mean().item()
    assert prior[0].item() == pytest.approx(math.log(p / (1 - p)), rel=1e-5)
    assert (prior < MGLLLoss().bias_prior(*args)).all()  # fewer positives, a lower starting bias


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_an_instance_weight_outside_zero_one_is_refused(value):
    with pytest.raises(ValueError, match="instance_weight must be between 0 and 1"):
        MGLLLoss(instance_weight=value)


def test_alphas_weight_the_terms():
    batch = _random_batch(seed=3)
    out = MGLLLoss(alpha_clip=2.0, alpha_point=0.25, alpha_kl=3.0)(**batch)
    expected = 2.0 * out["soft_clip"] + 0.25 * out["point"] + 3.0 * out["skl"]
    assert torch.allclose(out["loss"], expected)


def test_each_granularity_takes_its_targets_from_its_own_items():
    # Four images; items per level written by hand, and the targets expected from them, before running.
    # disease: label sets  0 {effusion}, 1 {effusion, atelectasis}, 2 {atelectasis}, 3 {} ("no finding")
    # description: findings with side and size; 0 and 1 both have "effusion, left, small", 1 also
    # "atelectasis, right"; 2 "atelectasis, left"; 3 none.
    effusion, atelectasis = 0, 1
    eff_left_small, atel_right, atel_left = 0, 1, 2
    disease = torch.zeros(4, 3)
    disease[0, effusion] = disease[1, effusion] = disease[1, atelectasis] = disease[2, atelectasis] = 1
    description = torch.zeros(4, 3)
    description[0, eff_left_small] = description[1, eff_left_small] = description[1, atel_right] = 1
    description[2, atel_left] = 1
    items = torch.stack([disease, description])
    ids = torch.tensor([[10, 11, 12, 20], [30, 31, 32, 33]])
    t = pair_targets(items, ids, torch.ones(2, 4, dtype=torch.bool), torch.float64)
    third, half = 1 / 3, 1 / 2
    want_disease = torch.tensor(
        [[1, half, 0, 0], [half, 1, half, 0], [0, half, 1, 0], [0, 0, 0, 1]], dtype=torch.float64
    )
    want_description = torch.tensor([[1, half, 0, 0], [half, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
    assert torch.allclose(t[0], want_disease) and torch.allclose(t[1], want_description)
    # 1 and 2 share atelectasis (a disease-level half-positive) but not its side: strangers at description
    assert t[0, 1, 2] == half and t[1, 1, 2] == 0
    # a shared item set [N, M] gives every level the same targets
    shared = pair_targets(disease, None, torch.ones(2, 4, dtype=torch.bool), torch.float64)
    assert torch.allclose(shared[0], want_disease) and torch.allclose(shared[1], want_disease)
    abc = torch.tensor([[1.0, 1, 0], [0, 1, 1]])  # {a, b} and {b, c}: Jaccard 1/3
    assert pair_targets(abc, None, torch.ones(1, 2, dtype=torch.bool))[0, 0, 1] == pytest.approx(third)


def test_labels_are_the_items_of_the_label_levels_only():
    # A dataset with labels only: "disease" takes the label sets, "description" identical text alone.
    labels = torch.tensor([[1.0, 0], [1, 1], [0, 1]])
    ids = torch.tensor([[1, 2, 3], [7, 8, 7]])
    mask = torch.ones(2, 3, dtype=torch.bool)
    assert label_levels(["disease", "description"]) == [True, False]
    t = pair_targets(labels, ids, mask, levels=label_levels(["disease", "description"]))
    assert torch.allclose(t[0], torch.tensor([[1, 0.5, 0], [0.5, 1, 0.5], [0, 0.5, 1]]))
    assert torch.equal(t[1], torch.tensor([[1.0, 0, 1], [0, 1, 0], [1, 0, 1]]))
    batch = _random_batch(seed=19, per_level=False, k=2)
    loss = MGLLLoss(label_levels=[True, False])
    per_level = dict(batch, items=batch["items"].unsqueeze(0) * torch.tensor([1.0, 0.0])[:, None, None])
    for name, value in loss(**batch).items():
        assert torch.allclose(value, MGLLLoss()(**per_level)[name]), name
    with pytest.raises(ValueError, match="label_levels has 3 entries"):
        MGLLLoss(label_levels=[True, False, True])(**batch)


def test_identical_text_is_the_fallback_and_masked_samples_have_no_targets():
    # "no finding" rows 3 and 4 have no items; identical texts make them positives, different ones not.
    items = torch.zeros(1, 5, 2)
    items[0, 0, 0] = items[0, 1, 0] = 1
    ids = torch.tensor([[10, 11, -1, 20, 20]])
    mask = ids >= 0
    t = pair_targets(items, ids, mask)[0]
    assert t[3, 4] == 1 and t[4, 3] == 1 and t[0, 1] == 1
    assert t[0, 3] == 0 and t[2].sum() == 0 and t[:, 2].sum() == 0
    # every valid sample is its own positive, so the loss's row-normalised soft-CLIP targets are defined
    assert torch.equal(t.diagonal(), mask[0].float())


def test_soft_targets_without_items_or_ids_are_the_identity():
    mask = torch.tensor([[True, True, False]])
    assert torch.equal(pair_targets(None, None, mask)[0], torch.diag(torch.tensor([1.0, 1.0, 0.0])))


def test_the_bias_prior_is_the_log_odds_of_the_mean_target_per_granularity():
    batch = _random_batch(seed=16)
    prior = logit_bias_prior(batch["items"], batch["text_ids"], batch["text_mask"])
    t = pair_targets(batch["items"], batch["text_ids"], batch["text_mask"], torch.float64)
    for k in range(3):
        valid = batch["text_mask"][k]
        p = t[k][valid][:, valid].mean().item()
        assert prior[k].item() == pytest.approx(math.log(p / (1 - p)), rel=1e-5)


def test_soft_clip_is_clip_infonce_when_every_sample_has_a_unique_single_label():
    g = torch.Generator().manual_seed(4)
    n = 6
    img, txt = _unit(n, 8, generator=g), _unit(1, n, 8, generator=g)
    scale = torch.tensor(20.0, dtype=torch.float64)
    labels = torch.eye(n, dtype=torch.float64)
    ids = torch.arange(n)[None]
    out = MGLLLoss()(img, txt, torch.ones(1, n, dtype=torch.bool), labels, ids, scale)
    logits = scale * img @ txt[0].T
    target = torch.arange(n)
    infonce = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    assert torch.allclose(out["soft_clip"], infonce)
    clip = MGLLLoss(kind="clip")(img, txt, torch.ones(1, n, dtype=torch.bool), labels, ids, scale)
    assert torch.allclose(clip["clip"], infonce) and torch.equal(clip["loss"], clip["clip"])


def test_swapping_image_and_text_roles_leaves_every_term_unchanged():
    batch = _random_batch(k=1, seed=5)
    swapped = dict(batch, image_emb=batch["text_emb"][0], text_emb=batch["image_emb"][None])
    for kind in ("mgll", "clip"):
        a, b = MGLLLoss(kind=kind)(**batch), MGLLLoss(kind=kind)(**swapped)
        for name in a:
            assert torch.allclose(a[name], b[name]), (kind, name)


def test_a_masked_sample_text_changes_nothing_and_gets_no_gradient():
    batch = _random_batch(seed=6)
    batch["text_mask"][1, 4] = False
    batch["text_ids"][1, 4] = -1
    g = torch.Generator().manual_seed(7)
    changed = batch["text_emb"].clone()
    changed[1, 4] = _unit(16, generator=g)
    text = batch["text_emb"].clone().requires_grad_(True)
    base = MGLLLoss()(**dict(batch, text_emb=text))
    other = MGLLLoss()(**dict(batch, text_emb=changed))
    for name in base:
        assert torch.allclose(base[name], other[name]), name
    base["loss"].backward()
    assert torch.count_nonzero(text.grad[1, 4]) == 0
    assert torch.count_nonzero(text.grad[0, 4]) > 0 or not batch["text_mask"][0, 4]


def test_a_masked_granularity_is_computed_as_if_the_batch_were_its_present_samples():
    batch = _random_batch(k=1, seed=8)
    keep = batch["text_mask"][0]
    sub = dict(
        batch,
        image_emb=batch["image_emb"][keep],
        text_emb=batch["text_emb"][:, keep],
        text_mask=batch["text_mask"][:, keep],
        items=batch["items"][:, keep],
        text_ids=batch["text_ids"][:, keep],
    )
    full, part = MGLLLoss()(**batch), MGLLLoss()(**sub)
    for name in ("soft_clip", "point"):
        assert torch.allclose(full[name], part[name]), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_term_is_finite_with_saturated_logits_at_scale_100(dtype):
    # Texts equal to or opposite their images: logits of exactly +-100, where log(raw logits) or an
    # unmasked softmax would blow up.
    g = torch.Generator().manual_seed(9)
    n, k = 8, 3
    img = _unit(n, 4, generator=g, dtype=dtype).requires_grad_(True)
    signs = torch.tensor([1.0, -1.0, 1.0], dtype=dtype)[:, None, None]
    txt = (signs * img.detach()[None].expand(k, n, 4)).clone().requires_grad_(True)
    scale = torch.tensor(100.0, dtype=dtype, requires_grad=True)
    mask = torch.ones(k, n, dtype=torch.bool)
    mask[2, :3] = False
    labels = torch.zeros(n, 5, dtype=dtype)
    labels[0, 0] = labels[1, 0] = 1
    out = MGLLLoss()(img, txt, mask, labels, torch.full((k, n), -1), scale)
    for name, value in out.items():
        assert torch.isfinite(value), name
    out["loss"].backward()
    for grad in (img.grad, txt.grad, scale.grad):
        assert torch.isfinite(grad).all()
    assert out["skl"] > 0  # the opposite-sign granularity disagrees; the term was not dropped
    assert out["skl"] <= k * math.log(k) + 1e-5  # generalised JS bound


@pytest.mark.parametrize(
    "case",
    ["no positives at all", "one granularity fully masked", "everything masked", "single sample", "empty batch"],
)
def test_degenerate_batches_stay_finite_and_differentiable(case):
    batch = _random_batch(n=6, seed=10)
    if case == "no positives at all":
        batch["items"].zero_()
        batch["text_ids"].fill_(-1)
    elif case == "one granularity fully masked":
        batch["text_mask"][1] = False
    elif case == "everything masked":
        batch["text_mask"].zero_()
    else:
        n = 1 if case == "single sample" else 0
        batch.update(
            image_emb=batch["image_emb"][:n], text_emb=batch["text_emb"][:, :n], text_mask=batch["text_mask"][:, :n],
            items=batch["items"][:, :n], text_ids=batch["text_ids"][:, :n],
        )
        batch["text_mask"][:] = True
    img = batch["image_emb"].clone().requires_grad_(True)
    scale = batch["logit_scale"].clone().requires_grad_(True)
    for kind in ("mgll", "clip"):
        out = MGLLLoss(kind=kind)(**dict(batch, image_emb=img, logit_scale=scale))
        assert all(torch.isfinite(v) for v in out.values()), (kind, out)
        out["loss"].backward()
        assert torch.isfinite(img.grad).all() and torch.isfinite(scale.grad)
    if case == "everything masked":
        assert out["loss"] == 0


def test_single_sample_has_zero_contrastive_terms_but_a_point_loss():
    batch = _random_batch(n=1, k=2, seed=11)
    batch["text_mask"][:] = True
    out = MGLLLoss()(**batch)
    assert out["soft_clip"] == 0 and out["skl"] == 0
    logit = batch["logit_scale"] * batch["image_emb"][0] @ batch["text_emb"][:, 0].T
    assert torch.allclose(out["point"], F.softplus(-logit).mean())


@pytest.mark.parametrize("kind", ["mgll", "clip"])
def test_gradient_reaches_the_logit_scale_parameter(kind):
    batch = _random_batch(seed=12, dtype=torch.float32)
    log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    out = MGLLLoss(kind=kind)(**dict(batch, logit_scale=log_scale.exp().clamp(max=100)))
    out["loss"].backward()
    assert log_scale.grad is not None and torch.isfinite(log_scale.grad) and log_scale.grad != 0


def test_smooth_kl_is_zero_when_every_granularity_gives_the_same_logits_and_positive_otherwise():
    batch = _random_batch(seed=13)
    batch["text_mask"][:] = True
    same = dict(batch, text_emb=batch["text_emb"][:1].expand(3, -1, -1))
    assert torch.allclose(MGLLLoss()(**same)["skl"], torch.zeros((), dtype=torch.float64), atol=1e-12)
    assert MGLLLoss()(**batch)["skl"] > 1e-3


@pytest.mark.parametrize("missing", [1, 2, 4])
def test_smooth_kl_of_identical_granularities_is_zero_whatever_texts_are_missing(missing):
    # The case: 8 samples, `missing` of them lack one level; the levels embed identically.
    batch = _random_batch(n=8, seed=17)
    batch["text_mask"][:] = True
    batch["text_mask"][1, :missing] = False
    same = dict(batch, text_emb=batch["text_emb"][:1].expand(3, -1, -1))
    assert MGLLLoss()(**same)["skl"].abs() < 1e-12
    batch["text_mask"][2, 3:5] = False  # a second level missing elsewhere: rows lose other columns
    same = dict(batch, text_emb=batch["text_emb"][:1].expand(3, -1, -1))
    assert MGLLLoss()(**same)["skl"].abs() < 1e-12
    assert MGLLLoss()(**batch)["skl"] > 1e-3  # different embeddings still disagree


def test_the_loss_traces_as_one_graph():
    """No Python branch on a tensor value and no .item(): torch.compile(fullgraph=True) must not break."""
    for per_level, levels in ((True, None), (False, [True, True, False])):  # labels + label_levels as the trainer
        batch = _random_batch(seed=18, dtype=torch.float32, per_level=per_level)
        loss_fn = MGLLLoss(label_levels=levels)
        compiled = torch.compile(loss_fn, fullgraph=True, backend="eager")
        bias = torch.zeros(3)
        got = compiled(**batch, logit_bias=bias)
        want = loss_fn(**batch, logit_bias=bias)
        for name in want:
            assert torch.allclose(got[name], want[name], rtol=1e-5), name


def test_logits_are_float32_under_bf16_autocast():
    batch = _random_batch(seed=14, dtype=torch.float32)
    plain = MGLLLoss()(**batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = MGLLLoss()(**batch)
    assert auto["loss"].dtype == torch.float32
    assert torch.allclose(plain["loss"], auto["loss"], rtol=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(image_emb=torch.zeros(10)), "image_emb must be"),
        (dict(text_emb=torch.zeros(3, 9, 16)), "text_emb must be"),
        (dict(text_emb=torch.zeros(0, 10, 16)), "no granularities"),
        (dict(text_mask=torch.ones(2, 10, dtype=torch.bool)), "text_mask must be"),
        (dict(items=torch.zeros(9, 5)), "items must be"),
        (dict(items=torch.zeros(2, 10, 5)), "items must be"),
        (dict(logit_bias=torch.zeros(2)), "logit_bias must be"),
        (dict(text_ids=torch.zeros(10, 3)), "text_ids must be"),
        (dict(logit_scale=torch.ones(2)), "logit_scale must be a scalar"),
    ],
)
def test_wrong_shapes_are_refused_with_the_argument_named(change, message):
    with pytest.raises(ValueError, match=message):
        MGLLLoss()(**dict(_random_batch(), **change))


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="mgll, clip"):
        MGLLLoss(kind="siglip")
