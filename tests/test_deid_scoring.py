"""The benchmark's scorer (mgll_data/deid/scoring.py), and scrub_text measured with it on a slice of the
benchmark data (tests/data/deid/): a correctness check, not a timing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mgll_data.deid import scoring, scrub_text

DATA = Path(__file__).parent / "data" / "deid"
PHI_TYPES = {"NAME", "DATE", "AGE", "PHONE", "ID", "ADDRESS", "EMAIL", "URL"}


def test_placeholder_spans_map_back_to_the_original():
    original = "Discussed with Ann Lee on 01/02/2023. No effusion."
    scrubbed = "Discussed with [NAME] on [DATE]. No effusion."
    assert scoring.placeholder_spans(original, scrubbed) == [(15, 22, "NAME"), (26, 36, "DATE")]
    assert scoring.placeholder_spans("No effusion.", "No effusion.") == []
    with pytest.raises(scoring.AlignmentError):
        scoring.placeholder_spans("No effusion.", "No effusions.")
    with pytest.raises(scoring.AlignmentError):
        scoring.placeholder_spans("Seen by Ann.", "Viewed by [NAME].")


def test_a_half_removed_name_is_a_miss_and_a_removed_clinical_word_a_false_positive():
    text = "Per Hortensia Blackwood, Kerley B lines."
    gold = [[(4, 23, "NAME")]]
    half = scoring.score([text], gold, [[(14, 23, "NAME")]])  # "Hortensia [NAME]" leaks the given name
    assert half.recall("NAME") == 0.0 and half.missed[0][1] == "Hortensia Blackwood"
    whole = scoring.score([text], gold, [[(4, 23, "NAME"), (25, 31, "NAME")]])  # ... and "Kerley" removed
    assert whole.recall("NAME") == 1.0 and whole.precision("NAME") == 0.5
    assert whole.false_positives == [("Kerley", text)]
    # punctuation inside a gold span need not go; a span typed differently still counts as caught
    comma = scoring.score(["d/w SMITH, ANN"], [[(4, 14, "NAME")]], [[(4, 9, "ID"), (11, 14, "ID")]])
    assert comma.recall("NAME") == 1.0


def _snippets() -> list[dict]:
    return [json.loads(line) for line in (DATA / "phi_snippets.jsonl").read_text(encoding="utf-8").splitlines()]


def test_gold_spans_point_at_their_values():
    rows = _snippets()
    assert len(rows) >= 500 and {r["split"] for r in rows} == {"tuned", "heldout"}
    for row in rows:
        for start, end, phi_type in row["spans"]:
            value = row["text"][start:end]
            assert value and value == value.strip() and phi_type in PHI_TYPES, row


def test_scrub_text_recall_on_a_slice_of_the_benchmark():
    rows = _snippets()[::7]  # every 7th snippet: ~145 of both splits, every kind of frame represented
    texts = [r["text"] for r in rows]
    removed = [scoring.placeholder_spans(t, scrub_text(t)) for t in texts]
    result = scoring.score(texts, [r["spans"] for r in rows], removed)
    assert result.gold["NAME"] > 80 and result.gold["DATE"] > 30
    assert result.recall("NAME") >= 0.98, result.missed
    assert result.recall("DATE") >= 0.98, result.missed
    assert result.recall() >= 0.98 and result.precision() >= 0.98, (result.missed, result.false_positives)


PHI_FREE = [
    line
    for name in ("clinical_sentences.txt", "clinical_sentences_heldout.txt")
    for line in (DATA / name).read_text(encoding="utf-8").splitlines()
    if line
]
# Institution names are scrubbed as places wherever they stand, even as the name of a protocol.
KNOWN_CHANGED = {"Per Mayo Clinic protocol, delayed phase imaging was added."}


@pytest.mark.parametrize("line", [line for line in PHI_FREE if line not in KNOWN_CHANGED])
def test_phi_free_clinical_lines_come_back_unchanged(line):
    assert scrub_text(line) == line
