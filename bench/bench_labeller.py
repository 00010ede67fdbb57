"""Benchmark: our report labeller vs. out-of-the-box medspaCy and NegEx (negspacy), side by side.

Quality: per-finding precision / recall / F1 on the independent development set in tests/data/reports/
(sentences and whole reports, gold written before any labeller ran; see its README), for the `_dev`
files the rules were tuned on and the `_test` files that were never used to choose a rule. Gold
certainty levels become 1 / 0 / -1 through the labeller's default policy ("radiologist": definite 1,
probable -1, the rest blank or 0); "uncertain = positive" counts 1 and -1 as positive, "uncertain =
negative" only 1. Peers:
  medspaCy  `medspacy.load()` (PyRuSH sentences + TargetMatcher + default ConText) with one TargetRule per
            finding's common names (its vocabulary name and plain name); negated -> 0, uncertain -> -1.
  negspacy  NegEx (negspacy 1.0.4, en_clinical termset) over the same names: negated -> 0, else 1
            (`pip install -e '.[bench]'`; the column is left out without it).
NegBio and the CheXpert labeler are not peers here: neither is on the package index (both need the BLLIP
parser and Stanford CoreNLP models downloaded at run time).

Speed: reports/s on the development reports, ours with --workers 1 and 2, as a ratio to medspaCy in the
same run; and one long report of 100 vs 1,000 lines (understanding is linear: ~10x, not ~100x).

    .venv/bin/python bench/bench_labeller.py [--reports 1200] [--repeats 1] [--sets all|dev|test]
    .venv/bin/python bench/bench_labeller.py --quick
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "reports"
NEGEX = ROOT.parent / "shared" / "data" / "negex_rsannotations.tsv"
# (file stem, gold key, vocabulary)
SETS = [("sentences", "gold", "nih14"), ("reports", "gold_nih14", "nih14"), ("reports", "gold_chexpert", "chexpert")]


def finding_names(vocab_name: str) -> list[tuple[str, set[str]]]:
    """Each finding with its common names, as a user of an out-of-the-box tool would write them."""
    from mgll_data.reports import load_vocabulary

    vocab = load_vocabulary(vocab_name)
    return [(f.name, {f.name.replace("_", " ").lower(), f.plain.lower()}) for f in vocab.mentionable()]


def medspacy_nlp(vocab_name: str):
    import medspacy
    from loguru import logger
    from medspacy.ner import TargetRule

    logger.disable("PyRuSH")  # its per-token DEBUG log would flood the terminal and slow the baseline down
    nlp = medspacy.load()
    nlp.get_pipe("medspacy_target_matcher").add(
        [TargetRule(name, label) for label, names in finding_names(vocab_name) for name in names])
    return nlp


def negspacy_nlp(vocab_name: str):
    """The NegEx peer, or None when negspacy (the bench extra) is not installed."""
    import spacy

    try:
        from negspacy.negation import Negex  # noqa: F401  (registers the negex factory)
        from negspacy.termsets import termset
    except ImportError:
        return None

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
    ruler.add_patterns(
        [{"label": label, "pattern": name} for label, names in finding_names(vocab_name) for name in names]
    )
    nlp.add_pipe("negex", config={"neg_termset": termset("en_clinical").get_patterns()})
    return nlp


def _aggregate(found: dict[str, set[int]], vocab_name: str) -> dict[str, int]:
    from mgll_data.reports import load_vocabulary

    vocab = load_vocabulary(vocab_name)
    labels = {name: 1 if 1 in s else -1 if -1 in s else 0 for name, s in found.items()}
    if vocab.no_finding and not any(v in (1, -1) for k, v in labels.items() if k not in vocab.no_finding_ignores):
        labels[vocab.no_finding] = 1
    return labels


def medspacy_labels(nlp, texts: list[str], vocab_name: str) -> list[dict[str, int]]:
    out = []
    for doc in nlp.pipe(texts, batch_size=64):
        found: dict[str, set[int]] = {}
        for ent in doc.ents:
            if ent._.is_hypothetical or ent._.is_family or ent._.is_historical:
                continue
            found.setdefault(ent.label_, set()).add(0 if ent._.is_negated else -1 if ent._.is_uncertain else 1)
        out.append(_aggregate(found, vocab_name))
    return out


def negspacy_labels(nlp, texts: list[str], vocab_name: str) -> list[dict[str, int]]:
    out = []
    for doc in nlp.pipe(texts, batch_size=64):
        found: dict[str, set[int]] = {}
        for ent in doc.ents:
            found.setdefault(ent.label_, set()).add(0 if ent._.negex else 1)
        out.append(_aggregate(found, vocab_name))
    return out


def ours_labels(texts: list[str], vocab: str, workers: int = 1) -> list[dict[str, int]]:
    from mgll_data.reports import label_reports
    from mgll_data.reports.labels import statuses

    return [statuses(r.labels) for r in label_reports(texts, vocab, n_process=workers)]


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn, *args, repeats: int = 1, **kwargs) -> tuple[float, float, object]:
    """Best wall-clock seconds, the CPU seconds of that run (this process and its workers), the result.
    On a shared machine the CPU seconds show what the work costs when wall-clock scaling cannot."""
    best, cpu, result = float("inf"), 0.0, None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), _cpu_seconds()
        result = fn(*args, **kwargs)
        wall = time.perf_counter() - start
        if wall < best:
            best, cpu = wall, _cpu_seconds() - start_cpu
    return best, cpu, result


def quality(splits: list[str]) -> None:
    from mgll_data.reports import load_vocabulary
    from mgll_data.reports.scoring import gold_statuses, read_gold, score

    peers = {}
    for stem, key, vocab in SETS:
        if vocab not in peers:
            peers[vocab] = (medspacy_nlp(vocab), negspacy_nlp(vocab))
        v = load_vocabulary(vocab)
        names = [n for n in v.names() if n != v.no_finding]
        for split in splits:
            items = read_gold(DATA / f"{stem}_{split}.jsonl", key)
            texts = [i.text for i in items]
            gold = [gold_statuses(i.gold) for i in items]
            predicted = {"ours": ours_labels(texts, vocab), "medspaCy": medspacy_labels(peers[vocab][0], texts, vocab)}
            if peers[vocab][1] is not None:
                predicted["negspacy"] = negspacy_labels(peers[vocab][1], texts, vocab)
            for uncertain_positive in (True, False):
                scores = {who: score(p, gold, names, uncertain_positive) for who, p in predicted.items()}
                _print_table(f"{stem}_{split} ({key}, {vocab}, {len(items)} items), uncertain = "
                             f"{'positive' if uncertain_positive else 'negative'}", names, scores)


def _print_table(title: str, names: list[str], scores: dict) -> None:
    print(f"\n{title}")
    print(f"{'finding':<27}{'n':>4} | {'ours P':>6} {'R':>5} {'F1':>5} | {'medspaCy P':>10} {'R':>5} {'F1':>5} | "
          f"{'negspacy F1':>11} | {'Δ F1 vs medspaCy':>16}")
    for name in names:
        ours = scores["ours"].per_finding.get(name)
        if ours is None:
            continue
        base = scores["medspaCy"].per_finding[name]
        neg = f"{scores['negspacy'].per_finding[name]['f1']:>11.3f}" if "negspacy" in scores else f"{'-':>11}"
        print(f"{name:<27}{ours['support']:>4} | {ours['precision']:>6.3f} {ours['recall']:>5.3f} {ours['f1']:>5.3f} | "
              f"{base['precision']:>10.3f} {base['recall']:>5.3f} {base['f1']:>5.3f} | {neg} | "
              f"{ours['f1'] - base['f1']:>+16.3f}")
    row = " | ".join(f"{who} {s.micro_f1:.3f} / {s.macro_f1:.3f}" for who, s in scores.items())
    print(f"{'micro / macro F1':<31} {row}")


def negex_assertion() -> None:
    from mgll_data.reports.scoring import assertion_scores, negex_rows

    if not NEGEX.exists():
        return
    print()
    rows = negex_rows(NEGEX)
    for label, inside, nlp in (("ours, cues inside the phrase ignored", True, None), ("ours, plain", False, None),
                               ("medspaCy default ConText, plain", False, medspacy_nlp("nih14"))):
        s = assertion_scores(rows, ignore_cues_inside=inside, nlp=nlp)
        print(f"NegEx {label:<38} ({s.sentences} sentences): accuracy {s.accuracy:.3f}, "
              f"negated precision {s.negated_precision:.3f}, negated recall {s.negated_recall:.3f}")


def speed(n_reports: int, repeats: int) -> None:
    from mgll_data.reports.nlp import get_nlp
    from mgll_data.reports.scoring import read_gold

    dev = [i.text for i in read_gold(DATA / "reports_dev.jsonl", "gold_nih14")]
    texts = (dev * (n_reports // len(dev) + 1))[:n_reports]
    get_nlp("nih14")
    base_nlp = medspacy_nlp("nih14")
    ours_labels(texts[:50], "nih14")
    medspacy_labels(base_nlp, texts[:50], "nih14")
    t_base, c_base, _ = timed(medspacy_labels, base_nlp, texts, "nih14", repeats=repeats)
    t_ours, c_ours, _ = timed(ours_labels, texts, "nih14", 1, repeats=repeats)
    t_ours2, c_ours2, _ = timed(ours_labels, texts, "nih14", 2, repeats=repeats)
    n = len(texts)
    print(f"\nspeed on {n} development reports (nih14; best of {repeats}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"{'labeller':<36} {'seconds':>8} {'reports/s':>10} {'vs medspaCy':>12} {'CPU s':>7}")
    for name, t, c in (("medspaCy: medspacy.load() + names", t_base, c_base), ("ours, --workers 1", t_ours, c_ours),
                       ("ours, --workers 2", t_ours2, c_ours2)):
        print(f"{name:<36} {t:>8.2f} {n / t:>10.1f} {t_base / t:>11.2f}x {c:>7.2f}")
    print(f"scaling --workers 2 vs 1: {t_ours / t_ours2:.2f}x wall-clock; CPU seconds {c_ours2 / c_ours:.2f}x "
          "(1.0 = no parallel overhead: on idle cores the wall-clock halves)")
    line = "No pleural effusion or pneumothorax. Mild cardiomegaly, possible atelectasis at the left base.\n"
    t100, c100, _ = timed(ours_labels, [line * 100], "nih14", repeats=repeats)
    t1000, c1000, _ = timed(ours_labels, [line * 1000], "nih14", repeats=repeats)
    print(f"one long report: 100 lines {t100:.2f}s ({c100:.2f} CPU s), 1,000 lines {t1000:.2f}s ({c1000:.2f} CPU s): "
          f"{t1000 / t100:.1f}x wall-clock, {c1000 / c100:.1f}x CPU for 10x the text")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=1200, help="reports in the speed test (dev reports repeated)")
    parser.add_argument("--repeats", type=int, default=1, help="timing repeats (best of)")
    parser.add_argument(
        "--sets", choices=["all", "dev", "test"], default="all", help="which development files to score"
    )
    parser.add_argument("--quick", action="store_true", help="300 reports in the speed test")
    args = parser.parse_args()
    if args.quick:
        args.reports = 300
    quality(["dev", "test"] if args.sets == "all" else [args.sets])
    negex_assertion()
    speed(args.reports, args.repeats)


if __name__ == "__main__":
    main()
