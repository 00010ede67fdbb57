"""Cost of the MGLL loss over the CLIP baseline, per training step, on the same towers and batch.

Baseline: `--loss clip` (symmetric InfoNCE over the same K granularities), timed in the same run with
the steps of the two losses interleaved so machine load hits both alike. The goal is MGLL <= 1.10 x CLIP.
On CUDA it also measures ViT-B/16 + MiniLM at batch 256 under bf16 autocast: samples/s and peak memory.

    python bench/bench_train_step.py            # CPU: tiny ViT + MiniLM, batch 32, 3 granularities
    python bench/bench_train_step.py --quick    # CPU: tiny ViT + tiny text tower, for `make bench`
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mgll_train.loss import MGLLLoss
from mgll_train.model import build_model, default_text_folder, load_tokenizer
from mgll_train.step import TrainStep
from mgll_train.transform import IMAGENET_MEAN, IMAGENET_STD

TEXTS = [
    ["normal", "abnormal"],
    ["no finding", "pleural effusion", "cardiomegaly", "pleural effusion and atelectasis", "pneumothorax"],
    ["lungs are clear.", "small left pleural effusion.", "the heart is enlarged.", "right apical pneumothorax."],
]


def synthetic_batch(batch: int, image_size: int, labels: int, device: torch.device, max_tokens: int = 64):
    """A batch in the collator's layout: 8-bit grey images, K=3 granularities of texts with repeats (so
    identical-text targets occur and distinct texts are encoded once), multi-hot labels."""
    generator = torch.Generator().manual_seed(0)
    tokenizer = load_tokenizer(default_text_folder())
    texts = [
        [options[(i * (k + 3)) % len(options)] + ("" if i % 3 else f" case {i}") for i in range(batch)]
        for k, options in enumerate(TEXTS)
    ]
    distinct = list(dict.fromkeys(t for column in texts for t in column))
    tokens = tokenizer(distinct, padding="longest", truncation=True, max_length=max_tokens, return_tensors="pt")
    text_mask = torch.rand(len(TEXTS), batch, generator=generator) > 0.1
    ids = torch.tensor([[hash(t) & (2**62 - 1) for t in column] for column in texts])
    out = {
        "pixels": torch.randint(0, 256, (batch, 1, image_size, image_size), generator=generator, dtype=torch.uint8),
        "views": torch.tensor([[0.0, 1.0, 1.0]]).repeat(batch, 1),
        "input_ids": tokens["input_ids"],
        "attention_mask": tokens["attention_mask"],
        "text_index": torch.tensor([[distinct.index(t) for t in column] for column in texts]),
        "text_mask": text_mask,
        "text_ids": ids.masked_fill(~text_mask, -1),
        "labels": (torch.rand(batch, labels, generator=generator) > 0.85).float(),
    }
    return {key: value.to(device) for key, value in out.items()}


def step_fn(model, loss_fn, optimizer, batch, device: torch.device, bf16: bool):
    train_step = TrainStep(model, loss_fn, IMAGENET_MEAN, IMAGENET_STD, torch.bfloat16 if bf16 else None).to(device)

    def step() -> None:
        train_step(batch)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def timed(step, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def compare(vision: str, text: str | None, batch: int, image_size: int, steps: int, device: torch.device, bf16: bool):
    """{kind: (median step seconds, peak bytes)} with clip and mgll steps interleaved."""
    data = synthetic_batch(batch, image_size, 14, device)
    runs = {}
    for kind in ("clip", "mgll"):
        torch.manual_seed(0)
        model, _ = build_model(vision, text, 256, image_size=image_size)
        model.to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        runs[kind] = step_fn(model, MGLLLoss(kind=kind, gather=False), optimizer, data, device, bf16)
    for step in runs.values():
        step()
        step()
    times = {kind: [] for kind in runs}
    peaks = {}
    for _ in range(steps):
        for kind, step in runs.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            times[kind].append(timed(step, device))
            peaks[kind] = torch.cuda.max_memory_allocated() if device.type == "cuda" else 0
    return {kind: (statistics.median(times[kind]), peaks[kind]) for kind in runs}


def loss_only(batch: int, granularities: int, labels: int, steps: int, device: torch.device) -> dict[str, float]:
    """The loss alone (forward + backward on fixed embeddings): the part MGLL adds, without tower noise."""
    generator = torch.Generator().manual_seed(0)
    image = (
        torch.nn.functional.normalize(torch.randn(batch, 256, generator=generator), dim=-1).to(device).requires_grad_()
    )
    text = (
        torch.nn.functional.normalize(torch.randn(granularities, batch, 256, generator=generator), dim=-1)
        .to(device)
        .requires_grad_()
    )
    mask = (torch.rand(granularities, batch, generator=generator) > 0.1).to(device)
    ids = torch.randint(0, 6, (granularities, batch), generator=generator).to(device)
    multi_hot = (torch.rand(batch, labels, generator=generator) > 0.85).float().to(device)
    scale = torch.tensor(14.3, device=device)
    out = {}
    for kind in ("clip", "mgll"):
        loss_fn = MGLLLoss(kind=kind, gather=False)

        def step(loss_fn: MGLLLoss = loss_fn) -> None:
            loss_fn(image, text, mask, multi_hot, ids, scale)["loss"].backward()

        step()
        out[kind] = statistics.median(timed(step, device) for _ in range(steps))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny text tower, fewer steps")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is steadiest on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    text = "tiny" if args.quick else None
    steps = 4 if args.quick else args.steps
    rows = []
    result = compare("tiny", text, args.batch, 64, steps, cpu, bf16=False)
    label = f"CPU tiny ViT + {'tiny text' if args.quick else 'MiniLM'}, batch {args.batch}, fp32"
    rows.append((label, result))
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        rows.append(
            ("CUDA ViT-B/16 + MiniLM, batch 256, bf16", compare("vit-b16", None, 256, 224, steps, gpu, bf16=True))
        )
    print(f"\n{'setup':52} {'loss':5} {'step ms':>9} {'samples/s':>10} {'peak MiB':>9} {'x clip':>7}")
    for label, result in rows:
        batch = 256 if label.startswith("CUDA") else args.batch
        base = result["clip"][0]
        for kind, (seconds, peak) in result.items():
            print(
                f"{label:52} {kind:5} {seconds * 1e3:9.1f} {batch / seconds:10.1f} {peak / 2**20:9.0f} "
                f"{seconds / base:7.3f}"
            )
    for device in [cpu] + ([torch.device("cuda")] if torch.cuda.is_available() else []):
        for batch in (args.batch, 256):
            alone = loss_only(batch, 3, 14, 10 if args.quick else 30, device)
            print(
                f"{f'loss alone ({device.type}), batch {batch}, K=3, L=14':52} {'mgll':5} {alone['mgll'] * 1e3:9.2f} "
                f"{'':>10} {'':>9} {alone['mgll'] / alone['clip']:7.3f}   (clip {alone['clip'] * 1e3:.2f} ms)"
            )


if __name__ == "__main__":
    main()
