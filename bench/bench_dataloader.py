"""How fast the Parquet loader feeds samples, against how fast the trainer consumes them.

Baseline: the samples/s of one training step (tiny vision tower + the packaged MiniLM text tower, CPU,
same batch and image size), measured in the same run. A loader row's ratio > 1 means it keeps up
with training; the per-worker column says how many workers a given step rate needs.

    python bench/bench_dataloader.py            # 512 rows of 256 px PNGs, batch 32, image 64
    python bench/bench_dataloader.py --quick    # smaller, for `make bench`
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from mgll_train.data import Collator, ParquetImageText, build_loader, open_dataset  # noqa: E402
from mgll_train.loss import MGLLLoss  # noqa: E402
from mgll_train.model import build_model, default_text_folder  # noqa: E402
from tests.train_fixtures import write_dataset  # noqa: E402

GRANULARITIES = ["category", "disease", "description", "explanation"]


def loader_rate(info, workers: int, batch: int, image_size: int, batches: int) -> tuple[float, float]:
    """(samples/s after the first batch, seconds to the first batch)."""
    stream = ParquetImageText(info, GRANULARITIES, image_size=image_size, batch_size=batch, shuffle_buffer=256)
    loader = build_loader(stream, Collator(str(default_text_folder())), batch_size=batch, workers=workers)
    start = time.perf_counter()
    iterator = iter(loader)
    next(iterator)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    rate = batches * batch / (time.perf_counter() - start)
    del iterator
    return rate, first


def train_step_rate(info, batch: int, image_size: int, steps: int) -> float:
    stream = ParquetImageText(info, GRANULARITIES, image_size=image_size, batch_size=batch)
    batches = iter(build_loader(stream, Collator(str(default_text_folder())), batch_size=batch, workers=0))
    data = [next(batches) for _ in range(2)]
    model, _ = build_model("tiny", None, 256, image_size=image_size)
    loss_fn = MGLLLoss(gather=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for step in range(steps + 2):
        b = data[step % 2]
        start = time.perf_counter()
        image, text, scale = model(b["pixel_values"], b["input_ids"], b["attention_mask"], b["text_mask"])
        loss_fn(image, text, b["text_mask"], b["labels"], b["text_ids"], scale)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= 2:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rows and batches")
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--image-px", type=int, default=256, help="stored PNG size")
    parser.add_argument("--image-size", type=int, default=64, help="model input size")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=12)
    args = parser.parse_args()
    if args.quick:
        args.rows, args.batches, args.image_px = 192, 4, 128
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        info = open_dataset(write_dataset(Path(tmp), rows=args.rows, image_size=args.image_px, row_group_size=32))
        consume = train_step_rate(info, args.batch, args.image_size, steps=3 if args.quick else 6)
        rows = [("train step (baseline): tiny ViT + MiniLM, CPU 1 thread", consume, None, None)]
        for workers in (0, 1, 2):
            rate, first = loader_rate(info, workers, args.batch, args.image_size, args.batches)
            rows.append((f"loader, {workers} workers", rate, first, rate / max(workers, 1)))
    print(f"\nrows {args.rows}, stored {args.image_px}px PNG -> {args.image_size}px, batch {args.batch}, "
          f"4 granularities, torch threads 1, {torch.get_num_interop_threads()} interop")
    print(f"{'what':58} {'samples/s':>10} {'per worker':>11} {'1st batch s':>12} {'x train step':>13}")
    for name, rate, first, per_worker in rows:
        print(
            f"{name:58} {rate:10.1f} {'' if per_worker is None else f'{per_worker:.1f}':>11} "
            f"{'' if first is None else f'{first:.2f}':>12} {rate / consume:13.2f}"
        )


if __name__ == "__main__":
    main()
