"""The pretraining loop: AdamW + warmup/cosine, bf16 autocast on CUDA, gradient accumulation and
checkpointing, optional torch.compile, DDP under torchrun, exact resume.

Training is counted in optimizer steps, not epochs: `--epochs` is turned into a step count up front and
the data stream never ends, so every DDP rank stops at the same step and none can wait forever on a
rank that ran out of rows.

What `--resume` restores exactly: weights, optimizer and scheduler state, the step counter, rank 0's
torch/numpy/python RNG streams, and the data position (each loader worker skips the rows it already
handed out; augmentation is seeded per sample, so the skipped rows need no decoding). With the same
`--workers`, a resumed CPU run therefore reproduces the uninterrupted run; other ranks reseed from
(seed, rank, step), and a changed worker count resumes at the right row count but in another order.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from mgll_train import distributed
from mgll_train.checkpoint import (
    CheckpointError,
    find_checkpoint,
    load_training_state,
    load_weights,
    save_run,
    save_tokenizer,
    set_rng_state,
)
from mgll_train.config import DEFAULT_EXCLUDED_GRANULARITIES, TrainConfig, save_config
from mgll_train.data import Collator, DatasetInfo, ParquetImageText, build_loader, open_dataset, split_counts
from mgll_train.loss import MGLLLoss, label_levels
from mgll_train.model import MAX_LOGIT_SCALE, build_model, count_parameters, parameter_groups, unwrap


class TrainError(Exception):
    """A run that cannot start or continue (message is one line)."""


@dataclass
class TrainSummary:
    run_dir: str
    start_step: int
    steps: int
    samples: int
    seconds: float
    samples_per_second: float
    first_loss: float | None
    last_loss: float | None
    corrupt_images: int
    checkpoint: str
    device: str
    world_size: int
    parameters: int
    losses: list[float]

    def to_dict(self, with_losses: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not with_losses:
            data.pop("losses")
        return data


class WarmupCosine:
    """Linear warmup to the base lr, then cosine decay to `min_ratio` of it at `total` steps.

    A class rather than a closure so LambdaLR's state_dict carries its settings.
    """

    def __init__(self, warmup: int, total: int, min_ratio: float = 0.0) -> None:
        self.warmup = warmup
        self.total = total
        self.min_ratio = min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def resolve_granularities(requested: list[str] | None, available: tuple[str, ...]) -> list[str]:
    """The text granularities to train on, in the dataset's coarse-to-fine order.

    Default: the dataset's own, minus modality / study / series (near-constant strings within one source,
    so useless as contrastive targets); all of them if that would leave none.
    """
    if requested:
        missing = [g for g in requested if g not in available]
        if missing:
            raise TrainError(
                f"the dataset has no text column for granularities {missing}; it has {', '.join(available)}"
            )
        return [g for g in available if g in requested]
    chosen = [g for g in available if g not in DEFAULT_EXCLUDED_GRANULARITIES]
    if not chosen and not available:
        raise TrainError("the dataset declares no text granularities; rebuild it with a pipeline that has some")
    return chosen or list(available)


def resolve_device(name: str, dist_info: distributed.DistInfo) -> torch.device:
    if name == "auto":
        return dist_info.device
    try:
        device = distributed.parse_device(name)
    except ValueError as exc:
        raise TrainError(str(exc)) from None
    if device.type == "cuda" and dist_info.world_size > 1:
        return dist_info.device
    return device


def total_steps(config: TrainConfig, split_rows: int, world_size: int) -> int:
    if config.max_steps:
        return int(config.max_steps)
    per_step = config.batch_size * config.grad_accum * world_size
    return int(config.epochs or 1) * max(1, split_rows // per_step)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _autocast(device: torch.device, precision: str):
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def _check_out_dir(run_dir: Path, resume: bool) -> None:
    if not resume and (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("step-*")):
        raise TrainError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")


def _run_record(
    config: TrainConfig, info: DatasetInfo, granularities: list[str], image_cfg: dict[str, Any], steps: int, warmup: int
) -> dict[str, Any]:
    """The flat config stored with every checkpoint: what evaluation needs to rebuild inputs like training."""
    record = config.to_dict()
    record.pop("extra", None)
    record.update(
        granularities=granularities,
        label_vocabulary=list(info.vocabulary),
        dataset_fingerprint=info.fingerprint,
        dataset_pipeline=info.pipeline,
        schema_version=info.schema_version,
        image_size=config.image_size,
        mean=image_cfg["mean"],
        std=image_cfg["std"],
        tokenizer_dir=image_cfg["tokenizer_dir"],
        total_steps=steps,
        warmup_steps=warmup,
    )
    return record


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop lines logged after the checkpoint a run resumes from, so metrics.jsonl has each step once."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and json.loads(line)["step"] <= last_step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _gather_positions(positions: dict[int, int], world: int) -> dict[int, int]:
    """Every rank's data-stream positions (slots are global, so the dicts do not overlap)."""
    if world == 1:
        return dict(positions)
    parts: list[dict[int, int] | None] = [None] * world
    torch.distributed.all_gather_object(parts, positions)
    return {slot: pos for part in parts for slot, pos in (part or {}).items()}


def _gather_ids(ids: set[str], world: int) -> set[str]:
    if world == 1:
        return ids
    parts: list[set[str] | None] = [None] * world
    torch.distributed.all_gather_object(parts, ids)
    return set().union(*(p or set() for p in parts))


def _batch_to(batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    keys = ("pixel_values", "labels", "input_ids", "attention_mask", "text_mask", "text_ids")
    return {k: batch[k].to(device, non_blocking=True) for k in keys}


@dataclass
class StreamState:
    """What the loop learns from the batches it consumes: the data position per slot and corrupt image ids."""

    positions: dict[int, int] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)


class MetricsLog:
    """Per-step terms averaged over ranks and log windows, written to metrics.jsonl, TensorBoard and the bar.

    Terms stay on the device between flushes so a step never waits for a GPU sync just to log.
    """

    def __init__(self, run_dir: Path | None, steps: int, start_step: int, samples_per_step: int, progress: bool) -> None:
        self.file = (run_dir / "metrics.jsonl").open("a", encoding="utf-8") if run_dir else None
        self.board = _tensorboard(run_dir) if run_dir else None
        self.bar = tqdm(total=steps, initial=start_step, unit="step", file=sys.stderr, disable=not progress, dynamic_ncols=True)
        self.samples_per_step = samples_per_step
        self.window: list[dict[str, torch.Tensor]] = []
        self.window_start = time.perf_counter()
        self.losses: list[float] = []

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        self.window.append(terms)
        self.bar.update(1)

    def flush(self, step: int, extra: dict[str, float]) -> None:
        means = {k: distributed.all_reduce_mean(torch.stack([w[k] for w in self.window]).float()) for k in self.window[0]}
        step_losses = means["loss"].tolist()
        if not all(math.isfinite(v) for v in step_losses):
            raise TrainError(f"the loss became non-finite by step {step}; lower --lr or check the data")
        self.losses.extend(step_losses)
        rate = len(self.window) * self.samples_per_step / max(time.perf_counter() - self.window_start, 1e-9)
        entry = {"step": step, **{k: float(v.mean()) for k, v in means.items()}, **extra, "samples_per_second": rate}
        if self.file:
            self.file.write(json.dumps(entry) + "\n")
            self.file.flush()
        if self.board:
            for key, value in entry.items():
                if key != "step":
                    self.board.add_scalar(f"train/{key}", value, step)
        self.bar.set_postfix(loss=f"{entry['loss']:.4f}", samples_s=f"{rate:.1f}")
        self.window, self.window_start = [], time.perf_counter()

    def close(self) -> None:
        self.bar.close()
        if self.file:
            self.file.close()
        if self.board:
            self.board.close()


def _accumulate_gradients(
    trained: torch.nn.Module,
    loss_fn: MGLLLoss,
    data_iter,
    stream: StreamState,
    config: TrainConfig,
    device: torch.device,
    world: int,
) -> dict[str, torch.Tensor]:
    """Forward and backward `grad_accum` micro-batches (DDP syncs gradients on the last only); the mean terms."""
    terms: dict[str, torch.Tensor] = {}
    for micro in range(config.grad_accum):
        try:
            batch = next(data_iter)
        except StopIteration:
            raise TrainError(
                f"the {config.split} split yielded no decodable images for this worker "
                f"({len(stream.corrupt)} corrupt); check the data with `mgll validate --full`"
            ) from None
        stream.corrupt.update(batch["corrupt"])
        stream.positions.update(batch["positions"])
        tensors = _batch_to(batch, device)
        sync = trained.no_sync() if world > 1 and micro < config.grad_accum - 1 else nullcontext()
        with sync:
            with _autocast(device, config.precision):
                image_emb, text_emb, scale = trained(
                    tensors["pixel_values"], tensors["input_ids"], tensors["attention_mask"], tensors["text_mask"]
                )
            out = loss_fn(
                image_emb.float(), text_emb.float(), tensors["text_mask"], tensors["labels"], tensors["text_ids"],
                scale.float(), unwrap(trained).logit_bias,
            )
            (out["loss"] / config.grad_accum).backward()
        for key, value in out.items():
            terms[key] = terms.get(key, 0.0) + value.detach() / config.grad_accum
    return terms


def _restore(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    steps: int,
    config: TrainConfig,
    dist_info: distributed.DistInfo,
    echo: Callable[[str], None],
) -> tuple[int, dict[str, Any] | None, dict[int, int]]:
    """Load the latest checkpoint into model/optimizer/scheduler: (step, RNG state for this rank, data positions).

    The schedule keeps its warmup but stretches its cosine to the new `steps`, so `--max-steps` can grow.
    """
    try:
        checkpoint = find_checkpoint(run_dir)
    except CheckpointError:
        echo(f"no checkpoint in {run_dir} yet; starting from step 0")
        return 0, None, {}
    device = next(model.parameters()).device
    load_weights(model, checkpoint, device)
    state = load_training_state(checkpoint, map_location=device)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scheduler.lr_lambdas[0].total = steps
    start_step = int(state["step"])
    if start_step >= steps:
        raise TrainError(f"the run is already at step {start_step}; raise --max-steps above it to continue")
    positions: dict[int, int] = {}
    if (state["extra"].get("workers"), state["extra"].get("world_size")) == (config.workers, dist_info.world_size):
        positions = {int(k): int(v) for k, v in state["extra"].get("positions", {}).items()}
    else:
        echo("note: --workers or the number of ranks changed; the data order after resume differs")
    return start_step, state["rng"] if dist_info.rank == 0 else None, positions


def _text_lr_scale(config: TrainConfig, image_cfg: dict[str, Any]) -> float:
    if config.text_lr_scale is not None:
        return float(config.text_lr_scale)
    return 0.1 if image_cfg.get("text_pretrained") else 1.0


def _start_logit_bias(model: torch.nn.Module, loss_fn: MGLLLoss, data_iter, device: torch.device):
    """Set the point-wise logit bias to the log-odds of the first batch's targets (averaged over ranks),
    as SigLIP starts its bias at the prior; the batch is then trained on as usual."""
    first = next(data_iter, None)
    if first is None:
        return data_iter
    prior = loss_fn.bias_prior(first["labels"], first["text_ids"], first["text_mask"]).to(device)
    with torch.no_grad():
        model.logit_bias.copy_(distributed.all_reduce_mean(prior))
    return itertools.chain([first], data_iter)


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> TrainSummary:
    """Train `config.model` on `config.dataset` into `config.out`; returns what happened, for the summary."""
    run_dir = Path(config.out)
    dist_info = distributed.init_distributed()
    rank, world = dist_info.rank, dist_info.world_size
    device = resolve_device(config.device, dist_info)
    _check_out_dir(run_dir, resume)

    info = open_dataset(Path(config.dataset))
    granularities = resolve_granularities(config.granularities, info.granularities)
    split_rows = split_counts(info).get(config.split, 0)
    if split_rows == 0:
        raise TrainError(f"the dataset has no rows in split {config.split!r}; choose another --split")
    steps = total_steps(config, split_rows, world)
    warmup = config.warmup_steps if config.warmup_steps is not None else max(1, steps // 20)

    _seed_everything(config.seed + rank)
    levels = len(granularities) if config.loss == "mgll" else 0
    model, image_cfg = build_model(
        config.model, config.text_model, config.embed_dim, image_size=config.image_size, text_levels=levels
    )
    if config.grad_checkpointing:
        model.set_grad_checkpointing(True)
    if config.freeze_text:
        model.text.requires_grad_(False)
    model.to(device)
    optimizer = torch.optim.AdamW(
        parameter_groups(model, config.weight_decay, config.lr, config.lr * _text_lr_scale(config, image_cfg)),
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup, steps, config.min_lr_ratio))

    start_step, rng_to_restore, positions = 0, None, {}
    if resume:
        start_step, rng_to_restore, positions = _restore(run_dir, model, optimizer, scheduler, steps, config, dist_info, echo)
        warmup = scheduler.lr_lambdas[0].warmup

    record = _run_record(config, info, granularities, image_cfg, steps, warmup)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        _truncate_metrics(run_dir / "metrics.jsonl", start_step)
        save_config(config, {"resolved": record}, run_dir / "config.yaml")
        save_tokenizer(run_dir, image_cfg["tokenizer_dir"])

    loss_fn = MGLLLoss(
        config.alpha_clip, config.alpha_point, config.alpha_kl, kind=config.loss, gather=world > 1,
        label_levels=label_levels(granularities),
    )  # fmt: skip
    inner = unwrap(model)
    trained: torch.nn.Module = model
    if world > 1:
        trained = DistributedDataParallel(model, device_ids=[dist_info.local_rank] if device.type == "cuda" else None)
    if config.compile:
        trained = torch.compile(trained)

    dataset = ParquetImageText(
        info,
        granularities,
        image_size=config.image_size,
        split=config.split,
        train=config.augment,
        shuffle_buffer=config.shuffle_buffer,
        seed=config.seed,
        rank=rank,
        world_size=world,
        resume_batches=start_step * config.grad_accum,
        resume_positions=positions,
        batch_size=config.batch_size,
        mean=image_cfg["mean"],
        std=image_cfg["std"],
    )
    loader = build_loader(
        dataset,
        Collator(image_cfg["tokenizer_dir"], config.max_text_tokens),
        batch_size=config.batch_size,
        workers=config.workers,
        pin_memory=device.type == "cuda",
    )

    is_main = rank == 0
    samples_per_step = config.batch_size * config.grad_accum * world
    if is_main:
        echo(
            f"pretraining {config.model} + {config.text_model or 'MiniLM'} ({count_parameters(inner) / 1e6:.1f}M params) "
            f"with {config.loss} on {split_rows} {config.split} rows, granularities {', '.join(granularities)}; "
            f"steps {start_step}->{steps}, {samples_per_step} samples/step, device {device}"
            + (f", {world} ranks" if world > 1 else "")
        )
    log = MetricsLog(run_dir if is_main else None, steps, start_step, samples_per_step, progress and is_main)
    stream = StreamState(positions=positions)
    checkpoint_path = ""
    started = time.perf_counter()
    data_iter = iter(loader)  # draws the loader's base seed from torch's RNG, so restore the RNG after it
    if start_step == 0 and inner.logit_bias is not None:
        data_iter = _start_logit_bias(inner, loss_fn, data_iter, device)
    if rng_to_restore is not None:
        set_rng_state(rng_to_restore)
    elif resume and start_step:
        _seed_everything(config.seed + 1_000_003 * rank + start_step)
    try:
        for step in range(start_step + 1, steps + 1):
            terms = _accumulate_gradients(trained, loss_fn, data_iter, stream, config, device, world)
            if config.grad_clip > 0:
                terms["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip).detach()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                inner.logit_scale.clamp_(0.0, math.log(MAX_LOGIT_SCALE))
            log.add(terms)
            if step % config.log_every == 0 or step == steps or step == start_step + 1:
                extra = {
                    "lr": scheduler.get_last_lr()[0],
                    "logit_scale": float(inner.clamped_logit_scale().detach()),
                    "corrupt_images": len(stream.corrupt),
                }
                log.flush(step, extra)
            if step % config.save_every == 0 or step == steps:
                all_positions = _gather_positions(stream.positions, world)
                if is_main:
                    extra_state = {"workers": config.workers, "world_size": world, "positions": all_positions}
                    saved = save_run(run_dir, model, optimizer, scheduler, step, record, extra_state, keep=config.keep_checkpoints)
                    checkpoint_path = str(saved)
                if world > 1:
                    torch.distributed.barrier()
    finally:
        log.close()
        del data_iter

    seconds = time.perf_counter() - started
    corrupt_total = len(_gather_ids(stream.corrupt, world))
    done = steps - start_step
    return TrainSummary(
        run_dir=str(run_dir),
        start_step=start_step,
        steps=steps,
        samples=done * samples_per_step,
        seconds=round(seconds, 3),
        samples_per_second=round(done * samples_per_step / max(seconds, 1e-9), 2),
        first_loss=log.losses[0] if log.losses else None,
        last_loss=log.losses[-1] if log.losses else None,
        corrupt_images=corrupt_total,
        checkpoint=checkpoint_path,
        device=str(device),
        world_size=world,
        parameters=count_parameters(inner),
        losses=log.losses,
    )
