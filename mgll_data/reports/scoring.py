"""Scoring a labeller against human codings, per finding, the way the maintainers judge it.

Each finding becomes a binary decision per report: with `uncertain_positive` (the maintainers' main
measure) a 1 or a -1 counts as positive, otherwise only a 1 does. Gold codings written as certainty
levels (the development sets in tests/data/reports/) are first turned into 1 / 0 / -1 by a policy, the
same one the labeller runs with, so "uncertain" means the same thing on both sides. Micro-F1 pools all
findings; macro-F1 averages the F1 of findings that occur in the gold set. "No Finding" is derived, not
read, so callers leave it out.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgll_data.reports.certainty import NEGATIVE, POSITIVE, UNCERTAIN, Policy, policy_from


@dataclass
class Scores:
    micro_f1: float
    macro_f1: float
    per_finding: dict[str, dict[str, float]]


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def score(
    predicted: Sequence[Mapping[str, int]], gold: Sequence[Mapping[str, int]], findings: Iterable[str],
    uncertain_positive: bool = True,
) -> Scores:
    """Precision, recall and F1 per finding; each mapping is finding -> status, absent = not positive."""
    positive = (POSITIVE, UNCERTAIN) if uncertain_positive else (POSITIVE,)
    totals = {"tp": 0, "fp": 0, "fn": 0}
    per_finding = {}
    for name in findings:
        tp = fp = fn = 0
        for pred, true in zip(predicted, gold, strict=True):
            p = pred.get(name) in positive
            t = true.get(name) in positive
            tp += p and t
            fp += p and not t
            fn += t and not p
        totals["tp"] += tp
        totals["fp"] += fp
        totals["fn"] += fn
        if tp + fn:
            per_finding[name] = {
                "precision": tp / (tp + fp) if tp + fp else 0.0,
                "recall": tp / (tp + fn),
                "f1": _f1(tp, fp, fn),
                "support": tp + fn, "tp": tp, "fp": fp, "fn": fn,
            }
    macro = sum(v["f1"] for v in per_finding.values()) / len(per_finding) if per_finding else 0.0
    return Scores(micro_f1=_f1(**totals), macro_f1=macro, per_finding=per_finding)


@dataclass(frozen=True)
class GoldItem:
    """One coded text of a development set: `gold` maps finding -> certainty level."""

    id: str
    text: str
    gold: dict[str, str]


def read_gold(path: Path, key: str = "gold") -> list[GoldItem]:
    """A development-set JSONL file. Sentence files carry their section: the text is given to the
    labeller under that heading ("INDICATION: ..."), as it stood in its report. `key` picks the coding
    of report files ("gold_nih14" or "gold_chexpert")."""
    items = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        text = record["text"]
        if record.get("section"):
            text = f"{record['section']}: {text}"
        items.append(GoldItem(str(record["id"]), text, dict(record.get(key) or {})))
    return items


def gold_statuses(gold: Mapping[str, str], policy: Policy | str | None = None) -> dict[str, int]:
    """Certainty levels -> 1 / 0 / -1 under a policy (levels the policy leaves blank are left out)."""
    chosen = policy_from(policy)
    return {name: status for name, level in gold.items() if (status := chosen.status(level)) is not None}


@dataclass
class AssertionScores:
    sentences: int
    accuracy: float
    negated_precision: float
    negated_recall: float
    skipped: int


def negex_rows(path: Path) -> list[tuple[str, str, bool]]:
    """(target phrase, sentence, is_negated) from the NegEx radiology/discharge annotation TSV."""
    rows = []
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        for record in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(record) >= 5 and record[4].strip() in ("Affirmed", "Negated"):
                rows.append((record[2].strip(), record[3].strip(), record[4].strip() == "Negated"))
    return rows


def _negated(target, ignore_cues_inside: bool) -> bool:
    """A negation cue inside the annotated phrase ("lungs show no opacities") is part of the phrase, not a
    modifier of it; our own targets never contain one (vocabulary gaps cannot cross negation words)."""
    for modifier in target._.modifiers:
        start, end = modifier.modifier_span
        inside = target.start <= start and end <= target.end
        if modifier.category.upper() == "NEGATED_EXISTENCE" and not (inside and ignore_cues_inside):
            return True
    return False


def assertion_scores(
    rows: Sequence[tuple[str, str, bool]], ignore_cues_inside: bool = True, nlp: Any = None
) -> AssertionScores:
    """Run our ConText rules on each sentence with the annotated phrase as the only target.

    About 2% of the NegEx phrases contain their own cue ("oral mucosa is moist with no erythema", coded
    Affirmed); `ignore_cues_inside=False` scores them as plain ConText would. `nlp` may be another
    pipeline ending in "medspacy_context" (the benchmark passes medspaCy's defaults).
    """
    from mgll_data.reports.nlp import context_only_nlp, quiet_matchers

    nlp = nlp or context_only_nlp()
    context = nlp.get_pipe("medspacy_context")
    before_context = [(name, pipe) for name, pipe in nlp.pipeline
                      if name not in ("medspacy_context", "medspacy_target_matcher")]
    tp = fp = fn = correct = skipped = 0
    for target, sentence, negated in rows:
        start = " ".join(sentence.lower().split()).find(" ".join(target.lower().split()))
        squeezed = " ".join(sentence.split())
        doc = nlp.make_doc(squeezed)
        for _, pipe in before_context:
            doc = pipe(doc)
        end = start + len(" ".join(target.split()))
        span = doc.char_span(start, end, label="TARGET", alignment_mode="expand") if start >= 0 else None
        if span is None:
            skipped += 1
            continue
        doc.ents = [span]
        with quiet_matchers():
            doc = context(doc)
        predicted = NEGATIVE if _negated(doc.ents[0], ignore_cues_inside) else POSITIVE
        is_neg = predicted == NEGATIVE
        correct += is_neg == negated
        tp += is_neg and negated
        fp += is_neg and not negated
        fn += negated and not is_neg
    judged = len(rows) - skipped
    return AssertionScores(
        sentences=judged,
        accuracy=correct / judged if judged else 0.0,
        negated_precision=tp / (tp + fp) if tp + fp else 0.0,
        negated_recall=tp / (tp + fn) if tp + fn else 0.0,
        skipped=skipped,
    )
