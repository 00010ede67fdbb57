"""Scoring, and regression floors on the development files (the quality numbers are the bench's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mgll_data.reports import label_reports, load_vocabulary
from mgll_data.reports.labels import statuses
from mgll_data.reports.scoring import assertion_scores, gold_statuses, negex_rows, read_gold, score

DEV = Path(__file__).parent / "data" / "reports"
NEGEX = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "negex_rsannotations.tsv"


def test_score_counts_uncertain_as_positive_or_not():
    s = score([{"A": -1}, {"A": 0}, {}], [{"A": 1}, {"A": 1}, {"B": 1}], ["A", "B"])
    assert s.per_finding["A"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2,
                                  "tp": 1, "fp": 0, "fn": 1}
    assert s.per_finding["B"]["f1"] == 0.0
    assert s.micro_f1 == pytest.approx(2 * 1 / (2 * 1 + 0 + 2))
    assert s.macro_f1 == pytest.approx((2 / 3 + 0) / 2)
    strict = score([{"A": -1}, {"A": 1}], [{"A": 1}, {"A": -1}], ["A"], uncertain_positive=False)
    assert strict.per_finding["A"]["tp"] == 0 and strict.per_finding["A"]["fn"] == 1


def test_gold_certainties_follow_the_policy():
    gold = {"A": "definite", "B": "probable", "C": "possible", "D": "negated", "E": "hypothetical"}
    assert gold_statuses(gold) == {"A": 1, "B": -1, "D": 0}
    assert gold_statuses(gold, "chexpert") == {"A": 1, "B": -1, "C": -1, "D": 0}


def test_sentence_items_keep_their_section(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(
        '{"id": "s-1", "section": "INDICATION", "text": "r/o pneumonia", "gold": {"Pneumonia": "hypothetical"}}\n'
        '{"id": "s-2", "section": "", "text": "No effusion.", "gold": {}}\n'
    )
    items = read_gold(path)
    assert [(i.id, i.text) for i in items] == [("s-1", "INDICATION: r/o pneumonia"), ("s-2", "No effusion.")]


@pytest.mark.parametrize(("name", "key", "micro", "macro"), [
    ("sentences_dev", "gold", 0.98, 0.98), ("reports_dev", "gold_nih14", 0.98, 0.98),
    ("reports_dev", "gold_chexpert", 0.98, 0.98),
])
def test_development_set_floor(name, key, micro, macro):
    """A regression floor on the development files the rules were tuned on (uncertain = positive). The
    *_test files are not used here: they are scored only by bench/bench_labeller.py."""
    vocab = "chexpert" if key == "gold_chexpert" else "nih14"
    items = read_gold(DEV / f"{name}.jsonl", key)
    predicted = [statuses(r.labels) for r in label_reports([i.text for i in items], vocab)]
    v = load_vocabulary(vocab)
    s = score(predicted, [gold_statuses(i.gold) for i in items], [n for n in v.names() if n != v.no_finding])
    assert s.micro_f1 >= micro and s.macro_f1 >= macro, (s.micro_f1, s.macro_f1)


def test_fundus_regression_set():
    """Self-written with the fundus vocabulary (a regression check, not a quality number); coded when
    every hedge was -1, hence CheXpert's policy."""
    rows = [json.loads(line) for line in (DEV / "regression_fundus.jsonl").read_text().splitlines()]
    predicted = [statuses(r.labels) for r in label_reports([r["text"] for r in rows], "fundus", policy="chexpert")]
    v = load_vocabulary("fundus")
    s = score(predicted, [r["labels"] for r in rows], [n for n in v.names() if n != v.no_finding])
    assert s.micro_f1 >= 0.97 and s.macro_f1 >= 0.95, (s.micro_f1, s.macro_f1)


@pytest.mark.skipif(not NEGEX.exists(), reason="NegEx annotation file not present")
def test_negex_assertion_floor():
    s = assertion_scores(negex_rows(NEGEX))
    assert s.sentences > 2300
    assert s.accuracy >= 0.985
    assert s.negated_precision >= 0.96 and s.negated_recall >= 0.97
    plain = assertion_scores(negex_rows(NEGEX), ignore_cues_inside=False)
    assert plain.accuracy >= 0.97 and plain.negated_recall >= 0.97
