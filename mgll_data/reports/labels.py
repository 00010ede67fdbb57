"""From a processed report (spaCy Doc) to finding mentions and to one label per finding.

Aggregation is CheXpert-style so labels from different vocabularies mean the same thing: a finding is
positive (1) if any mention asserts it, else uncertain (-1) if any mention hedges it, else negative (0)
if it is only ever negated; unmentioned findings are absent. "No Finding" (where a vocabulary has one) is
1 exactly when nothing else is positive or uncertain (findings listed in the vocabulary's
`no_finding_ignores`, such as support devices, do not count: a normal chest with a pacemaker is normal).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from spacy.tokens import Doc, Span

from mgll_data.reports import assertion
from mgll_data.reports.nlp import HEDGED, NORMAL, PSEUDO_TARGET
from mgll_data.reports.vocabulary import Vocabulary

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1

# Sections that describe why the study was done or how, not what it shows.
NON_FINDING_SECTIONS = frozenset({"indication", "history", "comparison", "technique", "notification"})
# Headings whose body is one paragraph: text after a blank line below them is an unheaded narrative
# (MIMIC: "EXAMINATION: CHEST (PA AND LATERAL)\n\n Dense consolidation ..."), not part of the heading.
ONE_PARAGRAPH_SECTIONS = frozenset({"technique", "comparison"})
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class Mention:
    """One vocabulary match with its assertion; `status` None means it does not count (hypothetical,
    historical). `rule` names what set the status, for the evidence file."""

    finding: str
    text: str
    status: int | None
    rule: str
    sentence: str
    section: str | None
    start: int
    end: int

    def to_dict(self) -> dict:
        return asdict(self)


def mention_status(ent: Span) -> tuple[int | None, str]:
    """Status of one mention and the rule that set it. Negation outranks hedging ("no definite
    effusion" is a negative statement); hypothetical and historical mentions ("to evaluate for
    pneumonia", "history of pneumonia") say nothing about this image, so they do not count."""
    rule = ent._.target_rule
    metadata = (rule.metadata or {}) if rule is not None else {}
    # a cue inside the matched phrase is part of it ("mediastinum is not widened" as a normal statement)
    modifiers = [m for m in ent._.modifiers if not (ent.start <= m.modifier_span[0] and m.modifier_span[1] <= ent.end)]
    by_category = {}
    for modifier in modifiers:
        by_category.setdefault(modifier.category.upper(), modifier.rule.literal)
    if metadata.get(NORMAL):
        # "heart size is normal" states the finding's absence; hedged or negated, it states nothing
        if by_category.keys() & {assertion.NEGATED, assertion.POSSIBLE, assertion.HYPOTHETICAL}:
            return None, f"qualified normal statement '{rule.literal}'"
        return NEGATIVE, f"normal statement '{rule.literal}'"
    if assertion.NEGATED in by_category:
        return NEGATIVE, f"negated by '{by_category[assertion.NEGATED]}'"
    if assertion.HYPOTHETICAL in by_category:
        return None, f"hypothetical by '{by_category[assertion.HYPOTHETICAL]}'"
    if assertion.HISTORICAL in by_category:
        return None, f"historical by '{by_category[assertion.HISTORICAL]}'"
    if assertion.POSSIBLE in by_category:
        return UNCERTAIN, f"uncertain by '{by_category[assertion.POSSIBLE]}'"
    if metadata.get(HEDGED):
        return UNCERTAIN, f"hedged term '{rule.literal}'"
    return POSITIVE, "affirmed"


def _wanted_sections(doc: Doc, sections: tuple[str, ...] | None) -> set[str | None] | None:
    """Which section names count: the requested ones when the report has any of them, else everything
    except indication/history/comparison/technique (a report without headings counts whole)."""
    if not sections:
        return None
    present = {s.category for s in doc._.sections}
    wanted = set(sections) & present
    if wanted:
        return wanted
    return {None} | (present - NON_FINDING_SECTIONS)


def _section_of(ent: Span) -> str | None:
    section = ent._.section_category
    if section in ONE_PARAGRAPH_SECTIONS and ent._.section is not None:
        doc = ent.doc
        body_start = doc[ent._.section.body_start].idx if ent._.section.body_start < len(doc) else ent.start_char
        body = doc.text[body_start : ent.start_char]
        if _PARAGRAPH_BREAK.search(body.lstrip("\n \t")):
            return None
    return section


def mentions(doc: Doc, sections: tuple[str, ...] | None = None) -> list[Mention]:
    wanted = _wanted_sections(doc, sections)
    found = []
    for ent in doc.ents:
        if ent.label_ == PSEUDO_TARGET:
            continue
        section = _section_of(ent)
        if wanted is not None and section not in wanted:
            continue
        status, rule = mention_status(ent)
        found.append(
            Mention(
                finding=ent.label_,
                text=ent.text,
                status=status,
                rule=rule,
                sentence=ent.sent.text.strip(),
                section=section,
                start=ent.start_char,
                end=ent.end_char,
            )
        )
    return found


def aggregate(found: list[Mention], vocab: Vocabulary) -> list[tuple[str, int]]:
    """One (finding, status) per mentioned finding, in vocabulary order."""
    statuses: dict[str, set[int]] = {}
    for mention in found:
        if mention.status is not None:
            statuses.setdefault(mention.finding, set()).add(mention.status)
    labels = []
    for finding in vocab.findings:
        seen = statuses.get(finding.name)
        if not seen:
            continue
        if POSITIVE in seen:
            labels.append((finding.name, POSITIVE))
        elif UNCERTAIN in seen:
            labels.append((finding.name, UNCERTAIN))
        else:
            labels.append((finding.name, NEGATIVE))
    abnormal = [name for name, status in labels if status in (POSITIVE, UNCERTAIN) and name not in vocab.no_finding_ignores]
    if vocab.no_finding is not None and not abnormal:
        order = {name: i for i, name in enumerate(vocab.names())}
        labels.append((vocab.no_finding, POSITIVE))
        labels.sort(key=lambda item: order[item[0]])
    return labels
