"""Scoring, and the quality floors the labeller actually reaches on its development sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mgll_data.reports import label_reports, load_vocabulary
from mgll_data.reports.scoring import assertion_scores, negex_rows, score

DEV = Path(__file__).parent / "data" / "reports"
NEGEX = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "negex_rsannotations.tsv"


def test_score_counts_uncertain_as_positive():
    s = score([{"A": -1}, {"A": 0}, {}], [{"A": 1}, {"A": 1}, {"B": 1}], ["A", "B"])
    assert s.per_finding["A"] == {"f1": pytest.approx(2 / 3), "support": 2, "tp": 1, "fp": 0, "fn": 1}
    assert s.per_finding["B"]["f1"] == 0.0
    assert s.micro_f1 == pytest.approx(2 * 1 / (2 * 1 + 0 + 2))
    assert s.macro_f1 == pytest.approx((2 / 3 + 0) / 2)


@pytest.mark.parametrize(("vocab", "micro", "macro"), [("nih14", 0.97, 0.95), ("chexpert", 0.97, 0.95), ("fundus", 0.97, 0.95)])
def test_dev_set_floor(vocab, micro, macro):
    rows = [json.loads(line) for line in (DEV / f"dev_{vocab}.jsonl").read_text().splitlines()]
    assert len(rows) >= 80
    predicted = [dict(r.labels) for r in label_reports([r["text"] for r in rows], vocab)]
    v = load_vocabulary(vocab)
    s = score(predicted, [r["labels"] for r in rows], [n for n in v.names() if n != v.no_finding])
    assert s.micro_f1 >= micro and s.macro_f1 >= macro, (s.micro_f1, s.macro_f1)


@pytest.mark.skipif(not NEGEX.exists(), reason="NegEx annotation file not present")
def test_negex_assertion_floor():
    s = assertion_scores(negex_rows(NEGEX))
    assert s.sentences > 2300
    assert s.accuracy >= 0.975
    assert s.negated_precision >= 0.94 and s.negated_recall >= 0.96
    plain = assertion_scores(negex_rows(NEGEX), ignore_cues_inside=False)
    assert plain.accuracy >= 0.96 and plain.negated_recall >= 0.96
