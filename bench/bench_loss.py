"""Benchmark the MGLL loss: vectorised MGLLLoss vs a per-sample loop of the same maths, and MGLL vs CLIP.

Baselines, measured in the same run on the same inputs:
  (1) `loop_mgll` below -- the loss written one sample (row) at a time, the way the maths reads and the way
      a first implementation usually looks. Its value and gradients are checked against MGLLLoss first.
  (2) MGLLLoss(kind="clip") -- the CLIP baseline on the same code path, plus an open_clip-style
      F.cross_entropy CLIP as a reference for what the masking machinery costs.
Each timing is forward + backward, median of --repeats after a warm-up, on CPU and on CUDA when present.

    python bench/bench_loss.py                     # N=256 K=3 D=256 L=14
    python bench/bench_loss.py --n 512 --repeats 5 --threads 0 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mgll_train.loss import MGLLLoss


def make_inputs(n: int, k: int, d: int, num_labels: int, device: str, seed: int = 0) -> dict:
    """A chest-X-ray-shaped batch: ~35% "no finding" rows sharing a few identical texts, sparse labels at
    the coarse level and finer items (a finding with attributes: 4 variants of each label) below it."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, num_labels, generator=g) < 0.12).float()
    labels[torch.rand(n, generator=g) < 0.35] = 0
    unlabelled = labels.sum(1) == 0
    variant = torch.randint(0, 4, (k, n, num_labels), generator=g)
    items = torch.zeros(k, n, 4 * num_labels)
    items.scatter_(2, variant * num_labels + torch.arange(num_labels), labels.expand(k, -1, -1))
    items[0, :, :num_labels] = labels  # the coarsest level: the label set itself
    items[0, :, num_labels:] = 0
    ids = torch.arange(k * n).reshape(k, n) + 100  # distinct texts ...
    ids[:, unlabelled] = torch.randint(0, 3, (k, int(unlabelled.sum())), generator=g)  # ... but "no finding"
    mask = torch.rand(k, n, generator=g) < 0.9
    ids[~mask] = -1
    return dict(
        image_emb=F.normalize(torch.randn(n, d, generator=g), dim=-1).to(device),
        text_emb=F.normalize(torch.randn(k, n, d, generator=g), dim=-1).to(device),
        text_mask=mask.to(device),
        items=items.to(device),
        text_ids=ids.to(device),
        logit_scale=torch.tensor(1 / 0.07, device=device),
        logit_bias=torch.full((k,), -1.0, device=device),
    )


def loop_mgll(image_emb, text_emb, text_mask, items, text_ids, logit_scale, logit_bias) -> dict:
    """The baseline: the MGLL maths one row at a time (vectorised only along the columns of that row)."""
    num_k, n = text_mask.shape
    present = items > 0
    soft_clip, point = [], []
    row_logits: list[dict[int, torch.Tensor]] = [{} for _ in range(n)]
    for k in range(num_k):
        valid = text_mask[k].nonzero().flatten()
        if len(valid) == 0:
            continue
        ce, bce = 0.0, 0.0
        for a, i in enumerate(valid.tolist()):
            shared = (present[k, i] & present[k, valid]).sum(-1).float()
            union = (present[k, i] | present[k, valid]).sum(-1).float()
            target = shared / union.clamp(min=1)
            same = (text_ids[k, valid] == text_ids[k, i]) & (text_ids[k, i] >= 0)
            target = torch.where(same, 1.0, target)
            target[a] = 1.0
            weights = target / target.sum()
            i2t = logit_scale * (text_emb[k, valid] @ image_emb[i])
            t2i = logit_scale * (image_emb[valid] @ text_emb[k, i])
            ce = ce - (weights * torch.log_softmax(i2t, 0)).sum() - (weights * torch.log_softmax(t2i, 0)).sum()
            bce = bce + F.binary_cross_entropy_with_logits(i2t + logit_bias[k], target, reduction="sum")
            row_logits[i][k] = torch.full((n,), float("nan"), device=i2t.device).index_put((valid,), i2t)
        soft_clip.append(ce / (2 * len(valid)))
        point.append(bce / len(valid) ** 2)
    kls = []
    for levels in row_logits:
        if len(levels) < 2:
            continue
        stacked = torch.stack(list(levels.values()))
        common = ~stacked.isnan().any(0)  # the columns every level of this row has
        logp = torch.log_softmax(stacked[:, common], dim=1)
        log_mixture = torch.logsumexp(logp, 0) - math.log(len(levels))
        kls.append((logp.exp() * (logp - log_mixture)).sum())
    out = {
        "soft_clip": sum(soft_clip) / len(soft_clip),
        "point": sum(point) / len(point),
        "skl": sum(kls) / len(kls),
    }
    out["loss"] = 0.5 * out["soft_clip"] + out["point"] + out["skl"]
    return out


def open_clip_style(image_emb, text_emb, text_mask, items, text_ids, logit_scale, logit_bias) -> dict:
    """Plain CLIP as open_clip writes it (no masks), averaged over granularities: a cost reference."""
    target = torch.arange(image_emb.shape[0], device=image_emb.device)
    losses = []
    for k in range(text_emb.shape[0]):
        logits = logit_scale * image_emb @ text_emb[k].T
        losses.append((F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2)
    loss = sum(losses) / len(losses)
    return {"loss": loss}


def _with_grad(inputs: dict) -> dict:
    out = dict(inputs)
    out["image_emb"] = inputs["image_emb"].clone().requires_grad_(True)
    out["text_emb"] = inputs["text_emb"].clone().requires_grad_(True)
    out["logit_scale"] = inputs["logit_scale"].clone().requires_grad_(True)
    out["logit_bias"] = inputs["logit_bias"].clone().requires_grad_(True)
    return out


def check_agreement(inputs: dict) -> float:
    """MGLLLoss and the loop must agree on every term and on the gradients before anything is timed."""
    a, b = _with_grad(inputs), _with_grad(inputs)
    fast, slow = MGLLLoss()(**a), loop_mgll(**b)
    worst = 0.0
    for name in ("loss", "soft_clip", "point", "skl"):
        if not torch.allclose(fast[name], slow[name], rtol=1e-4, atol=1e-5):
            raise SystemExit(f"disagreement on {name}: vectorised {fast[name].item()} vs loop {slow[name].item()}")
        worst = max(worst, abs(fast[name].item() - slow[name].item()))
    fast["loss"].backward()
    slow["loss"].backward()
    for name in ("image_emb", "text_emb", "logit_scale", "logit_bias"):
        if not torch.allclose(a[name].grad, b[name].grad, rtol=1e-3, atol=1e-6):
            raise SystemExit(f"gradient disagreement on {name}")
    return worst


def time_fwd_bwd(fn, inputs: dict, repeats: int) -> float:
    """Median seconds of one forward + backward."""
    device = inputs["image_emb"].device
    times = []
    for attempt in range(repeats + 1):
        args = _with_grad(inputs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn(**args)["loss"].backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if attempt:  # the first call is the warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(device: str, n: int, k: int, d: int, num_labels: int, repeats: int, loop_repeats: int) -> list[dict]:
    inputs = make_inputs(n, k, d, num_labels, device)
    worst = check_agreement(inputs)
    print(f"[{device}] vectorised == per-sample loop on every term and gradient (max |diff| {worst:.2e})",
          file=sys.stderr)
    loop = time_fwd_bwd(loop_mgll, inputs, loop_repeats)
    mgll = time_fwd_bwd(MGLLLoss(), inputs, repeats)
    clip = time_fwd_bwd(MGLLLoss(kind="clip"), inputs, repeats)
    plain = time_fwd_bwd(open_clip_style, inputs, repeats)
    rows = [
        ("per-sample loop MGLL", "per-sample loop MGLL", loop, loop),
        ("MGLLLoss (vectorised)", "per-sample loop MGLL", mgll, loop),
        ("MGLLLoss kind=clip", "MGLLLoss kind=clip", clip, clip),
        ("MGLLLoss kind=mgll", "MGLLLoss kind=clip", mgll, clip),
        ("open_clip-style CLIP", "MGLLLoss kind=clip", plain, clip),
    ]
    return [
        dict(device=device, case=case, baseline=base, ms=seconds * 1e3, ratio_vs_baseline=seconds / base_seconds)
        for case, base, seconds, base_seconds in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256, help="batch size N")
    parser.add_argument("--k", type=int, default=3, help="granularities K")
    parser.add_argument("--d", type=int, default=256, help="embedding dim D")
    parser.add_argument("--labels", type=int, default=14, help="label vocabulary size L")
    parser.add_argument("--repeats", type=int, default=20, help="timed repeats of the vectorised losses")
    parser.add_argument("--loop-repeats", type=int, default=3, help="timed repeats of the slow loop baseline")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (default 1: on a shared machine OpenMP spin-waiting makes 2 threads "
                             "~20x slower than 1; 0 keeps torch's default)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--quick", action="store_true", help="5 timed repeats and 1 loop repeat")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.loop_repeats = 5, 1
    if args.threads:
        torch.set_num_threads(args.threads)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        rows += run(device, args.n, args.k, args.d, args.labels, args.repeats, args.loop_repeats)

    print(f"MGLL loss, forward+backward, N={args.n} K={args.k} D={args.d} L={args.labels}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if "cuda" in devices else ""))
    print(f"{'device':<6} {'case':<24} {'ms/iter':>10}  {'vs baseline':<22} {'ratio':>8}")
    for row in rows:
        ratio = row["ratio_vs_baseline"]
        shown = f"{1 / ratio:.1f}x faster" if ratio < 1 else f"{ratio:.2f}x time"
        print(f"{row['device']:<6} {row['case']:<24} {row['ms']:>10.2f}  {row['baseline']:<22} {shown:>8}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
