"""The Ray engine on a local single-node Ray: order, and a crashing input costs only itself."""

from pathlib import Path

import pytest

from mgll_data.pipeline import load_pipeline
from mgll_data.process import BuildContext
from mgll_data.records import SourceItem
from tests.test_engines import CRASH_ON, echo_stage

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray


def test_ray_engine_keeps_order_and_isolates_a_crash(tmp_path: Path):
    from mgll_data.engines.ray_engine import make_ray_engine

    ctx = BuildContext(export_root=tmp_path, pipeline=load_pipeline("mimic-cxr"), salt=b"s" * 32)
    items = [SourceItem(image_path=f"{i}.dcm") for i in range(12)]
    items.insert(5, SourceItem(image_path=CRASH_ON))
    run = make_ray_engine(batch_size=4, progress=False)
    outcomes = list(run(items, ctx, 2, stage=echo_stage))
    assert len(outcomes) == len(items)
    rows = [o.row["path"] for o in outcomes if o.row]
    assert sorted(rows) == sorted(f"{i}.dcm" for i in range(12)), "the crashed block's other inputs are retried"
    crashed = [o for o in outcomes if o.reject]
    assert [o.reject.reason for o in crashed] == ["worker-crashed"]
    assert crashed[0].linkage["source_path"] == CRASH_ON
