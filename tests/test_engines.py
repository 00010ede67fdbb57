"""Engines only schedule: order, bounded concurrency and crash isolation, with a tiny stand-in stage."""

import os
from pathlib import Path

import pytest

from mgll_data.engines.local import run_local
from mgll_data.pipeline import load_pipeline
from mgll_data.process import BuildContext
from mgll_data.records import Outcome, SourceItem

CRASH_ON = "crash.dcm"


def echo_stage(item: SourceItem, ctx: BuildContext) -> Outcome:
    """Module-level so spawned workers can import it; kills its own process on the planted input."""
    if item.image_path.endswith(CRASH_ON):
        os._exit(3)
    return Outcome(f"key-{item.image_path}", row={"path": item.image_path, "pid": os.getpid()})


@pytest.fixture()
def ctx(tmp_path: Path) -> BuildContext:
    return BuildContext(export_root=tmp_path, pipeline=load_pipeline("mimic-cxr"), salt=b"s" * 32)


def test_single_worker_keeps_order_in_process(ctx):
    items = [SourceItem(image_path=f"{i}.dcm") for i in range(5)]
    outcomes = list(run_local(items, ctx, workers=1, stage=echo_stage))
    assert [o.row["path"] for o in outcomes] == [f"{i}.dcm" for i in range(5)]
    assert {o.row["pid"] for o in outcomes} == {os.getpid()}


def test_pool_keeps_input_order_and_uses_other_processes(ctx):
    items = [SourceItem(image_path=f"{i}.dcm") for i in range(30)]
    outcomes = list(run_local(items, ctx, workers=2, stage=echo_stage))
    assert [o.row["path"] for o in outcomes] == [f"{i}.dcm" for i in range(30)]
    assert os.getpid() not in {o.row["pid"] for o in outcomes}


def test_a_crashing_input_costs_only_itself(ctx):
    items = [SourceItem(image_path=f"{i}.dcm") for i in range(6)]
    items.insert(3, SourceItem(image_path=CRASH_ON))
    outcomes = list(run_local(items, ctx, workers=2, stage=echo_stage))
    assert len(outcomes) == len(items)
    crashed = [o for o in outcomes if o.reject is not None]
    assert len(crashed) == 1 and crashed[0].reject.reason == "worker-crashed"
    assert crashed[0].linkage["source_path"] == CRASH_ON
    assert sorted(o.row["path"] for o in outcomes if o.row) == sorted(f"{i}.dcm" for i in range(6))
