"""Does multi-granular language learning help? MGLL vs CLIP vs MGLL without each loss term.

On the demo export (synthetic, learnable, MIMIC-shaped) built into a dataset, every variant trains the
same towers for the same steps from the same seeds, and is scored by the linear probe (frozen backbone
features, logistic regression per label) and zero-shot (pairwise prompt softmax) macro AUC on the test
split. Baseline, measured in the same run: CLIP (disease text only). The table shows mean ± std across
seeds and the ratio of each variant's mean to CLIP's.

    python bench/bench_proof.py --studies 40 --steps 10 --seeds 1        # smoke: a few minutes on CPU
    python bench/bench_proof.py --studies 600 --steps 400 --seeds 3 --text-model ""   # README numbers (GPU)

Variants: mgll (disease, description, explanation; default loss weights 0.5/1/1), clip (disease only),
mgll-no-softclip / mgll-no-point / mgll-no-skl (one weight set to 0).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MGLL_GRANULARITIES = ["disease", "description", "explanation"]
VARIANTS: dict[str, dict] = {
    "clip": {"loss": "clip", "granularities": ["disease"]},
    "mgll": {"loss": "mgll", "granularities": MGLL_GRANULARITIES},
    "mgll-no-softclip": {"loss": "mgll", "granularities": MGLL_GRANULARITIES, "alpha_clip": 0.0},
    "mgll-no-point": {"loss": "mgll", "granularities": MGLL_GRANULARITIES, "alpha_point": 0.0},
    "mgll-no-skl": {"loss": "mgll", "granularities": MGLL_GRANULARITIES, "alpha_kl": 0.0},
}
BASELINE = "clip"


def build_demo_dataset(work: Path, studies: int, workers: int) -> Path:
    from mgll_data.build import build_dataset
    from mgll_data.demo import write_demo_export

    export, dataset = work / "export", work / "dataset"
    if not (dataset / "manifest.json").is_file():
        write_demo_export(export, studies=studies, seed=0, progress=False)
        build_dataset(export, dataset, "mimic-cxr", workers=workers, salt_file=work / "salt", progress=False)
    return dataset


def train_variant(dataset: Path, run: Path, variant: dict, args: argparse.Namespace, seed: int) -> float:
    from mgll_train.config import TrainConfig
    from mgll_train.trainer import train

    config = TrainConfig(
        dataset=str(dataset), out=str(run), model=args.model, text_model=args.text_model or None,
        embed_dim=args.embed_dim, image_size=args.image_size, batch_size=args.batch_size, max_steps=args.steps,
        lr=args.lr, seed=seed, device=args.device, save_every=10**9, log_every=10**9, workers=args.workers,
        **variant,
    )  # fmt: skip
    started = time.perf_counter()
    train(config, progress=False, echo=lambda line: None)
    return time.perf_counter() - started


def score(run: Path, dataset: Path, out: Path, args: argparse.Namespace, seed: int) -> dict[str, float | None]:
    from mgll_train.evaluate import evaluate

    results = evaluate(run, dataset, ["linear-probe", "zero-shot"], out, bootstrap=0, seed=seed, device=args.device,
                       progress=False)  # fmt: skip
    return {
        "probe": results["tasks"]["linear-probe"]["macro"]["auc"]["value"],
        "zero_shot": results["tasks"]["zero-shot"]["macro"]["auc"]["value"],
    }


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    return statistics.fmean(present), statistics.stdev(present) if len(present) > 1 else 0.0


def table(scores: dict[str, list[dict]], seconds: dict[str, float]) -> str:
    base = {m: _mean_std([s[m] for s in scores[BASELINE]])[0] for m in ("probe", "zero_shot")}
    lines = [
        f"{'variant':<18} {'probe macro AUC':>17} {'vs clip':>8} {'zero-shot macro AUC':>21} {'vs clip':>8} {'train s/seed':>13}",
        "-" * 90,
    ]
    for name, runs in scores.items():
        cells = []
        for metric in ("probe", "zero_shot"):
            mean, std = _mean_std([r[metric] for r in runs])
            ratio = f"{mean / base[metric]:.3f}x" if mean is not None and base[metric] else "n/a"
            cells += [f"{mean:.3f} ± {std:.3f}" if mean is not None else "n/a", ratio]
        lines.append(
            f"{name:<18} {cells[0]:>17} {cells[1]:>8} {cells[2]:>21} {cells[3]:>8} {seconds[name] / len(runs):>13.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=40, help="demo studies to generate (quick: 40; README: 600+)")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per run")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per variant (mean ± std across them)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma list of variants to run")
    parser.add_argument("--model", default="tiny", help="vision tower (tiny, vit-b16, ... or a folder)")
    parser.add_argument("--text-model", default="tiny", help="text tower: tiny, a folder, or '' for the packaged MiniLM")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers while training")
    parser.add_argument("--build-workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", type=Path, default=None, help="folder for export, dataset and runs (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write every score as JSON here")
    parser.add_argument("--quick", action="store_true", help="smoke run: 30 studies, 3 steps, 1 seed")
    args = parser.parse_args()
    if args.quick:
        args.studies, args.steps, args.seeds = 30, 3, 1

    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or BASELINE not in names:
        parser.error(f"variants must include {BASELINE!r} and come from {list(VARIANTS)}; unknown: {unknown}")
    with tempfile.TemporaryDirectory(prefix="mgll-proof-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        dataset = build_demo_dataset(work, args.studies, args.build_workers)
        manifest = json.loads((dataset / "manifest.json").read_text())
        print(f"dataset: {manifest['rows']} rows ({manifest['splits']}) from {args.studies} demo studies, "
              f"built in {time.perf_counter() - started:.1f} s", file=sys.stderr)  # fmt: skip
        scores: dict[str, list[dict]] = {n: [] for n in names}
        seconds = {n: 0.0 for n in names}
        for seed in range(args.seeds):
            for name in names:
                run = work / "runs" / f"{name}-seed{seed}"
                seconds[name] += train_variant(dataset, run, VARIANTS[name], args, seed)
                scores[name].append(score(run, dataset, work / "eval" / run.name, args, seed))
                print(f"  {name} seed {seed}: {scores[name][-1]}", file=sys.stderr)
        print(f"\nMGLL proof: {args.model} vision + {args.text_model or 'MiniLM'} text, {args.image_size}px, "
              f"{args.steps} steps x batch {args.batch_size}, {args.seeds} seed(s); test split "
              f"{manifest['splits'].get('test', 0)} images; baseline: {BASELINE} (same run)")  # fmt: skip
        print(table(scores, seconds))
        print(f"total {time.perf_counter() - started:.0f} s")
        if args.json:
            args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "scores": scores}, indent=2))


if __name__ == "__main__":
    main()
