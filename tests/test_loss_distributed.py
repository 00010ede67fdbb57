"""Two gloo processes give the same MGLL loss and DDP gradients as one process holding the whole batch.

Each rank owns a different number of rows (the uneven last batch of an epoch), per-granularity items and
identical texts span both ranks, a per-granularity logit bias trains, and some texts are masked, so a
wrong offset, a dropped gradient through the gather or a per-rank instead of global normalisation would
all show up as a mismatch.
"""

import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from mgll_train import distributed
from mgll_train.loss import MGLLLoss

WORLD = 2
ROWS_PER_RANK = (5, 4)
K, D_IN, D, L = 3, 12, 8, 4


class _Towers(nn.Module):
    """Two linear "towers" and a temperature: the smallest model whose weights see every loss path."""

    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Linear(D_IN, D)
        self.text = nn.Linear(D_IN, D)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07), dtype=torch.float64))
        self.logit_bias = nn.Parameter(torch.tensor([-1.0, -0.5, 0.3], dtype=torch.float64))

    def forward(self, image_x, text_x):
        return F.normalize(self.image(image_x), dim=-1), F.normalize(self.text(text_x), dim=-1)


def _inputs():
    g = torch.Generator().manual_seed(0)
    n = sum(ROWS_PER_RANK)
    items = (torch.rand(K, n, L, generator=g) > 0.6).double()  # each granularity its own items
    items[:, [1, 6]] = 0  # rows without items on both ranks ...
    mask = torch.rand(K, n, generator=g) > 0.2
    ids = torch.randint(0, 3, (K, n), generator=g)  # ... matching through identical texts across ranks
    ids[~mask] = -1
    torch.manual_seed(1)
    return dict(
        model_state=_Towers().double().state_dict(),
        image_x=torch.randn(n, D_IN, generator=g, dtype=torch.float64),
        text_x=torch.randn(K, n, D_IN, generator=g, dtype=torch.float64),
        text_mask=mask,
        items=items,
        text_ids=ids,
    )


def _loss_and_grads(model, inputs, rows, loss_fn):
    image_x = inputs["image_x"][rows].clone().requires_grad_(True)
    img, txt = model(image_x, inputs["text_x"][:, rows])
    towers = model.module if hasattr(model, "module") else model
    out = loss_fn(img, txt, inputs["text_mask"][:, rows], inputs["items"][:, rows], inputs["text_ids"][:, rows],
                  towers.logit_scale.exp().clamp(max=100), towers.logit_bias)
    out["loss"].backward()
    return out, image_x.grad


def _worker(rank, port, inputs, result_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = distributed.init_distributed(backend="gloo")
    try:
        start = sum(ROWS_PER_RANK[:rank])
        rows = slice(start, start + ROWS_PER_RANK[rank])
        model = _Towers().double()
        model.load_state_dict(inputs["model_state"])
        ddp = nn.parallel.DistributedDataParallel(model)
        out, input_grad = _loss_and_grads(ddp, inputs, rows, MGLLLoss())

        gathered, offset = distributed.gather_rows(torch.full((ROWS_PER_RANK[rank], 2), float(rank)), with_grad=False)
        local_only = MGLLLoss(gather=False)(
            *model(inputs["image_x"][rows], inputs["text_x"][:, rows]), inputs["text_mask"][:, rows],
            inputs["items"][:, rows], inputs["text_ids"][:, rows], model.logit_scale.exp().clamp(max=100),
            model.logit_bias,
        )
        torch.save(
            dict(
                info=(info.rank, info.world_size, info.is_main, distributed.rank(), distributed.world_size()),
                terms={name: value.detach() for name, value in out.items()},
                mean_loss=distributed.all_reduce_mean(out["loss"]),
                param_grads={name: p.grad.clone() for name, p in model.named_parameters()},
                input_grad=input_grad,
                gathered=gathered,
                offset=offset,
                local_only=local_only["loss"].detach(),
            ),
            os.path.join(result_dir, f"rank{rank}.pt"),
        )
        dist.barrier()  # nobody tears the group down while a peer still talks to it
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# the tests that use it are marked slow: it spawns two gloo processes (about 10 s)
@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    result_dir = tmp_path_factory.mktemp("ranks")
    inputs = _inputs()
    mp.spawn(_worker, args=(_free_port(), inputs, str(result_dir)), nprocs=WORLD, join=True)
    results = [torch.load(result_dir / f"rank{r}.pt") for r in range(WORLD)]
    return inputs, results


def _full_batch(inputs, loss_fn=None):
    model = _Towers().double()
    model.load_state_dict(inputs["model_state"])
    out, input_grad = _loss_and_grads(model, inputs, slice(None), loss_fn or MGLLLoss())
    return out, {name: p.grad for name, p in model.named_parameters()}, input_grad


@pytest.mark.slow
def test_per_rank_losses_average_to_the_full_batch_loss(two_ranks):
    inputs, results = two_ranks
    full, _, _ = _full_batch(inputs)
    for name in ("loss", "soft_clip", "point", "skl"):
        mean = sum(r["terms"][name] for r in results) / WORLD
        assert torch.allclose(mean, full[name].detach(), rtol=1e-10, atol=1e-12), name
    for r in results:
        assert torch.allclose(r["mean_loss"], full["loss"].detach(), rtol=1e-10)
    assert not torch.allclose(results[0]["terms"]["loss"], results[1]["terms"]["loss"])  # really split


@pytest.mark.slow
def test_ddp_parameter_gradients_equal_the_full_batch_gradients(two_ranks):
    inputs, results = two_ranks
    _, full_grads, _ = _full_batch(inputs)
    for name, grad in full_grads.items():
        assert torch.count_nonzero(grad) > 0, name
        for r in results:
            assert torch.allclose(r["param_grads"][name], grad, rtol=1e-8, atol=1e-12), (name, r["info"])


@pytest.mark.slow
def test_input_gradients_are_the_full_batch_ones_times_world_size(two_ranks):
    # The gather's backward sums every rank's gradient for a row (the gradient of the SUM of per-rank
    # losses); DDP's averaging divides parameter gradients by the world size, inputs see the raw sum.
    inputs, results = two_ranks
    _, _, full_input_grad = _full_batch(inputs)
    per_rank = torch.cat([r["input_grad"] for r in results]) / WORLD
    assert torch.allclose(per_rank, full_input_grad, rtol=1e-8, atol=1e-12)


@pytest.mark.slow
def test_gather_false_computes_each_rank_on_its_own_rows(two_ranks):
    inputs, results = two_ranks
    for rank, r in enumerate(results):
        start = sum(ROWS_PER_RANK[:rank])
        local = {key: value for key, value in inputs.items() if key != "model_state"}
        local.update(
            image_x=inputs["image_x"][start : start + ROWS_PER_RANK[rank]],
            text_x=inputs["text_x"][:, start : start + ROWS_PER_RANK[rank]],
            text_mask=inputs["text_mask"][:, start : start + ROWS_PER_RANK[rank]],
            items=inputs["items"][:, start : start + ROWS_PER_RANK[rank]],
            text_ids=inputs["text_ids"][:, start : start + ROWS_PER_RANK[rank]],
        )
        alone, _, _ = _full_batch(dict(local, model_state=inputs["model_state"]))
        assert torch.allclose(r["local_only"], alone["loss"].detach())


@pytest.mark.slow
def test_rank_helpers_and_uneven_gather(two_ranks):
    _, results = two_ranks
    assert [r["info"] for r in results] == [(0, 2, True, 0, 2), (1, 2, False, 1, 2)]
    expected = torch.tensor([[0.0, 0.0]] * ROWS_PER_RANK[0] + [[1.0, 1.0]] * ROWS_PER_RANK[1])
    for r in results:
        assert torch.equal(r["gathered"], expected)
    assert [r["offset"] for r in results] == [0, ROWS_PER_RANK[0]]


def test_single_process_helpers_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = distributed.init_distributed()
    assert (info.rank, info.world_size, info.is_main) == (0, 1, True)
    assert not distributed.is_distributed() and distributed.world_size() == 1 and distributed.is_main_process()
    x = torch.arange(6.0).reshape(3, 2)
    gathered, offset = distributed.gather_rows(x, with_grad=True)
    assert gathered is x and offset == 0
    assert distributed.gathered_sizes(3, x.device) == [3]
    assert torch.equal(distributed.all_reduce_mean(torch.tensor(2.5)), torch.tensor(2.5))
