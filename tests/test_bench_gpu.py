"""bench/bench_gpu.py in its CPU toy mode: the three parts run and the table prints (CI keeps the CUDA
benchmark from rotting; its numbers are not asserted, timings belong to the benchmark)."""

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_toy_mode_measures_step_loader_and_end_to_end(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "bench"))
    import bench_gpu

    parts = bench_gpu.main(["--toy", "--steps", "2", "--workers", "1"])
    assert set(parts) == {"step alone", "loader alone", "end to end"}  # --compile adds "step alone, eager"
    assert all(part["samples_per_second"] > 0 for part in parts.values())
    assert parts["end to end"]["first_step_s"] > 0 and parts["end to end"]["peak_gib"] > 0
    table = capsys.readouterr().out
    assert "step alone (baseline)" in table and "mgll pretrain, steady state" in table and "x step alone" in table
    sys.modules.pop("bench_gpu", None)
