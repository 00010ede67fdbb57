"""Rank/world helpers and an all-gather that carries gradients, for the contrastive losses.

A contrastive loss needs every rank's features as columns (negatives and soft positives live on other
GPUs), while each rank only back-propagates through its own rows. Two facts shape this module:

* `torch.distributed.all_gather` cuts the graph, so gathered columns would get no gradient and the loss
  would silently train on half its signal. `gather_rows(..., with_grad=True)` returns the other ranks'
  rows with a backward that sums every rank's gradient for a row and hands it to the rank that owns it.
* The last batch of an epoch is often uneven across ranks, and a plain all_gather demands equal shapes.
  Rows are padded to the largest local batch for the collective and trimmed afterwards, so callers can
  pass whatever batch they have.

The backward uses all_reduce (every backend has it; gloo has no reduce_scatter). Contrastive features
are small (N x D), so the extra traffic over a reduce_scatter is negligible next to the towers.

Everything degrades to a no-op in a single process, so the loss and the trainer use one code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job; rank 0 of world 1 when not distributed."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group that `torchrun` describes through RANK / WORLD_SIZE / LOCAL_RANK.

    Without those variables (plain `python`, a notebook, a test) this returns a single-process DistInfo
    and initialises nothing, so a trainer can call it unconditionally. The backend defaults to nccl
    when CUDA is usable and gloo otherwise; each rank is pinned to GPU LOCAL_RANK so that collectives
    do not all land on GPU 0.
    """
    env_world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if env_world <= 1:
        return DistInfo(rank=0, world_size=1, local_rank=0, device=device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend or ("nccl" if use_cuda else "gloo"))
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, device=device)


def all_gather_objects(obj: object) -> list:
    """Every rank's `obj` (any picklable value) in rank order; `[obj]` in a single process."""
    if not is_distributed():
        return [obj]
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, obj)
    return parts


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Average a detached metric over ranks, for logging the same number on every rank."""
    value = value.detach().clone()
    if is_distributed():
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value


def gathered_sizes(local_rows: int, device: torch.device) -> list[int]:
    """Every rank's row count, in rank order (one tiny collective)."""
    if not is_distributed():
        return [local_rows]
    mine = torch.tensor([local_rows], dtype=torch.int64, device=device)
    sizes = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, mine)
    return [int(s.item()) for s in sizes]


def _pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    if x.shape[0] == rows:
        return x.contiguous()
    pad = x.new_zeros((rows - x.shape[0], *x.shape[1:]))
    return torch.cat([x, pad], dim=0).contiguous()


def _all_gather_padded(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    longest = max(sizes)
    padded = _pad_rows(x, longest)
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes)], dim=0)


class _GatherRowsWithGrad(torch.autograd.Function):
    """all_gather forward; backward sums every rank's gradient and keeps this rank's rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: list[int], offset: int) -> torch.Tensor:  # type: ignore[override]
        ctx.offset = offset
        ctx.rows = x.shape[0]
        return _all_gather_padded(x, sizes)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.offset : ctx.offset + ctx.rows], None, None


def gather_rows(
    x: torch.Tensor, *, with_grad: bool, sizes: list[int] | None = None
) -> tuple[torch.Tensor, int]:
    """Concatenate every rank's `x` along dim 0; return it with this rank's first row index in it.

    With `with_grad=True` the result is differentiable: the gradient that reaches this rank's `x` is
    the sum, over all ranks, of the gradients their losses put on these rows. That is the gradient of
    the SUM of the per-rank losses; DDP then divides parameter gradients by the world size, so the
    trainer effectively minimises the mean of the per-rank losses.

    `sizes` (from `gathered_sizes`) may be passed to save a collective when several tensors with the
    same row count are gathered. In a single process this returns `(x, 0)` unchanged.
    """
    if not is_distributed():
        return x, 0
    if sizes is None:
        sizes = gathered_sizes(x.shape[0], x.device)
    me = dist.get_rank()
    if sizes[me] != x.shape[0]:
        raise ValueError(f"gather_rows: this rank has {x.shape[0]} rows but sizes say {sizes[me]}")
    offset = sum(sizes[:me])
    if with_grad:
        return _GatherRowsWithGrad.apply(x, sizes, offset), offset
    with torch.no_grad():
        return _all_gather_padded(x, sizes), offset


def parse_device(name: str) -> torch.device:
    """A user's --device value (cpu, cuda, cuda:N) as a torch device; ValueError with a one-line message
    for a name torch does not know or CUDA asked for on a machine without it. 'auto' is the caller's."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asked for CUDA but no GPU is available")
    return device
