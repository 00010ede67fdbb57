"""Is the GPU fed? The training step alone, the loader alone and `mgll pretrain` end to end, in one run.

Baseline: the step alone (forward + backward + optimizer on one batch of the dataset, loaded once and
kept on the device, so its texts and sizes are those the end-to-end run sees), measured in the same run.
Goal (issue 11, on an H200 with 16 loader workers, ViT-B/16 + MiniLM, batch 256, bf16): end to end >= 0.95x
the step alone. Also printed: the loader alone (its workers, batches copied to the device), the time to the
first optimizer step, the whole run's rate including start-up, and peak memory (GPU: max allocated; CPU: the
process's peak RSS).

    python bench/bench_gpu.py --dataset DIR                   # CUDA: ViT-B/16 + MiniLM, batch 256, bf16, 16 workers
    python bench/bench_gpu.py --dataset DIR --compile         # the same with torch.compile (warm-up reported)
    python bench/bench_gpu.py --toy                           # CPU: tiny towers on fixture data (CI, `make bench`)

Without --dataset it builds the demo export (--studies) first; with image.training_format: jpeg in
--pipeline the loader reads the JPEG training copy.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from mgll_train.config import DEFAULT_IMAGE_SIZE, TrainConfig
from mgll_train.data import image_column, open_dataset
from mgll_train.loss import MGLLLoss
from mgll_train.model import build_model, load_tokenizer, parameter_groups, tokenizer_folder
from mgll_train.step import TrainStep, autocast_dtype, to_device
from mgll_train.stream import Collator, ParquetImageText, TextTokens, build_loader
from mgll_train.trainer import resolve_granularities, train


@dataclass
class Setup:
    device: torch.device
    model: str
    text_model: str
    batch: int
    image_size: int
    precision: str
    workers: int
    steps: int
    warmup: int
    compile: bool


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def _loader(setup: Setup, dataset: Path, workers: int):
    info = open_dataset(dataset)
    tokens = TextTokens(partial(load_tokenizer, tokenizer_folder(setup.text_model)), 128)
    stream = ParquetImageText(
        info, resolve_granularities(None, info.granularities), image_size=setup.image_size, tokens=tokens,
        image_column=image_column(info), batch_size=setup.batch,
    )  # fmt: skip
    return build_loader(
        stream, Collator(tokens.pad_id), batch_size=setup.batch, workers=workers, pin_memory=setup.device.type == "cuda"
    )


def step_alone(setup: Setup, dataset: Path) -> dict[str, dict[str, float]]:
    """Samples/s of the optimizer step on one batch kept on the device: eager, and compiled when asked, the
    two interleaved step by step on the same weights (so machine load hits both alike); first_step_s is
    the first call, for the compiled step its warm-up."""
    batch = to_device(next(iter(_loader(setup, dataset, workers=0))), setup.device)
    torch.manual_seed(0)
    model, cfg = build_model(setup.model, setup.text_model, 256, image_size=setup.image_size)
    model.to(setup.device).train()
    step = TrainStep(
        model, MGLLLoss(gather=False), cfg["mean"], cfg["std"], autocast_dtype(setup.device, setup.precision)
    ).to(setup.device)
    runs = {"eager": step, **({"compiled": torch.compile(step)} if setup.compile else {})}
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.2, lr=1e-5))

    def timed(run) -> float:
        _sync(setup.device)
        start = time.perf_counter()
        run(batch)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(setup.device)
        return time.perf_counter() - start

    _reset_peak(setup.device)
    first = {name: timed(run) for name, run in runs.items()}
    for _ in range(setup.warmup):
        for run in runs.values():
            timed(run)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(setup.steps):
        for name, run in runs.items():
            times[name].append(timed(run))
    peak = _peak_gib(setup.device)
    return {
        name: {
            "samples_per_second": setup.batch / statistics.median(times[name]),
            "first_step_s": first[name],
            "peak_gib": peak,
        }
        for name in runs
    }


def loader_alone(setup: Setup, dataset: Path, batches: int) -> dict[str, float]:
    """Samples/s of the trainer's loader with its workers, each batch copied to the device (pinned, non-blocking)."""
    start = time.perf_counter()
    iterator = iter(_loader(setup, dataset, setup.workers))
    to_device(next(iterator), setup.device)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(batches):
        to_device(next(iterator), setup.device)
    _sync(setup.device)
    rate = batches * setup.batch / (time.perf_counter() - start)
    del iterator
    return {"samples_per_second": rate, "first_batch_s": first, "per_worker": rate / max(1, setup.workers)}


def end_to_end(setup: Setup, dataset: Path, out: Path) -> dict[str, float]:
    """`mgll pretrain` (the library call it makes): whole-run and steady-state samples/s from metrics.jsonl."""
    steps = setup.warmup + setup.steps
    config = TrainConfig(
        dataset=str(dataset), out=str(out), model=setup.model, text_model=setup.text_model, batch_size=setup.batch,
        image_size=setup.image_size, precision=setup.precision, workers=setup.workers, max_steps=steps,
        compile=setup.compile, log_every=10, save_every=10**9, device=str(setup.device),
    )  # fmt: skip
    gc.collect()  # the step-alone model must not count in this run's peak memory
    _reset_peak(setup.device)
    started = time.perf_counter()
    summary = train(config, progress=False, echo=lambda line: None)
    whole = time.perf_counter() - started
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steady = [r["samples_per_second"] for r in rows if r["step"] > setup.warmup]
    return {
        "samples_per_second": statistics.median(steady),
        "whole_run_samples_per_second": summary.samples / whole,
        "first_step_s": summary.first_step_seconds,
        "peak_gib": _peak_gib(setup.device),
    }


def report(setup: Setup, parts: dict[str, dict[str, float]]) -> None:
    base = parts["step alone"]["samples_per_second"]
    memory = "GPU GiB (max allocated)" if setup.device.type == "cuda" else "GiB peak RSS"
    print(f"\n{setup.model} + {setup.text_model}, batch {setup.batch}, {setup.image_size} px, {setup.precision}, "
          f"{setup.workers} loader workers, device {setup.device}{', compiled' if setup.compile else ''}; "
          f"{setup.steps} timed steps after {setup.warmup}")  # fmt: skip
    print(f"{'part':34} {'samples/s':>10} {'x step alone':>13} {'first step/batch s':>19} {memory:>24}")
    step, loader, e2e = parts["step alone"], parts["loader alone"], parts["end to end"]
    if "step alone, eager" in parts:
        eager = parts["step alone, eager"]
        print(f"{'step alone, eager':34} {eager['samples_per_second']:10.1f} "
              f"{eager['samples_per_second'] / base:13.2f} {eager['first_step_s']:19.2f} "
              f"{eager['peak_gib']:24.2f}")  # fmt: skip
    name = "step alone, compiled (baseline)" if setup.compile else "step alone (baseline)"
    print(f"{name:34} {base:10.1f} {1.0:13.2f} {step['first_step_s']:19.2f} {step['peak_gib']:24.2f}")
    print(f"{'loader alone':34} {loader['samples_per_second']:10.1f} {loader['samples_per_second'] / base:13.2f} "
          f"{loader['first_batch_s']:19.2f} {'':>24}")  # fmt: skip
    print(f"{'mgll pretrain, steady state':34} {e2e['samples_per_second']:10.1f} "
          f"{e2e['samples_per_second'] / base:13.2f} {e2e['first_step_s']:19.2f} {e2e['peak_gib']:24.2f}")  # fmt: skip
    print(f"{'mgll pretrain, whole run':34} {e2e['whole_run_samples_per_second']:10.1f} "
          f"{e2e['whole_run_samples_per_second'] / base:13.2f}")  # fmt: skip
    print(f"loader per worker: {loader['per_worker']:.1f} samples/s; goal: end to end >= 0.95x the step alone")


def _dataset(args, work: Path, workers: int) -> Path:
    if args.dataset:
        return args.dataset
    if args.toy:
        from tests.conftest import DatasetFactory

        return DatasetFactory().write_learnable(work / "fixture", rows=128, image_size=256, row_group_size=32)
    from mgll_data.build import build_dataset
    from mgll_data.demo import write_demo_export

    write_demo_export(work / "export", studies=args.studies, seed=0, progress=False)
    build_dataset(
        work / "export",
        work / "dataset",
        args.pipeline,
        workers=max(1, workers),
        salt_file=work / "salt",
        progress=False,
    )
    return work / "dataset"


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toy", "--quick", action="store_true", help="tiny towers on CPU fixture data")
    parser.add_argument("--dataset", type=Path, help="a built dataset (default: build the demo export)")
    parser.add_argument("--studies", type=int, default=600)
    parser.add_argument("--pipeline", default="mimic-cxr")
    parser.add_argument("--model", default=None)
    parser.add_argument("--text-model", default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (after the warm-up steps)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.toy
    setup = Setup(
        device=torch.device("cuda" if cuda else "cpu"),
        model=args.model or ("vit-b16" if cuda else "tiny"),
        text_model=args.text_model or ("minilm" if cuda else "tiny"),
        batch=args.batch or (256 if cuda else 16),
        image_size=args.image_size or (DEFAULT_IMAGE_SIZE if cuda else 64),
        precision="bf16" if cuda else "fp32",
        workers=args.workers if args.workers is not None else (16 if cuda else 2),
        steps=args.steps or (30 if cuda else 6),
        warmup=10 if cuda else 2,
        compile=args.compile,
    )
    if not cuda:
        torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dataset = _dataset(args, work, setup.workers)
        steps = step_alone(setup, dataset)
        parts = {"step alone, eager": steps["eager"]} if setup.compile else {}
        parts |= {
            "step alone": steps["compiled" if setup.compile else "eager"],
            "loader alone": loader_alone(setup, dataset, batches=setup.steps),
            "end to end": end_to_end(setup, dataset, work / "run"),
        }
    report(setup, parts)
    if args.json:
        args.json.write_text(json.dumps({"setup": {k: str(v) for k, v in vars(setup).items()}, **parts}, indent=2))
    return parts


if __name__ == "__main__":
    main()
