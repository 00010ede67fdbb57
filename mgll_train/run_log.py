"""What the training loop reports while it runs: metrics.jsonl, TensorBoard, the progress bar, and the
bookkeeping of the rows it consumed (data positions for an exact resume, corrupt images and their cap);
and what a run reports when it ends (`TrainSummary`).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mgll_train import distributed

# A run stops on corrupt images only when their count would be this unlikely under the allowed share.
CORRUPT_TEST_LEVEL = 1e-3
# Off a terminal, progress is a plain line at most this often (mgll_data.progress's interval and format:
# this package may not import it).
LINE_INTERVAL_S = 30.0


@dataclass
class TrainSummary:
    """What a finished `train` call did: what `mgll pretrain` prints and writes with --json."""

    run_dir: str
    start_step: int
    steps: int
    samples: int
    seconds: float
    samples_per_second: float
    first_step_seconds: float | None  # from the call to the end of the first optimizer step
    first_loss: float | None  # the first metrics.jsonl entry's loss
    last_loss: float | None  # the last metrics.jsonl entry's loss (a mean over its log window)
    last_loss_steps: tuple[int, int] | None  # the steps that last entry averages
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

    def summary_lines(self) -> list[str]:
        """The end of a run as `mgll pretrain` prints it (and `mgll demo run` after its pretrain step)."""
        ranks = f" x{self.world_size}" if self.world_size > 1 else ""
        first_step = f"{self.first_step_seconds:.1f}s" if self.first_step_seconds is not None else "-"
        lines = [f"trained steps {self.start_step}->{self.steps} on {self.device}{ranks}: {self.samples} samples in "
                 f"{self.seconds:.1f}s ({self.samples_per_second:.1f} samples/s, first step after {first_step}); "
                 f"{self._loss_line()}"]
        if self.corrupt_images:
            lines.append(f"skipped {self.corrupt_images} corrupt images (check with `mgll validate --full`)")
        lines.append(f"checkpoint: {self.checkpoint}")
        return lines

    def _loss_line(self) -> str:
        """The first and last losses exactly as metrics.jsonl and the progress bar show them."""
        if self.first_loss is None or self.last_loss_steps is None:
            return "no loss logged"
        first_step, last_step = self.last_loss_steps
        window = f"step {last_step}" if first_step == last_step else f"mean of steps {first_step}-{last_step}"
        return f"loss {self.first_loss:.4f} (step {self.start_step + 1}) -> {self.last_loss:.4f} ({window})"



class StopRun(Exception):
    """The loop must stop: the loss became non-finite or too many images do not decode (one-line message)."""


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def corrupt_beyond_cap(corrupt: int, read: int, cap: float, level: float = CORRUPT_TEST_LEVEL) -> bool:
    """True when `corrupt` undecodable images among `read` would have probability < `level` if at most
    `cap` of the split were corrupt (a one-sided binomial test). So one bad image early on never stops a
    run, while a mostly broken split stops at its first logged step."""
    if corrupt <= 0:
        return False
    if cap <= 0.0:
        return True
    if cap >= 1.0 or read <= 0:
        return False
    read = max(read, corrupt)
    log_choose = math.lgamma(read + 1)
    below = sum(
        math.exp(
            log_choose
            - math.lgamma(i + 1)
            - math.lgamma(read - i + 1)
            + i * math.log(cap)
            + (read - i) * math.log1p(-cap)
        )
        for i in range(corrupt)
    )
    return 1.0 - below < level


@dataclass
class StreamState:
    """What the loop learns from the batches it consumes: the data position per loader slot, the ids of
    corrupt images and how many rows were read (decoded or not)."""

    positions: dict[int, int] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)
    read: int = 0

    def consume(self, batch: dict[str, Any]) -> None:
        self.corrupt.update(batch["corrupt"])
        self.positions.update(batch["positions"])
        self.read += len(batch["image_ids"]) + len(batch["corrupt"])

    def all_positions(self) -> dict[int, int]:
        """Every rank's positions (slots are global, so the dicts do not overlap); collective under DDP."""
        return {slot: pos for part in distributed.all_gather_objects(self.positions) for slot, pos in part.items()}

    def all_corrupt(self) -> set[str]:
        return set().union(*distributed.all_gather_objects(self.corrupt))

    def check_corrupt(self, split_rows: int, cap: float) -> None:
        """StopRun when the corrupt share over all ranks is, beyond reasonable doubt, above `cap`. Collective
        under DDP (every rank must take the same decision), so call it on every rank at the same step."""
        counts = torch.tensor([float(len(self.corrupt)), float(self.read)], dtype=torch.float64)
        corrupt, read = (distributed.all_reduce_mean(counts) * distributed.world_size()).tolist()
        distinct = min(int(read), split_rows)
        if corrupt_beyond_cap(int(corrupt), distinct, cap):
            raise StopRun(
                f"{int(corrupt)} of the {distinct} images read so far do not decode, more than "
                f"--max-corrupt-fraction {cap:g} allows; check the data with `mgll validate --full`"
            )


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop lines logged after the checkpoint a run resumes from, so metrics.jsonl has each step once."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= last_step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


@dataclass
class LogEntry:
    first_step: int
    step: int
    values: dict[str, float]


class MetricsLog:
    """Per-step terms averaged over ranks and log windows, written to metrics.jsonl, TensorBoard and the bar.

    Terms stay on the device between flushes so a step never waits for a GPU sync just to log. The first
    and last entries are kept: the end-of-run summary reports exactly what metrics.jsonl and the bar show.
    The bar is drawn only on a terminal; anywhere else (a log file, CI) a logged step becomes a plain line
    at most every LINE_INTERVAL_S seconds, and the last one always does, so a log holds no carriage returns.
    """

    def __init__(
        self, run_dir: Path | None, steps: int, start_step: int, samples_per_step: int, progress: bool
    ) -> None:
        self.file = (run_dir / "metrics.jsonl").open("a", encoding="utf-8") if run_dir else None
        self.board = _tensorboard(run_dir) if run_dir else None
        self.bar = tqdm(total=steps, initial=start_step, unit="step", file=sys.stderr,
                        disable=None if progress else True, dynamic_ncols=True)
        self.lines = progress and self.bar.disable
        self.steps = steps
        self.started = self.last_line = time.perf_counter()
        self.line_step: int | None = None
        self.samples_per_step = samples_per_step
        self.window: list[dict[str, torch.Tensor]] = []
        self.window_start = time.perf_counter()
        self.window_first_step = start_step + 1
        self.losses: list[float] = []
        self.first: LogEntry | None = None
        self.last: LogEntry | None = None

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        self.window.append(terms)
        self.bar.update(1)

    def flush(self, step: int, extra: dict[str, float]) -> None:
        means = {
            k: distributed.all_reduce_mean(torch.stack([w[k] for w in self.window]).float()) for k in self.window[0]
        }
        step_losses = means["loss"].tolist()
        if not all(math.isfinite(v) for v in step_losses):
            raise StopRun(f"the loss became non-finite by step {step}; lower --lr or check the data")
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
        self.last = LogEntry(self.window_first_step, step, entry)
        self.first = self.first or self.last
        self.window, self.window_start, self.window_first_step = [], time.perf_counter(), step + 1
        if self.lines and time.perf_counter() - self.last_line >= LINE_INTERVAL_S:
            self._line()

    def _line(self) -> None:
        """`pretrain: 40/200 step (20%), 00:12 elapsed, loss 2.1234, 49.3 samples/s`: the last logged step."""
        assert self.last is not None
        step, values = self.last.step, self.last.values
        elapsed = tqdm.format_interval(time.perf_counter() - self.started)
        print(f"pretrain: {step}/{self.steps} step ({step / max(self.steps, 1):.0%}), {elapsed} elapsed, "
              f"loss {values['loss']:.4f}, {values['samples_per_second']:.1f} samples/s", file=sys.stderr, flush=True)
        self.last_line, self.line_step = time.perf_counter(), step

    def close(self) -> None:
        if self.lines and self.last is not None and self.line_step != self.last.step:
            self._line()
        self.bar.close()
        if self.file:
            self.file.close()
        if self.board:
            self.board.close()
