"""One training micro-step as a single module: batch pixels -> normalised images -> both towers -> loss.

Keeping the whole forward in one `nn.Module` is what lets `torch.compile` capture it as one graph
(the batch's rotation, jitter and normalisation fuse with the vision stem, the loss with the projections) and lets DDP
wrap exactly what runs. Nothing in it branches on tensor values or reads a value back to Python, so
it compiles without graph breaks and never waits for the GPU (tests/test_step.py checks both on CPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mgll_train.config import TrainConfig
from mgll_train.loss import MGLLLoss
from mgll_train.model import MGLLModel
from mgll_train.transform import finish_batch

# What a batch must carry onto the device for the step; the rest (ids, positions) stays on the host.
STEP_KEYS = ("pixels", "views", "labels", "input_ids", "attention_mask", "text_index", "text_mask", "text_ids")
# and what it carries when the dataset has it: per-granularity items (schema 1.3)
OPTIONAL_STEP_KEYS = ("items",)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """bf16 autocast on CUDA by default, or wherever bf16 is asked for; fp32 otherwise."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


class TrainStep(nn.Module):
    """forward(batch) -> the loss terms ({"loss", ...} scalar tensors) of one micro-batch."""

    def __init__(
        self,
        model: MGLLModel,
        loss_fn: MGLLLoss,
        mean: Sequence[float],
        std: Sequence[float],
        autocast: torch.dtype | None = None,
        augment: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.autocast = autocast
        self.augment = augment
        # Plain attributes, not buffers: DDP would broadcast buffers on every forward.
        self.mean = torch.tensor(tuple(mean), dtype=torch.float32)
        self.std = torch.tensor(tuple(std), dtype=torch.float32)

    def _apply(self, fn, recurse=True):
        self.mean, self.std = fn(self.mean), fn(self.std)
        return super()._apply(fn, recurse)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pixels = finish_batch(batch["pixels"], batch["views"], self.mean, self.std, rotate=self.augment)
        device_type = pixels.device.type
        cast = torch.autocast(device_type=device_type, dtype=self.autocast) if self.autocast else nullcontext()
        with cast:
            image_emb, text_emb, scale = self.model(
                pixels, batch["input_ids"], batch["attention_mask"], batch["text_index"], batch["text_mask"]
            )
        return self.loss_fn(
            image_emb.float(),
            text_emb.float(),
            batch["text_mask"],
            step_items(batch),
            batch["text_ids"],
            scale.float(),
            self.model.logit_bias,
        )


def step_items(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """What the loss builds targets from: the dataset's per-granularity items [K, N, M] when it has them,
    else the labels [N, L] (which the loss gives to its label levels)."""
    return batch["items"] if "items" in batch else batch["labels"]


def build_step(
    model: MGLLModel,
    config: TrainConfig,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device,
    local_rank: int,
    world: int,
    levels: Sequence[bool] | None = None,
) -> nn.Module:
    """The micro-step for a run's config, on its device, DDP-wrapped across ranks and compiled when asked.
    `levels`: which granularities take the batch's labels as their items (loss.label_levels)."""
    loss_fn = MGLLLoss(config.alpha_clip, config.alpha_point, config.alpha_kl, kind=config.loss, gather=world > 1,
                       label_levels=levels, instance_weight=config.instance_weight)  # fmt: skip
    step: nn.Module = TrainStep(
        model, loss_fn, mean, std, autocast_dtype(device, config.precision), augment=config.augment
    )
    step.to(device)
    if world > 1:
        step = DistributedDataParallel(step, device_ids=[local_rank] if device.type == "cuda" else None)
    if config.compile:
        step = torch.compile(step)
    return step


def to_device(batch: dict, device: torch.device) -> dict[str, torch.Tensor]:
    """The step's tensors on the device; non-blocking, so a pinned batch copies while the GPU works."""
    keys = STEP_KEYS + tuple(k for k in OPTIONAL_STEP_KEYS if k in batch)
    return {key: batch[key].to(device, non_blocking=True) for key in keys}
