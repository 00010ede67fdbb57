"""The optimizer-step loop of a run that `trainer.train` has set up: accumulate micro-batches, step,
log, check the corrupt-image cap, checkpoint. Nothing in a step reads a value back from the device;
the loop syncs only when it logs or saves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mgll_train.checkpoint import save_run
from mgll_train.config import TrainConfig
from mgll_train.data import DatasetError
from mgll_train.model import MAX_LOGIT_SCALE, MGLLModel
from mgll_train.run_log import MetricsLog, StopRun, StreamState
from mgll_train.step import to_device


def next_batch(batches: Iterator, stream: StreamState, split: str) -> dict[str, Any]:
    """The next batch, recorded in `stream`; StopRun (one line) when the stream ends or fails."""
    try:
        batch = next(batches)
    except StopIteration:
        raise StopRun(
            f"the {split} split yielded no decodable images for this worker ({len(stream.corrupt)} corrupt); "
            "check the data with `mgll validate --full`"
        ) from None
    except DatasetError as exc:
        # Raised inside a loader worker, the DataLoader re-raises it with the worker's traceback around it.
        raise StopRun(str(exc).strip().splitlines()[-1].split(": ", 1)[-1]) from None
    stream.consume(batch)
    return batch


@dataclass
class Loop:
    config: TrainConfig
    model: MGLLModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    step_fn: torch.nn.Module  # build_step's TrainStep, maybe DDP-wrapped and compiled
    batches: Iterator
    device: torch.device
    world: int
    is_main: bool
    run_dir: Path
    record: dict[str, Any]  # the config stored with each checkpoint
    steps: int
    split_rows: int
    checkpoint: str = ""

    @property
    def samples_per_step(self) -> int:
        return self.config.batch_size * self.config.grad_accum * self.world

    def accumulate(self, stream: StreamState) -> dict[str, torch.Tensor]:
        """Forward and backward `grad_accum` micro-batches (DDP syncs gradients on the last only); the mean terms."""
        terms: dict[str, torch.Tensor] = {}
        accum = self.config.grad_accum
        for micro in range(accum):
            batch = to_device(next_batch(self.batches, stream, self.config.split), self.device)
            no_sync = self.world > 1 and micro < accum - 1
            with self.step_fn.no_sync() if no_sync else nullcontext():
                out = self.step_fn(batch)
                (out["loss"] / accum).backward()
            for key, value in out.items():
                terms[key] = terms.get(key, 0.0) + value.detach() / accum
        return terms

    def optimizer_step(self, terms: dict[str, torch.Tensor]) -> None:
        if self.config.grad_clip > 0:
            terms["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip).detach()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.model.logit_scale.clamp_(0.0, math.log(MAX_LOGIT_SCALE))

    def save(self, step: int, stream: StreamState) -> None:
        positions = stream.all_positions()
        if self.is_main:
            extra = {"workers": self.config.workers, "world_size": self.world, "positions": positions}
            saved = save_run(
                self.run_dir,
                self.model,
                self.optimizer,
                self.scheduler,
                step,
                self.record,
                extra,
                keep=self.config.keep_checkpoints,
            )
            self.checkpoint = str(saved)
        if self.world > 1:
            torch.distributed.barrier()

    def run(self, start_step: int, stream: StreamState, log: MetricsLog, entered: float) -> float | None:
        """Steps start_step+1 .. steps; returns the seconds from `entered` to the end of the first optimizer step."""
        first_step_seconds = None
        config = self.config
        for step in range(start_step + 1, self.steps + 1):
            terms = self.accumulate(stream)
            self.optimizer_step(terms)
            first_step_seconds = first_step_seconds or time.perf_counter() - entered
            log.add(terms)
            if step % config.log_every == 0 or step == self.steps or step == start_step + 1:
                log.flush(step, {
                    "lr": self.scheduler.get_last_lr()[0],
                    "logit_scale": float(self.model.clamped_logit_scale().detach()),
                    "corrupt_images": len(stream.corrupt),
                })  # fmt: skip
                stream.check_corrupt(self.split_rows, config.max_corrupt_fraction)
            if step % config.save_every == 0 or step == self.steps:
                self.save(step, stream)
        return first_step_seconds
