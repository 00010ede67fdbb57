"""`mgll build --engine ray` on a local single-node Ray equals the local engine's dataset."""

from pathlib import Path

import pytest

from mgll_data.build import build_dataset
from tests.test_build import _rows, built, export, salt  # noqa: F401  (module-scoped fixtures)

pytest.importorskip("ray")
pytestmark = pytest.mark.ray


def test_ray_build_equals_local_build(export, built, salt, tmp_path: Path):  # noqa: F811  (the imported fixtures, by name)
    local_out, local_summary = built
    out = tmp_path / "ray-ds"
    summary = build_dataset(export, out, "mimic-cxr", salt_file=salt, engine="ray", workers=2,
                            engine_options={"progress": False}, progress=False)
    assert (summary.rows, summary.rejects, summary.inputs) == (
        local_summary.rows,
        local_summary.rejects,
        local_summary.inputs,
    )
    assert _rows(out) == _rows(local_out), "same image_ids, same bytes, same rows, same order"
    again = build_dataset(export, out, "mimic-cxr", salt_file=salt, engine="ray", workers=2,
                          engine_options={"progress": False}, progress=False)
    assert again.skipped == summary.inputs and again.processed == 0
