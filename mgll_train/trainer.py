"""The pretraining loop: AdamW + warmup/cosine, bf16 autocast on CUDA, gradient accumulation and
checkpointing, optional torch.compile, DDP under torchrun, exact resume.

Training is counted in optimizer steps, not epochs: `--epochs` is turned into a step count up front and
the data stream never ends, so every DDP rank stops at the same step and none can wait forever on a
rank that ran out of rows.

Start-up is ordered so the first step comes early: the checkpoint to resume from is chosen first (it
holds the data position), then the loader workers start, and the model is built while they decode
their first batches. Nothing reads the whole dataset before step 1.

What `--resume` restores exactly: weights, optimizer and scheduler state, the step counter, rank 0's
torch/numpy/python RNG streams, and the data position (each loader worker skips the rows it already
handed out; augmentation is seeded per sample, so the skipped rows need no decoding). With the same
`--workers`, a resumed CPU run therefore reproduces the uninterrupted run; other ranks reseed from
(seed, rank, step), and a changed worker count resumes at the right row count but in another order.
A damaged newest checkpoint is skipped with a warning (checkpoint.load_newest_intact).
"""

from __future__ import annotations

import contextlib
import itertools
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mgll_train import distributed
from mgll_train.checkpoint import (
    TOKENIZER_DIR,
    load_newest_intact,
    load_training_state,
    load_weights,
    readable_weights,
    save_tokenizer,
    set_rng_state,
)
from mgll_train.config import (
    DEFAULT_EXCLUDED_GRANULARITIES,
    RUN_CONFIG_FILE,
    TrainConfig,
    holds_a_run_config,
    save_config,
)
from mgll_train.data import DatasetInfo, image_column, open_dataset, split_counts
from mgll_train.loop import Loop, next_batch
from mgll_train.loss import label_levels, logit_bias_prior
from mgll_train.model import (
    build_model,
    count_parameters,
    load_tokenizer,
    parameter_groups,
    tokenizer_folder,
)
from mgll_train.run_lock import RUN_LOCK_FILE, run_lock
from mgll_train.run_log import MetricsLog, StopRun, StreamState, TrainSummary, truncate_metrics
from mgll_train.schedule import WarmupCosine
from mgll_train.step import build_step, step_items
from mgll_train.stream import Collator, ParquetImageText, TextTokens, build_loader


class TrainError(Exception):
    """A run that cannot start or continue (message is one line)."""


@dataclass
class Plan:
    """What the dataset and the config decide before anything is built."""

    info: DatasetInfo
    granularities: list[str]
    split_rows: int
    steps: int
    warmup: int
    image_column: str


@dataclass
class Resume:
    """The checkpoint a resumed run continues from, with its training state already read."""

    checkpoint: Path
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])


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


def _check_out_dir(run_dir: Path, resume: bool) -> None:
    """Write only into a new or empty folder or an earlier run: a person's folder keeps its files (a run
    writes config.yaml, metrics.jsonl, checkpoints/ ... and would replace theirs of the same name)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainError(f"--out {run_dir} is a file; give a folder for the run")
    if run_dir.is_dir() and any(p.name != RUN_LOCK_FILE for p in run_dir.iterdir()) and not holds_a_run_config(run_dir):
        raise TrainError(f"{run_dir} is not empty and holds no mgll run (no {RUN_CONFIG_FILE} that mgll pretrain "
                         "wrote); choose a new or empty --out")
    if not resume and (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("step-*")):
        raise TrainError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")


def _plan(config: TrainConfig, world: int) -> Plan:
    info = open_dataset(Path(config.dataset))
    granularities = resolve_granularities(config.granularities, info.granularities)
    split_rows = split_counts(info).get(config.split, 0)
    if split_rows == 0:
        raise TrainError(f"the dataset has no rows in split {config.split!r}; choose another --split")
    steps = total_steps(config, split_rows, world)
    warmup = config.warmup_steps if config.warmup_steps is not None else max(1, steps // 20)
    return Plan(info, granularities, split_rows, steps, warmup, image_column(info, config.image_column))


def _find_resume(run_dir: Path, steps: int, echo: Callable[[str], None]) -> Resume | None:
    """The newest checkpoint whose checksums hold and whose files load; damaged ones are skipped aloud."""
    if not any((run_dir / "checkpoints").glob("step-*")):
        echo(f"no checkpoint in {run_dir} yet; starting from step 0")
        return None

    def load(checkpoint: Path) -> Resume:
        readable_weights(checkpoint)
        return Resume(checkpoint, load_training_state(checkpoint))

    resume = load_newest_intact(run_dir, load, echo)
    if resume.step >= steps:
        raise TrainError(f"the run is already at step {resume.step}; raise --max-steps above it to continue")
    return resume


def _resume_positions(
    resume: Resume | None, config: TrainConfig, world: int, echo: Callable[[str], None]
) -> dict[int, int]:
    if resume is None:
        return {}
    extra = resume.state["extra"]
    if (extra.get("workers"), extra.get("world_size")) == (config.workers, world):
        return {int(k): int(v) for k, v in extra.get("positions", {}).items()}
    echo("note: --workers or the number of ranks changed; the data order after resume differs")
    return {}


def _start_loader(
    config: TrainConfig,
    plan: Plan,
    dist_info: distributed.DistInfo,
    device: torch.device,
    start_step: int,
    positions: dict[int, int],
) -> Iterator:
    """The batch iterator, with its workers already started (they decode while the model is built)."""
    tokens = TextTokens(partial(load_tokenizer, tokenizer_folder(config.text_model)), config.max_text_tokens)
    dataset = ParquetImageText(
        plan.info,
        plan.granularities,
        image_size=config.image_size,
        tokens=tokens,
        image_column=plan.image_column,
        split=config.split,
        train=config.augment,
        shuffle_buffer=config.shuffle_buffer,
        seed=config.seed,
        rank=dist_info.rank,
        world_size=dist_info.world_size,
        resume_batches=start_step * config.grad_accum,
        resume_positions=positions,
        batch_size=config.batch_size,
    )
    loader = build_loader(
        dataset,
        Collator(tokens.pad_id, items=len(plan.info.item_vocabulary)),
        batch_size=config.batch_size,
        workers=config.workers,
        pin_memory=device.type == "cuda",
    )
    return iter(loader)


def _text_lr_scale(config: TrainConfig, image_cfg: dict[str, Any]) -> float:
    if config.text_lr_scale is not None:
        return float(config.text_lr_scale)
    return 0.1 if image_cfg.get("text_pretrained") else 1.0


def _build(config: TrainConfig, plan: Plan, device: torch.device, resume: Resume | None, echo):
    """(model, image settings, optimizer, scheduler), restored from `resume` when given."""
    levels = len(plan.granularities) if config.loss == "mgll" else 0  # one point-wise logit bias per level
    model, image_cfg = build_model(
        config.model, config.text_model, config.embed_dim, image_size=config.image_size, text_levels=levels
    )
    if config.grad_checkpointing:
        model.set_grad_checkpointing(True)
    if config.freeze_text:
        model.text.requires_grad_(False)
    model.to(device)
    groups = parameter_groups(model, config.weight_decay, config.lr, config.lr * _text_lr_scale(config, image_cfg))
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.98), eps=1e-6)
    schedule = WarmupCosine(plan.warmup, plan.steps, config.min_lr_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    if resume is not None:
        load_weights(model, resume.checkpoint, device)
        optimizer.load_state_dict(resume.state["optimizer"])
        scheduler.load_state_dict(resume.state["scheduler"])
        change = schedule.replan(resume.step, plan.steps)
        if change:
            echo(f"schedule: {change}")
        plan.warmup = schedule.warmup
    return model, image_cfg, optimizer, scheduler


def _run_record(config: TrainConfig, plan: Plan, image_cfg: dict[str, Any]) -> dict[str, Any]:
    """The flat config stored with every checkpoint: what evaluation needs to rebuild inputs like training."""
    record = config.to_dict()
    record.pop("extra", None)
    record.update(
        granularities=plan.granularities,
        label_vocabulary=list(plan.info.vocabulary),
        dataset_fingerprint=plan.info.fingerprint,
        trained_on_column=plan.image_column,
        dataset_pipeline=plan.info.pipeline,
        schema_version=plan.info.schema_version,
        mean=image_cfg["mean"],
        std=image_cfg["std"],
        tokenizer_dir=TOKENIZER_DIR,  # the run's own copy, relative to the run folder
        total_steps=plan.steps,
        warmup_steps=plan.warmup,
    )
    return record


def _write_run_files(run_dir: Path, config: TrainConfig, record: dict[str, Any], start_step: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    truncate_metrics(run_dir / "metrics.jsonl", start_step)
    save_config(config, record, run_dir / RUN_CONFIG_FILE)
    save_tokenizer(run_dir, tokenizer_folder(config.text_model))


def _start_logit_bias(
    model, batches: Iterator, granularities: list[str], split: str, device: torch.device, instance_weight: float
) -> Iterator:
    """Set the point-wise logit bias to the log-odds of the first batch's targets (averaged over ranks), as
    SigLIP starts its bias at the prior; that batch is then trained on as usual."""
    try:
        first = next_batch(batches, StreamState(), split)  # a scratch state: the loop records the batch itself
    except StopRun as exc:
        raise TrainError(str(exc)) from None
    prior = logit_bias_prior(step_items(first), first["text_ids"], first["text_mask"], label_levels(granularities),
                             instance_weight)  # fmt: skip
    with torch.no_grad():
        model.logit_bias.copy_(distributed.all_reduce_mean(prior.to(device)))
    return itertools.chain([first], batches)


def _restore_rng(resume: Resume | None, config: TrainConfig, rank: int) -> None:
    if resume is None:
        return
    if rank == 0:
        set_rng_state(resume.state["rng"])
    else:
        _seed_everything(config.seed + 1_000_003 * rank + resume.step)


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> TrainSummary:
    """Train `config.model` on `config.dataset` into `config.out`; returns what happened, for the summary."""
    entered = time.perf_counter()
    run_dir = Path(config.out)
    dist_info = distributed.init_distributed()
    _check_out_dir(run_dir, resume)
    # one run at a time: the main rank holds the folder's lock before the run reads or writes anything there
    with run_lock(run_dir) if dist_info.is_main else contextlib.nullcontext():
        return _train(config, run_dir, dist_info, entered, resume, progress, echo)


def _train(config: TrainConfig, run_dir: Path, dist_info: distributed.DistInfo, entered: float, resume: bool,
           progress: bool, echo: Callable[[str], None]) -> TrainSummary:
    device = resolve_device(config.device, dist_info)
    plan = _plan(config, dist_info.world_size)
    resumed = _find_resume(run_dir, plan.steps, echo) if resume else None
    start_step = resumed.step if resumed else 0
    positions = _resume_positions(resumed, config, dist_info.world_size, echo)
    batches = _start_loader(config, plan, dist_info, device, start_step, positions)
    _seed_everything(config.seed + dist_info.rank)  # after the loader drew its base seed
    model, image_cfg, optimizer, scheduler = _build(config, plan, device, resumed, echo)
    if resumed is None and model.logit_bias is not None:
        batches = _start_logit_bias(model, batches, plan.granularities, config.split, device, config.instance_weight)
    record = _run_record(config, plan, image_cfg)
    if dist_info.is_main:
        _write_run_files(run_dir, config, record, start_step)
    step_fn = build_step(model, config, image_cfg["mean"], image_cfg["std"], device, dist_info.local_rank,
                         dist_info.world_size, levels=label_levels(plan.granularities))  # fmt: skip
    loop = Loop(config, model, optimizer, scheduler, step_fn, batches, device, dist_info.world_size, dist_info.is_main,
                run_dir, record, plan.steps, plan.split_rows)  # fmt: skip
    if dist_info.is_main:
        echo(
            f"pretraining {config.model} + {config.text_model or 'minilm'} "
            f"({count_parameters(model) / 1e6:.1f}M params) "
            f"with {config.loss} on {plan.split_rows} {config.split} rows ({plan.image_column}), "
            f"granularities {', '.join(plan.granularities)}; "
            f"steps {start_step}->{plan.steps}, {loop.samples_per_step} samples/step, device {device}"
            + (f", {dist_info.world_size} ranks" if dist_info.world_size > 1 else "")
        )
    log = MetricsLog(run_dir if dist_info.is_main else None, plan.steps, start_step, loop.samples_per_step,
                     progress and dist_info.is_main)
    stream = StreamState(positions=dict(positions))
    _restore_rng(resumed, config, dist_info.rank)
    started = time.perf_counter()
    try:
        first_step_seconds = loop.run(start_step, stream, log, entered)
    except StopRun as exc:
        raise TrainError(str(exc)) from None
    finally:
        log.close()
        del batches, loop.batches  # stops the loader workers
    return _summary(
        run_dir, plan, start_step, stream, log, loop, time.perf_counter() - started, first_step_seconds, device, model
    )


def _summary(run_dir, plan, start_step, stream, log, loop, seconds, first_step_seconds, device, model) -> TrainSummary:
    corrupt = stream.all_corrupt()
    done = plan.steps - start_step
    first, last = log.first, log.last
    return TrainSummary(
        run_dir=str(run_dir),
        start_step=start_step,
        steps=plan.steps,
        samples=done * loop.samples_per_step,
        seconds=round(seconds, 3),
        samples_per_second=round(done * loop.samples_per_step / max(seconds, 1e-9), 2),
        first_step_seconds=round(first_step_seconds, 3) if first_step_seconds is not None else None,
        first_loss=first.values["loss"] if first else None,
        last_loss=last.values["loss"] if last else None,
        last_loss_steps=(last.first_step, last.step) if last else None,
        corrupt_images=len(corrupt),
        checkpoint=loop.checkpoint,
        device=str(device),
        world_size=loop.world,
        parameters=count_parameters(model),
        losses=log.losses,
    )
