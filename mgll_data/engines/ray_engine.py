"""Ray Data engine: the same per-input stage, scheduled over a Ray cluster.

Inputs are spread over an actor pool (`map_batches` with a callable class, so each actor loads the report
pipeline once). Order is preserved and outcomes stream back to the driver, where the same writer as the
local engine writes them, so both engines produce identical datasets and resume the same way. A block
whose task keeps failing (a worker killed by a decoder crash, after Ray's retries) is dropped by Ray
(`max_errored_blocks=-1`); its inputs come back as `worker-crashed` rejects, never as a lost row.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from mgll_data.engines.common import Stage, crash_outcome
from mgll_data.process import BuildContext, process_item
from mgll_data.records import Outcome, SourceItem

BATCH_SIZE = 8


class _StageActor:
    def __init__(self, ctx: BuildContext, stage: Stage):
        self.ctx, self.stage = ctx, stage

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outcomes = [pickle.dumps(self.stage(pickle.loads(blob), self.ctx)) for blob in batch["item"]]
        return {"index": batch["index"], "outcome": np.array(outcomes, dtype=object)}


def _map(
    ray: Any, items: dict[int, SourceItem], ctx: BuildContext, stage: Stage, workers: int, batch_size: int
) -> Iterator[tuple[int, Outcome]]:
    """One Ray Data pass; inputs of blocks that failed after retries are simply absent from the output."""
    blocks = max(1, -(-len(items) // batch_size))
    rows = [{"index": index, "item": pickle.dumps(item)} for index, item in items.items()]
    dataset = ray.data.from_items(rows, override_num_blocks=blocks)
    mapped = dataset.map_batches(
        _StageActor,
        fn_constructor_args=(ctx, stage),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(workers, blocks)),
        max_restarts=-1,
        max_task_retries=2,
    )
    for batch in mapped.iter_batches(batch_size=None, batch_format="numpy"):
        for index, blob in zip(batch["index"], batch["outcome"]):
            yield int(index), pickle.loads(blob)


def make_ray_engine(address: str | None = None, batch_size: int = BATCH_SIZE, progress: bool = True):
    try:
        import ray
    except ImportError:
        raise ImportError("--engine ray needs Ray: pip install 'mgll[ray]'") from None

    def run_ray(
        items: Iterable[SourceItem], ctx: BuildContext, workers: int, stage: Stage = process_item
    ) -> Iterator[Outcome]:
        missing = dict(enumerate(items))
        if not missing:
            return
        started_here = not ray.is_initialized()
        if started_here:
            init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
            if address:
                init["address"] = address
            else:
                init["num_cpus"] = workers
            ray.init(**init)
        try:
            data_ctx = ray.data.DataContext.get_current()
            data_ctx.execution_options.preserve_order = True
            data_ctx.max_errored_blocks = -1
            data_ctx.enable_progress_bars = progress
            for size in (batch_size, 1):
                for index, outcome in _map(ray, missing, ctx, stage, workers, size):
                    del missing[index]
                    yield outcome
                if not missing:
                    break
            for item in missing.values():
                yield crash_outcome(item, ctx)
        finally:
            if started_here:
                ray.shutdown()

    return run_ray
