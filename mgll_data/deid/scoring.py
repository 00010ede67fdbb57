"""Scoring a de-identifier against gold PHI spans: what `bench/bench_deid.py` prints and the tests check.

Matching is span-level and strict on what leaks: a gold span counts as caught only when every letter and
digit in it lies inside text the tool removed ("Hortensia [NAME]" leaks the given name, so it is a miss),
whatever type the tool gave it. A removed span is a true positive when it overlaps any gold span and a
false positive otherwise; precision per type is read from the tools that say a type. Spaces and
punctuation inside a gold span ("PETTIGREW, AMBROSE") need not be removed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Span = tuple[int, int, str]  # start, end, PHI type (or "" where a tool gives none)

PLACEHOLDER = re.compile(r"\[(NAME|DATE|AGE|PHONE|ID|ADDRESS|EMAIL|URL)\]")


class AlignmentError(ValueError):
    """The scrubbed text is not the original with some stretches replaced by placeholders."""


def placeholder_spans(original: str, scrubbed: str) -> list[Span]:
    """Where `scrub_text` put each placeholder, as spans of the original text.

    The scrubbed text is the original with stretches replaced by "[TYPE]" tokens, so the kept pieces
    between the tokens are found in order; each token covers the gap between its neighbours.
    """
    pieces = PLACEHOLDER.split(scrubbed)  # kept text, type, kept text, type, ...
    if len(pieces) == 1:
        if scrubbed != original:
            raise AlignmentError("the text changed without a placeholder")
        return []
    pattern = "".join(
        re.escape(piece) if i % 2 == 0 else "(.+?)" for i, piece in enumerate(pieces)
    )
    match = re.fullmatch(pattern, original, re.DOTALL)
    if match is None:
        raise AlignmentError("the kept text is not found in order in the original")
    types = pieces[1::2]
    return [(match.start(g), match.end(g), types[g - 1]) for g in range(1, len(types) + 1)]


@dataclass
class Score:
    """Counts behind recall (per gold type) and precision (per predicted type and overall)."""

    gold: Counter[str] = field(default_factory=Counter)
    caught: Counter[str] = field(default_factory=Counter)
    predicted: Counter[str] = field(default_factory=Counter)
    predicted_true: Counter[str] = field(default_factory=Counter)
    missed: list[tuple[str, str, str]] = field(default_factory=list)  # (type, value, text)
    false_positives: list[tuple[str, str]] = field(default_factory=list)  # (value, text)

    def recall(self, phi_type: str | None = None) -> float:
        gold = self.gold[phi_type] if phi_type else sum(self.gold.values())
        caught = self.caught[phi_type] if phi_type else sum(self.caught.values())
        return caught / gold if gold else float("nan")

    def precision(self, phi_type: str | None = None) -> float:
        predicted = self.predicted[phi_type] if phi_type else sum(self.predicted.values())
        true = self.predicted_true[phi_type] if phi_type else sum(self.predicted_true.values())
        return true / predicted if predicted else float("nan")


def score(texts: Sequence[str], gold: Sequence[Iterable[Span]], removed: Sequence[Sequence[Span]]) -> Score:
    """Score one tool's removed spans against the gold spans, text by text."""
    result = Score()
    for text, gold_spans, tool_spans in zip(texts, gold, removed, strict=True):
        gold_spans = [tuple(s) for s in gold_spans]
        for start, end, phi_type in gold_spans:
            result.gold[phi_type] += 1
            hidden = _hidden_mask(text, start, end, tool_spans)
            if all(hidden[i] for i, ch in enumerate(text[start:end]) if ch.isalnum()):
                result.caught[phi_type] += 1
            else:
                result.missed.append((phi_type, text[start:end], text))
        for start, end, phi_type in tool_spans:
            result.predicted[phi_type] += 1
            if any(start < g_end and g_start < end for g_start, g_end, _ in gold_spans):
                result.predicted_true[phi_type] += 1
            else:
                result.false_positives.append((text[start:end], text))
    return result


def _hidden_mask(text: str, start: int, end: int, removed: Sequence[Span]) -> list[bool]:
    hidden = [False] * (end - start)
    for a, b, _ in removed:
        for i in range(max(a, start), min(b, end)):
            hidden[i - start] = True
    return hidden
