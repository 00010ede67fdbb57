"""Imaging stage throughput against its baseline, on full-size radiographs shipped in packages.

Baseline ("bare decode"): `pydicom.dcmread(f).pixel_array` + a Pillow Lanczos resize of the same files to
the same size: the least any DICOM -> training-image tool has to do. The stage adds hashing, the DICOM
grey-level chain, MONOCHROME1 handling, PNG encoding and the header copy; the goal is <= 1.3x the bare time.
Each mode runs in a process pool (warmed up first, so imports are not timed); peak RSS is measured inside
each worker with resource.getrusage. The modes are interleaved over several rounds and the medians of
per-round ratios are reported, because on a shared machine absolute times drift between runs.

    .venv/bin/python bench/bench_imaging.py            # 4 files x 4 copies, size 512
    .venv/bin/python bench/bench_imaging.py --quick    # 4 files x 1 copy
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SOURCES = [
    ("pydicom-data", "RG1_UNCR.dcm"),  # CR 1955x1841, 15-bit, MONOCHROME1, uncompressed
    ("pydicom-data", "RG3_UNCR.dcm"),  # CR 1760x1760, 10-bit, MONOCHROME1, uncompressed
    ("pydicom-data", "RG3_J2KR.dcm"),  # the same CR, JPEG 2000 lossless
    ("deid-data", "animals/cat.dcm"),  # DX 2614x3072, 12-bit, MONOCHROME2, uncompressed
]


def source_path(package: str, name: str) -> Path:
    if package == "deid-data":
        import deid_data

        return Path(deid_data.__path__[0]) / "data" / name
    import data_store

    return Path(data_store.__file__).parent / "data" / name


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bare_decode(path: str, size: int) -> tuple[int, float]:
    import pydicom
    from PIL import Image

    pixels = pydicom.dcmread(path).pixel_array
    height, width = pixels.shape[:2]
    scale = size / max(height, width)
    Image.fromarray(pixels).resize(
        (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.LANCZOS
    )
    return os.getpid(), _peak_rss_mb()


def pipeline(path: str, size: int) -> tuple[int, float]:
    from mgll_data.imaging import render_file
    from mgll_data.pipeline import ImageSettings

    render_file(Path(path), ImageSettings(size=size))
    return os.getpid(), _peak_rss_mb()


def _warm(task, path: str, size: int) -> int:
    task(path, size)
    time.sleep(0.3)  # hold this worker so the next warm-up lands on another one
    return os.getpid()


def timed_map(pool: ProcessPoolExecutor, task, files: list[str], size: int) -> dict:
    start = time.perf_counter()
    results = list(pool.map(task, files, [size] * len(files)))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": max(rss for _, rss in results)}


def warmed_pool(task, workers: int, files: list[str], size: int) -> ProcessPoolExecutor:
    """A pool that has imported everything and run `task` once per worker (its own pool per mode, so the
    peak RSS of one mode is not inherited by the next)."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    list(pool.map(_warm, [task] * workers, [files[0]] * workers, [size] * workers))
    return pool


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one copy of each file")
    parser.add_argument("--copies", type=int, default=4, help="copies of each source file (default 4)")
    parser.add_argument("--size", type=int, default=512, help="long side of the output (default 512)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported (default 3)")
    args = parser.parse_args(argv)
    copies = 1 if args.quick else args.copies
    if args.quick:
        args.rounds = 1

    with tempfile.TemporaryDirectory(prefix="mgll-bench-imaging-") as tmp:
        files = []
        for package, name in SOURCES:
            src = source_path(package, name)
            if not src.is_file():
                print(f"missing benchmark input {package}:{name}; install the dev extras", file=sys.stderr)
                return 1
            for copy in range(copies):
                dst = Path(tmp) / f"{copy:02d}-{src.name}"
                shutil.copyfile(src, dst)
                files.append(str(dst))
        files.sort()
        print(f"imaging benchmark: {len(files)} inputs ({len(SOURCES)} radiographs x {copies}), long side {args.size}, "
              f"{args.rounds} interleaved round(s), {os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f})")
        modes = ["bare decode (baseline), 1 worker", "render_file, 1 worker", "render_file, 2 workers"]
        runs: dict[str, list[dict]] = {mode: [] for mode in modes}
        with (
            warmed_pool(bare_decode, 1, files, args.size) as bare_pool,
            warmed_pool(pipeline, 1, files, args.size) as one,
            warmed_pool(pipeline, 2, files, args.size) as two,
        ):
            for _ in range(args.rounds):
                runs[modes[0]].append(timed_map(bare_pool, bare_decode, files, args.size))
                runs[modes[1]].append(timed_map(one, pipeline, files, args.size))
                runs[modes[2]].append(timed_map(two, pipeline, files, args.size))
    bare = [r["seconds"] for r in runs[modes[0]]]
    single = [r["seconds"] for r in runs[modes[1]]]
    double = [r["seconds"] for r in runs[modes[2]]]
    print(
        f"{'mode (median of rounds)':36s} {'seconds':>8s} {'images/s':>9s} {'x bare time':>11s} "
        f"{'peak RSS/worker':>16s}"
    )
    for mode in modes:
        seconds = statistics.median(r["seconds"] for r in runs[mode])
        peak = max(r["peak_rss_mb"] for r in runs[mode])
        print(
            f"{mode:36s} {seconds:8.2f} {len(files) / seconds:9.2f} {seconds / statistics.median(bare):11.2f} "
            f"{peak:13.0f} MB"
        )
    ratio = statistics.median(s / b for s, b in zip(single, bare))
    speedup = statistics.median(s / d for s, d in zip(single, double))
    print(f"pipeline / bare time, 1 worker (median of per-round ratios): {ratio:.2f}  (goal <= 1.30)")
    print(f"2-worker speed-up over 1 worker (median of per-round ratios): {speedup:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
