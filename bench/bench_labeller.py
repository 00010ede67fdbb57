"""Benchmark: our report labeller vs. out-of-the-box medspaCy, side by side on the same reports.

Baseline = `medspacy.load()` (PyRuSH sentences + TargetMatcher + default ConText) with one TargetRule per
finding's common names (its vocabulary name and plain name), labels aggregated the same CheXpert way.
Prints quality (micro/macro F1, uncertain counted positive) on each vocabulary's development set and on
the demo export's reports (written by a different module, with its own answer key: the one set here
the labeller was not developed against), NegEx assertion accuracy, and speed (reports/s) with the ratio
to the baseline and the --workers 1 vs 2 scaling.

    .venv/bin/python bench/bench_labeller.py [--reports 1200] [--repeats 1] [--demo-studies 400]
    .venv/bin/python bench/bench_labeller.py --quick
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "tests" / "data" / "reports"
NEGEX = ROOT.parent / "shared" / "data" / "negex_rsannotations.tsv"


def load_demo(studies: int) -> tuple[list[str], list[dict[str, int]]]:
    """Reports of a fresh demo export and the statuses its answer key says each report writes."""
    from mgll_data.demo import write_demo_export
    from mgll_data.reports import vocabulary_names

    names = vocabulary_names("chexpert")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "export"
        write_demo_export(out, studies=studies, seed=11, packaged=False, progress=False)
        rows = list(csv.DictReader((out / "ground_truth.csv").open()))
        texts = [(out / r["report_path"]).read_text() for r in rows]
    gold = [{n: int(r[n]) for n in names if r.get(n, "")} for r in rows]
    return texts, gold


def load_dev(vocab: str) -> list[dict]:
    return [json.loads(line) for line in (DEV / f"dev_{vocab}.jsonl").read_text(encoding="utf-8").splitlines()]


def baseline_nlp(vocab_name: str):
    import medspacy
    from loguru import logger
    from medspacy.ner import TargetRule

    from mgll_data.reports import load_vocabulary

    logger.disable("PyRuSH")  # its per-token DEBUG log would flood the terminal and slow the baseline down
    vocab = load_vocabulary(vocab_name)
    nlp = medspacy.load()
    rules = []
    for finding in vocab.mentionable():
        for name in {finding.name.replace("_", " ").lower(), finding.plain.lower()}:
            rules.append(TargetRule(name, finding.name))
    nlp.get_pipe("medspacy_target_matcher").add(rules)
    return nlp


def baseline_labels(nlp, texts: list[str], vocab_name: str) -> list[dict[str, int]]:
    from mgll_data.reports import load_vocabulary

    vocab = load_vocabulary(vocab_name)
    out = []
    for doc in nlp.pipe(texts, batch_size=64):
        seen: dict[str, set[int]] = {}
        for ent in doc.ents:
            if ent._.is_hypothetical or ent._.is_family or ent._.is_historical:
                continue
            status = 0 if ent._.is_negated else -1 if ent._.is_uncertain else 1
            seen.setdefault(ent.label_, set()).add(status)
        labels = {name: 1 if 1 in s else -1 if -1 in s else 0 for name, s in seen.items()}
        if vocab.no_finding and not any(v in (1, -1) for k, v in labels.items() if k not in vocab.no_finding_ignores):
            labels[vocab.no_finding] = 1
        out.append(labels)
    return out


def ours_labels(texts: list[str], vocab: str, workers: int = 1) -> list[dict[str, int]]:
    from mgll_data.reports import label_reports

    return [dict(r.labels) for r in label_reports(texts, vocab, n_process=workers)]


def timed(fn, *args, repeats: int = 1, **kwargs) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=1200, help="reports in the speed test (dev reports repeated)")
    parser.add_argument("--repeats", type=int, default=1, help="timing repeats (best of)")
    parser.add_argument("--demo-studies", type=int, default=400, help="demo export studies for the independent set")
    parser.add_argument("--quick", action="store_true", help="300 reports, 60 demo studies")
    args = parser.parse_args()
    if args.quick:
        args.reports, args.demo_studies = 300, 60

    from mgll_data.reports import load_vocabulary
    from mgll_data.reports.nlp import get_nlp
    from mgll_data.reports.scoring import assertion_scores, negex_rows, score

    print("quality (uncertain counted positive; No Finding excluded)")
    print(f"{'vocabulary':<10} {'reports':>7} | {'ours micro':>10} {'ours macro':>10} | {'base micro':>10} {'base macro':>10}")
    for vocab in ("nih14", "chexpert", "fundus"):
        rows = load_dev(vocab)
        texts = [r["text"] for r in rows]
        gold = [r["labels"] for r in rows]
        names = [n for n in load_vocabulary(vocab).names() if n != load_vocabulary(vocab).no_finding]
        ours = score(ours_labels(texts, vocab), gold, names)
        base = score(baseline_labels(baseline_nlp(vocab), texts, vocab), gold, names)
        print(f"{vocab:<10} {len(rows):>7} | {ours.micro_f1:>10.3f} {ours.macro_f1:>10.3f} | {base.micro_f1:>10.3f} {base.macro_f1:>10.3f}")

    texts, gold = load_demo(args.demo_studies)
    names = [n for n in load_vocabulary("chexpert").names() if n != "No Finding"]
    ours_pred = ours_labels(texts, "chexpert")
    ours = score(ours_pred, gold, names)
    base = score(baseline_labels(baseline_nlp("chexpert"), texts, "chexpert"), gold, names)
    print(f"{'demo':<10} {len(texts):>7} | {ours.micro_f1:>10.3f} {ours.macro_f1:>10.3f} | {base.micro_f1:>10.3f} {base.macro_f1:>10.3f}"
          "   (independent: chexpert, the demo export's answer key)")
    mentioned = [(p.get(n), g[n]) for p, g in zip(ours_pred, gold) for n in g]
    print(f"demo exact status agreement (1/0/-1 on findings the key codes): "
          f"{sum(p == g for p, g in mentioned) / len(mentioned):.3f} over {len(mentioned)}")

    if NEGEX.exists():
        print()
        rows = negex_rows(NEGEX)
        base_context = baseline_nlp("nih14")
        for label, inside, nlp in (("ours, cues inside the phrase ignored", True, None), ("ours, plain", False, None),
                                   ("baseline default ConText, plain", False, base_context)):
            s = assertion_scores(rows, ignore_cues_inside=inside, nlp=nlp)
            print(f"NegEx {label:<38} ({s.sentences} sentences): accuracy {s.accuracy:.3f}, "
                  f"negated precision {s.negated_precision:.3f}, negated recall {s.negated_recall:.3f}")

    dev = [r["text"] for r in load_dev("nih14")]
    texts = (dev * (args.reports // len(dev) + 1))[: args.reports]
    get_nlp("nih14")
    base_nlp = baseline_nlp("nih14")
    ours_labels(texts[:50], "nih14")
    baseline_labels(base_nlp, texts[:50], "nih14")
    t_base, _ = timed(baseline_labels, base_nlp, texts, "nih14", repeats=args.repeats)
    t_ours, _ = timed(ours_labels, texts, "nih14", 1, repeats=args.repeats)
    t_ours2, _ = timed(ours_labels, texts, "nih14", 2, repeats=args.repeats)
    n = len(texts)
    print(f"\nspeed on {n} reports (nih14; best of {args.repeats})")
    print(f"{'labeller':<36} {'seconds':>8} {'reports/s':>10} {'vs baseline':>12}")
    for name, t in (("baseline: medspacy.load() + names", t_base), ("ours, --workers 1", t_ours), ("ours, --workers 2", t_ours2)):
        print(f"{name:<36} {t:>8.2f} {n / t:>10.1f} {t_base / t:>11.2f}x")
    print(f"scaling workers 2 vs 1: {t_ours / t_ours2:.2f}x")


if __name__ == "__main__":
    main()
