"""Does the loader cost more than the decode it cannot avoid? The Parquet loader against bare decodes.

Baselines, measured in the same run (rounds interleaved, medians): a bare Pillow decode + bilinear resize
to the model size of (a) the dataset's own stored bytes and (b) the same images as 512-px 8-bit PNG
(the archival format `mgll build` writes by default). The loader row is everything the DataLoader does
per sample: Parquet read, decode, random crop + resize, collation, tokenisation. The rest of the
augmentation (rotation, jitter) and the normalisation run on the batch on the device, inside the step;
their cost on this CPU is printed separately. Goals (issue 11): loader in one process >= 0.8x (a) and
>= 1.5x (b). Each format is measured: the archival PNG, and the same pixels as JPEG q95 (the optional
training rendition: a pipeline with `image.training_format: jpeg` stores it as the `image_train` column,
which the loader then reads; here the same encoder's bytes stand in for `image` in a copy of the dataset),
with its size and fidelity against the PNG.

    python bench/bench_dataloader.py                  # demo export (120 studies) built as 512-px PNG
    python bench/bench_dataloader.py --dataset DIR    # an existing built dataset
    python bench/bench_dataloader.py --quick          # fixture data, for `make bench`
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from mgll_data.dataset import MANIFEST_FILE, data_dir, shard_paths
from mgll_data.imaging.encode import encode
from mgll_train.config import DEFAULT_IMAGE_SIZE
from mgll_train.data import open_dataset
from mgll_train.model import default_text_folder, load_tokenizer
from mgll_train.stream import Collator, ParquetImageText, TextTokens, build_loader
from mgll_train.transform import IMAGENET_MEAN, IMAGENET_STD, finish_batch

GRANULARITIES = ["category", "disease", "description", "explanation"]


def demo_dataset(work: Path, studies: int) -> Path:
    """The demo export built with the default (mimic-cxr, 512-px PNG) pipeline."""
    from mgll_data.build import build_dataset
    from mgll_data.demo import write_demo_export

    write_demo_export(work / "export", studies=studies, seed=0, progress=False)
    build_dataset(work / "export", work / "png", "mimic-cxr", workers=2, salt_file=work / "salt", progress=False)
    return work / "png"


def transcode(dataset: Path, out: Path, fmt: str) -> Path:
    """A copy of the dataset with every image re-encoded in `fmt` by the builder's own encoder: exactly what
    a build with `image.format: <fmt>` stores for the same pixels, without rendering the export again."""
    data_dir(out).mkdir(parents=True)
    for shard in shard_paths(dataset):
        parquet = pq.ParquetFile(shard)
        table = parquet.read()
        images = table.column("image").combine_chunks()
        encoded = [encode(Image.open(io.BytesIO(b)), fmt, 95) for b in images.field("bytes").to_pylist()]
        suffix = "png" if fmt == "png" else "jpg"
        paths = [p.rsplit(".", 1)[0] + "." + suffix for p in images.field("path").to_pylist()]
        column = pa.StructArray.from_arrays(
            [pa.array(encoded, pa.binary()), pa.array(paths, pa.string())], fields=list(images.type)
        )
        table = table.set_column(table.schema.get_field_index("image"), table.schema.field("image"), column)
        rows_per_group = parquet.metadata.row_group(0).num_rows
        pq.write_table(table, data_dir(out) / shard.name, row_group_size=rows_per_group, compression="none")
    shutil.copy(dataset / MANIFEST_FILE, out / MANIFEST_FILE)
    return out


def stored_images(dataset: Path, split: str) -> list[bytes]:
    images = []
    for shard in shard_paths(dataset):
        table = pq.read_table(shard, columns=["image", "split"])
        keep = [s == split for s in table.column("split").to_pylist()]
        images += [b for b, k in zip(table.column("image").combine_chunks().field("bytes").to_pylist(), keep) if k]
    return images


def bare_rate(images: list[bytes], size: int) -> float:
    """Images/s of a bare decode + bilinear resize to size x size: the floor any loader pays."""
    start = time.perf_counter()
    for data in images:
        image = Image.open(io.BytesIO(data))
        image.load()
        image.resize((size, size), Image.Resampling.BILINEAR)
    return len(images) / (time.perf_counter() - start)


def loader_rate(dataset: Path, workers: int, batch: int, size: int, batches: int) -> float:
    """Samples/s the trainer's DataLoader delivers after its first batch."""
    tokens = TextTokens(partial(load_tokenizer, default_text_folder()), 128)
    stream = ParquetImageText(open_dataset(dataset), GRANULARITIES, image_size=size, tokens=tokens, batch_size=batch)
    iterator = iter(build_loader(stream, Collator(tokens.pad_id), batch_size=batch, workers=workers))
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    rate = batches * batch / (time.perf_counter() - start)
    del iterator
    return rate


def finish_rate(batch: int, size: int, repeats: int = 3) -> float:
    """Samples/s of the batch-side augmentation + normalisation (`finish_batch`) on this CPU, one thread."""
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (batch, 1, size, size), dtype=torch.uint8, generator=generator)
    views = torch.stack([torch.rand(batch, generator=generator) * 14 - 7, torch.ones(batch), torch.ones(batch)], 1)
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    finish_batch(pixels, views, mean, std)
    start = time.perf_counter()
    for _ in range(repeats):
        finish_batch(pixels, views, mean, std)
    return repeats * batch / (time.perf_counter() - start)


def fidelity(png: list[bytes], other: list[bytes]) -> tuple[float, float]:
    """(PSNR in dB, largest pixel error) of the re-encoded images against the lossless ones."""
    squared, count, worst = 0.0, 0, 0
    for a, b in zip(png, other):
        x = np.asarray(Image.open(io.BytesIO(a)), dtype=np.int32)
        y = np.asarray(Image.open(io.BytesIO(b)), dtype=np.int32)
        squared += float(((x - y) ** 2).sum())
        count += x.size
        worst = max(worst, int(np.abs(x - y).max()))
    mse = squared / max(count, 1)
    return (float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)), worst


def measure(variants: dict[str, Path], args) -> dict:
    """Rates (median over rounds) and ratios (median of each round's ratio: the rounds are interleaved and
    the ratio is taken between neighbouring measurements, so drifting load on a shared machine cancels)."""
    images = {name: stored_images(path, "train") for name, path in variants.items()}
    rounds = []
    for _ in range(args.rounds):
        measured = {}
        for name, path in variants.items():
            measured[f"bare {name}"] = bare_rate(images[name], args.image_size)
            measured[f"loader {name}"] = loader_rate(path, 0, args.batch, args.image_size, args.batches)
        rounds.append(measured)
    rates = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    ratios = {
        name: {
            "own": statistics.median(r[f"loader {name}"] / r[f"bare {name}"] for r in rounds),
            "png": statistics.median(r[f"loader {name}"] / r["bare png"] for r in rounds),
        }
        for name in variants
    }
    workers = {
        name: {n: loader_rate(path, n, args.batch, args.image_size, args.batches) for n in (1, 2)}
        for name, path in variants.items()
    }
    return {"rates": rates, "ratios": ratios, "workers": workers, "finish": finish_rate(args.batch, args.image_size)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fixture data (256 px PNG), fewer rounds")
    parser.add_argument("--dataset", type=Path, help="a built dataset (default: build the demo export)")
    parser.add_argument("--studies", type=int, default=120)
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.dataset:
            source = args.dataset
        elif args.quick:
            from tests.conftest import DatasetFactory

            source = DatasetFactory().write_learnable(work / "fixture", rows=96, image_size=256, row_group_size=32)
            args.rounds, args.batches = 1, 2
        else:
            source = demo_dataset(work, args.studies)
        variants = {
            "png": transcode(source, work / "as-png", "png"),
            "jpeg q95": transcode(source, work / "as-jpeg", "jpeg"),
        }
        result = measure(variants, args)
        sizes = {
            name: float(np.mean([len(b) for b in stored_images(path, "train")])) for name, path in variants.items()
        }
        psnr, worst = fidelity(stored_images(variants["png"], "train"), stored_images(variants["jpeg q95"], "train"))
    report(result, sizes, psnr, worst, args)
    if args.json:
        args.json.write_text(json.dumps({**result, "bytes": sizes, "psnr": psnr, "max_error": worst}, indent=2))
    return result


def report(result: dict, sizes: dict, psnr: float, worst: int, args) -> None:
    rates, ratios, workers = result["rates"], result["ratios"], result["workers"]
    print(f"\nstored images as built (PNG baseline: the same pixels as PNG); model input {args.image_size} px, "
          f"batch {args.batch}, 4 granularities, MiniLM tokenizer, torch threads 1; "
          f"median of {args.rounds} interleaved rounds (ratios: median of each round's ratio)")  # fmt: skip
    print(f"{'stored as':10} {'KB/img':>7} {'bare decode+resize/s':>21} {'loader 1 proc/s':>16} "
          f"{'x bare own':>11} {'x bare PNG':>15} {'per worker, 1 / 2 workers':>26}")  # fmt: skip
    for name in workers:
        loader = rates[f"loader {name}"]
        per_worker = f"{workers[name][1]:.0f} / {workers[name][2] / 2:.0f}"
        print(f"{name:10} {sizes[name] / 1024:7.0f} {rates[f'bare {name}']:21.0f} {loader:16.0f} "
              f"{ratios[name]['own']:11.2f} {ratios[name]['png']:15.2f} {per_worker:>26}")  # fmt: skip
    png_size = "256-px PNG (--quick: the goal is set for 512 px)" if args.quick else "PNG"
    print(f"goals: loader >= 0.80x its own bare decode, >= 1.50x the bare {png_size} decode; "
          f"JPEG q95 vs PNG pixels: PSNR {psnr:.1f} dB, largest error {worst}/255")  # fmt: skip
    print(f"batch side (rotation, jitter, normalisation; on the GPU in training): {result['finish']:.0f} samples/s "
          "on this CPU, one thread")  # fmt: skip


if __name__ == "__main__":
    main()
