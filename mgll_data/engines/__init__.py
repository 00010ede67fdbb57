"""Engines schedule the per-input stage (`mgll_data.process.process_item`); they never transform data.

Each engine maps an iterable of `SourceItem`s to `Outcome`s in input order, so every engine writes the
same rows in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from mgll_data.process import BuildContext
from mgll_data.records import Outcome, SourceItem

ENGINES = ("local", "ray")


class Engine(Protocol):
    def __call__(self, items: Iterable[SourceItem], ctx: BuildContext, workers: int) -> Iterator[Outcome]: ...


def get_engine(name: str, **options: object) -> Engine:
    if name == "local":
        from mgll_data.engines.local import run_local

        return run_local
    if name == "ray":
        from mgll_data.engines.ray_engine import make_ray_engine

        return make_ray_engine(**options)
    raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
