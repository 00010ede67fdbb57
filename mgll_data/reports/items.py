"""What each granularity's text says, as items: the unit MGLL builds that level's soft targets from.

Two images are alike at a level as far as their item sets overlap (Jaccard), so items must name what
the level's text asserts and nothing it does not: the category word; the asserted findings (hedged ones
keep their hedge); per asserted finding its side and size at `description`, its severity at
`explanation` -- read from the sentences that assert it, with the same words a reader would use. A
normal study says "normal" at the free-text levels whichever words its impression uses, so two normal
studies are alike there. A level whose text is None has no items (None).

`item_vocabulary` lists every item a vocabulary can produce, so a dataset can declare its item space up
front (file metadata) and a trainer can give each item the same column on every rank.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from mgll_data.reports.certainty import DEFINITE, POSSIBLE, PROBABLE, is_asserted
from mgll_data.reports.vocabulary import Finding, Vocabulary

if TYPE_CHECKING:  # labels imports spaCy; the builder's main process only needs item_vocabulary
    from mgll_data.reports.labels import Label, Mention

ITEM_GRANULARITIES = ("category", "disease", "description", "explanation")
NORMAL, ABNORMAL, NO_FINDING = "normal", "abnormal", "no finding"
SIDES = {"left": "left", "right": "right", "bilateral": "bilateral", "both": "bilateral", "bibasilar": "bilateral",
         "bibasal": "bilateral", "left-sided": "left", "right-sided": "right"}  # fmt: skip
SIZES = {"small": "small", "tiny": "small", "trace": "small", "minimal": "small", "moderate": "moderate",
         "large": "large", "massive": "large", "big": "large", "extensive": "large"}  # fmt: skip
# How far from the finding's words a side or size word may stand, in words ("small left pleural effusion",
# "effusion on the right"); further away it more likely belongs to another finding of the sentence.
WINDOW_BEFORE, WINDOW_AFTER = 4, 4
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")


def _nearest(words: list[str], at: tuple[int, int], table: Mapping[str, str]) -> str | None:
    """The table's value of the word nearest to the span `at` (word indices), within the window."""
    start, end = at
    best = None
    for i in range(max(0, start - WINDOW_BEFORE), min(len(words), end + WINDOW_AFTER)):
        if words[i] in table and not start <= i < end:
            distance = start - i if i < start else i - end + 1
            if best is None or distance < best[0]:
                best = (distance, table[words[i]])
    return best[1] if best else None


def _span(words: list[str], phrase: str) -> tuple[int, int] | None:
    target = _WORD.findall(phrase.lower())
    for i in range(len(words) - len(target) + 1):
        if target and words[i : i + len(target)] == target:
            return i, i + len(target)
    return None


def side_and_size(mentions: Iterable[Mention]) -> tuple[str | None, str | None]:
    """The side and size the mentions' sentences state next to the finding's own words (first found)."""
    side = size = None
    for mention in mentions:
        words = _WORD.findall(mention.sentence.lower())
        at = _span(words, mention.text)
        if at is None:
            continue
        side = side or _nearest(words, at, SIDES)
        size = size or _nearest(words, at, SIZES)
    return side, size


def severity_name(finding: Finding, sentences: Iterable[str]) -> str | None:
    """The most severe of the vocabulary's severity variants whose trigger words the sentences use."""
    text = " " + " ".join(s.lower() for s in sentences) + " "
    for severity in reversed(finding.severity):
        if any(f" {word} " in text or f" {word}," in text or f" {word}." in text for word in severity.when):
            return severity.name
    return None


def _qualified(name: str, certainty: str) -> str:
    return name if certainty == DEFINITE else f"{certainty}:{name}"


def granularity_items(
    texts: Mapping[str, str | None], *, labels: list[Label], found: list[Mention], vocab: Vocabulary
) -> dict[str, list[str] | None]:
    """Items per item granularity present in `texts` (None where its text is None)."""
    asserted = [
        (name, certainty) for name, _, certainty in labels if name != vocab.no_finding and is_asserted(certainty)
    ]
    abnormal = any(name not in vocab.no_finding_ignores for name, _ in asserted)

    def asserting(name: str, certainty: str) -> list[Mention]:
        return [m for m in found if m.finding == name and m.counts() and m.certainty == certainty]

    out: dict[str, list[str] | None] = {}
    for granularity in (g for g in ITEM_GRANULARITIES if g in texts):
        if texts[granularity] is None:
            out[granularity] = None
        elif granularity == "category":
            out[granularity] = [ABNORMAL if abnormal else NORMAL]
        elif granularity == "disease":
            out[granularity] = [_qualified(name, c) for name, c in asserted] or [NO_FINDING]
        elif granularity == "description":
            described = []
            for name, certainty in asserted:
                side, size = side_and_size(asserting(name, certainty))
                described.append("|".join(part for part in (name, side, size) if part))
            out[granularity] = described or [NORMAL]
        else:
            graded = []
            for name, certainty in asserted:
                grade = severity_name(vocab.by_name[name], (m.sentence for m in asserting(name, certainty)))
                graded.append(f"{name}|{grade}" if grade else name)
            out[granularity] = graded or [NORMAL]
    return out


def item_vocabulary(vocab: Vocabulary) -> list[str]:
    """Every item `granularity_items` can produce with this vocabulary, in a fixed order."""
    items = [NORMAL, ABNORMAL, NO_FINDING]
    sides, sizes = sorted(set(SIDES.values())), sorted(set(SIZES.values()))
    for finding in vocab.findings:
        name = finding.name
        items += [name, _qualified(name, PROBABLE), _qualified(name, POSSIBLE)]
        items += [f"{name}|{side}" for side in sides] + [f"{name}|{size}" for size in sizes]
        items += [f"{name}|{side}|{size}" for side in sides for size in sizes]
        items += [f"{name}|{severity.name}" for severity in finding.severity]
    return list(dict.fromkeys(items))
