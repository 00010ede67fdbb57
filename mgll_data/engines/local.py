"""The default engine: a local process pool with a bounded window of in-flight inputs.

The window keeps memory flat whatever the export size (at most `workers * WINDOW_PER_WORKER` rendered
images exist at once). A worker that dies (a decoder segfault, the OOM killer) breaks the pool; the
inputs that were in flight are then retried one by one in a fresh pool, and only an input that kills its
worker again becomes a reject. Workers and the fork server die with the build, even a build killed with
SIGKILL (see `lifeline`).
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from mgll_data.engines.common import Stage, crash_outcome
from mgll_data.engines.lifeline import FORK_SERVER_PRELOAD, bind_worker_to_build
from mgll_data.process import BuildContext, process_item
from mgll_data.records import Outcome, SourceItem

WINDOW_PER_WORKER = 4

_worker_ctx: BuildContext | None = None
_worker_stage: Stage | None = None


def _init_worker(ctx: BuildContext, stage: Stage) -> None:
    global _worker_ctx, _worker_stage
    bind_worker_to_build()
    _worker_ctx, _worker_stage = ctx, stage


def _work(item: SourceItem) -> Outcome:
    assert _worker_ctx is not None and _worker_stage is not None
    return _worker_stage(item, _worker_ctx)


def _mp_context() -> multiprocessing.context.BaseContext:
    """A fork server that has imported the stages once: workers (and replacement pools after a crash)
    start in milliseconds instead of re-importing spaCy and the decoders, and nothing is forked from this
    multi-threaded parent. The preload also ties the server's life to this process (see `lifeline`)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([FORK_SERVER_PRELOAD])
    return context


def _new_pool(ctx: BuildContext, workers: int, stage: Stage) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_mp_context(),
        initializer=_init_worker,
        initargs=(ctx, stage),
    )


def _isolate(item: SourceItem, ctx: BuildContext, stage: Stage) -> Outcome:
    with _new_pool(ctx, 1, stage) as pool:
        try:
            return pool.submit(_work, item).result()
        except BrokenProcessPool:
            return crash_outcome(item, ctx)


def run_local(
    items: Iterable[SourceItem], ctx: BuildContext, workers: int, stage: Stage = process_item
) -> Iterator[Outcome]:
    """Outcomes in input order. One worker runs in this process (no pool to start)."""
    if workers <= 1:
        for item in items:
            yield stage(item, ctx)
        return

    window = workers * WINDOW_PER_WORKER
    pending: deque[tuple[SourceItem, Future[Outcome]]] = deque()
    iterator = iter(items)
    pool = _new_pool(ctx, workers, stage)
    try:
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < window:
                item = next(iterator, None)
                if item is None:
                    exhausted = True
                    break
                pending.append((item, pool.submit(_work, item)))
            if not pending:
                break
            item, future = pending.popleft()
            try:
                yield future.result()
            except BrokenProcessPool:
                pool.shutdown(wait=False, cancel_futures=True)
                for stranded, _ in [(item, future), *pending]:
                    yield _isolate(stranded, ctx, stage)
                pending.clear()
                pool = _new_pool(ctx, workers, stage)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
