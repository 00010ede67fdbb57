"""Build throughput: local engine with 1 and 2 workers, Ray with 2 workers, on the same export.

Baseline: the local engine with one worker, measured in the same run. Also prints where the time goes
per input (report read, render, de-identification, report understanding, row assembly) and the cost
extrapolated to one million images from the measured per-worker rate.

    python bench/bench_build.py --quick                # 12 studies, local engine only
    python bench/bench_build.py --studies 200 --ray    # README numbers
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from mgll_data import deid, imaging, reports, sources
from mgll_data.build import build_dataset
from mgll_data.demo import write_demo_export
from mgll_data.pipeline import load_pipeline
from mgll_data.process import read_report
from mgll_data.records import StageError


def time_build(export: Path, work: Path, workers: int, engine: str, salt: Path) -> tuple[float, int]:
    out = work / f"ds-{engine}-{workers}"
    started = time.perf_counter()
    summary = build_dataset(export, out, "mimic-cxr", workers=workers, engine=engine, salt_file=salt,
                            overwrite=True, progress=False,
                            engine_options={"progress": False} if engine == "ray" else None)
    seconds = time.perf_counter() - started
    shutil.rmtree(out)
    return seconds, summary.inputs


def stage_profile(export: Path, salt_path: Path) -> dict[str, float]:
    """Seconds per stage summed over all inputs, in this process (one worker's view)."""
    pipeline = load_pipeline("mimic-cxr")
    salt = deid.load_salt(salt_path)
    totals: dict[str, float] = defaultdict(float)
    for item in sources.discover(export, pipeline):
        t0 = time.perf_counter()
        try:
            text = read_report(item, export)
            t1 = time.perf_counter()
            rendered = imaging.render_file(export / item.image_path, pipeline.image)
        except StageError:
            continue
        t2 = time.perf_counter()
        metadata = deid.header_metadata(rendered.header, pipeline.image.default_modality)
        scrubbed = deid.scrub_text(text, deid.header_phi(rendered.header) if rendered.header else [])
        deid.pseudonym(salt, "patient", item.patient_id or "x")
        t3 = time.perf_counter()
        reports.understand(scrubbed, metadata, pipeline)
        t4 = time.perf_counter()
        totals["read report"] += t1 - t0
        totals["decode + render + encode"] += t2 - t1
        totals["de-identify"] += t3 - t2
        totals["report understanding"] += t4 - t3
    return dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="a 12-study smoke run")
    parser.add_argument("--ray", action="store_true", help="also time the Ray engine (starts a local Ray)")
    args = parser.parse_args()
    if args.quick:
        args.studies = 12

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        export = work / "export"
        write_demo_export(export, studies=args.studies, seed=0, progress=False)
        salt = work / "salt"
        reports.understand("FINDINGS: warm-up.", {}, load_pipeline("mimic-cxr"))

        runs = [("local", 1), ("local", 2)] + ([("ray", 2)] if args.ray else [])
        results = {}
        for engine, workers in runs:
            results[(engine, workers)] = time_build(export, work, workers, engine, salt)
        base_seconds, inputs = results[("local", 1)]
        print(f"\nbuild throughput on {inputs} inputs ({args.studies} demo studies); baseline = local, 1 worker")
        print(f"{'engine':<8}{'workers':>8}{'seconds':>10}{'images/s':>10}{'vs baseline':>13}")
        for (engine, workers), (seconds, n) in results.items():
            print(f"{engine:<8}{workers:>8}{seconds:>10.1f}{n / seconds:>10.2f}{base_seconds / seconds:>12.2f}x")

        profile = stage_profile(export, salt)
        total = sum(profile.values())
        print("\nwhere the time goes (one worker, per input)")
        print(f"{'stage':<28}{'ms/input':>10}{'share':>8}")
        for stage, seconds in sorted(profile.items(), key=lambda kv: -kv[1]):
            print(f"{stage:<28}{1000 * seconds / inputs:>10.1f}{seconds / total:>8.0%}")

        per_worker = inputs / base_seconds
        core_hours = 1_000_000 / per_worker / 3600
        print(f"\n1M images at the measured {per_worker:.2f} images/s per worker: {core_hours:.0f} worker-hours "
              f"= {core_hours / 64:.1f} h on 64 workers, if the scaling above holds")


if __name__ == "__main__":
    main()
