"""From processed sentences to finding mentions with a certainty, and to one label per finding.

A finding's certainty in a report is that of its strongest mention (definite > probable > possible >
negated > hypothetical: one definite mention anywhere wins; a hedge in the impression outranks a
negation in the findings). The 1 / 0 / -1 / blank label comes from that certainty through the policy
(`certainty.py`). Related signs and historical mentions are kept as evidence but never reach a label.
"No Finding" (where a vocabulary has one) is set when no other finding is definite, probable or possible
(findings listed in `no_finding_ignores`, such as support devices, do not count: a normal chest with a
pacemaker is normal).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

from spacy.tokens import Doc, Span

from mgll_data.reports import assertion
from mgll_data.reports.certainty import (
    DEFINITE,
    HISTORICAL,
    HYPOTHETICAL,
    NEGATED,
    NEGATIVE,
    POSITIVE,
    POSSIBLE,
    PROBABLE,
    UNCERTAIN,
    Policy,
    is_asserted,
    strongest,
)
from mgll_data.reports.nlp import ALSO, KIND, NORMAL, PROBABLE_TERM, PSEUDO_TARGET, RELATED
from mgll_data.reports.vocabulary import Vocabulary

__all__ = ["Label", "Mention", "NEGATIVE", "POSITIVE", "UNCERTAIN", "aggregate", "sentence_mentions", "statuses"]

# Sections that describe why the study was done or how, not what it shows. Mentions in QUESTION_SECTIONS
# are the clinical question ("views obtained to evaluate for pneumonia"): hypothetical. A comparison
# section describes an earlier study: not read.
NON_FINDING_SECTIONS = frozenset({"indication", "history", "comparison", "technique", "notification"})
QUESTION_SECTIONS = frozenset({"indication", "history", "notification", "technique"})

# ConText category -> certainty; when several modify one mention the first listed wins ("no definite
# effusion" is negated; "recommend CT to evaluate possible mass" is hypothetical; "likely ... may" is the
# weaker hedge).
_BY_CATEGORY = (
    (assertion.NEGATED, NEGATED),
    (assertion.HYPOTHETICAL, HYPOTHETICAL),
    (assertion.DEVICE_PLAN, HYPOTHETICAL),
    (assertion.HISTORICAL, HISTORICAL),
    (assertion.POSSIBLE, POSSIBLE),
    (assertion.PROBABLE, PROBABLE),
    (assertion.DIFFERENTIAL, PROBABLE),
)
_HEDGES = {assertion.POSSIBLE, assertion.PROBABLE, assertion.DIFFERENTIAL, assertion.HYPOTHETICAL}


class Label(NamedTuple):
    """One finding of one report: `status` under the policy (None = blank), `certainty` as read."""

    name: str
    status: int | None
    certainty: str


@dataclass(frozen=True)
class Mention:
    """One vocabulary match. `certainty` None = it does not count (a hedged normal statement); `related`
    marks a related sign (evidence only); `status` is the label this mention alone would give under the
    policy; `rule` names what set the certainty, for the evidence file."""

    finding: str
    text: str
    certainty: str | None
    status: int | None
    rule: str
    sentence: str
    section: str | None
    start: int
    end: int
    related: bool = False

    def counts(self) -> bool:
        """Whether this mention takes part in the finding's label."""
        return not self.related and self.certainty not in (None, HISTORICAL)

    def to_dict(self) -> dict:
        return asdict(self)


def _modifiers(ent: Span) -> list:
    """The ConText modifiers of a mention, plus the hedges inside its own words: a term with a gap
    ("heart ~ enlarged") can span "the heart may be slightly enlarged", and medspaCy never lets a cue
    modify a target that contains it."""
    found = list(ent._.modifiers)
    graph = ent.doc._.context_graph
    if graph is not None and len(ent) > 2:
        found += [m for m in graph.modifiers if ent.start < m.modifier_span[0] and m.modifier_span[1] < ent.end
                  and m.category.upper() in _HEDGES]
    return found


def _certainty(ent: Span, kind: str | None) -> tuple[str | None, str]:
    """Certainty of one mention and the rule that set it."""
    literal = ent._.target_rule.literal if ent._.target_rule is not None else ent.text
    by_category: dict[str, str] = {}
    for modifier in _modifiers(ent):
        by_category.setdefault(modifier.category.upper(), modifier.rule.literal)
    if kind == NORMAL:
        # "heart size is normal" states the finding's absence; hedged, it states nothing. A negation
        # reaching it from a list before ("no effusion, and normal heart size") does not turn it around.
        if by_category.keys() & (_HEDGES - {assertion.DIFFERENTIAL}):
            return None, f"qualified normal statement '{literal}'"
        return NEGATED, f"normal statement '{literal}'"
    for category, level in _BY_CATEGORY:
        if category in by_category:
            return level, f"{level} by '{by_category[category]}'"
    if kind == PROBABLE_TERM:
        return PROBABLE, f"probable form '{literal}'"
    return DEFINITE, "affirmed"


def sentence_mentions(doc: Doc, section: str | None, offset: int, policy: Policy, question: bool = False,
                      original: Doc | None = None) -> list[Mention]:
    """Mentions of one sentence Doc; `offset` is where the sentence starts in the report, `question` marks
    a sentence of the clinical question (indication / history), whose mentions are hypothetical, and
    `original` is the sentence as written when `doc` had misspelt words replaced (same tokens)."""
    source = original if original is not None else doc
    found = []
    for ent in doc.ents:
        written = source[ent.start : ent.end]
        spelling = "" if written.text == ent.text else f" (read '{written.text}' as '{ent.text}')"
        if ent.label_ == PSEUDO_TARGET:
            continue
        metadata = (ent._.target_rule.metadata or {}) if ent._.target_rule is not None else {}
        for finding, kind in [(ent.label_, metadata.get(KIND)), *metadata.get(ALSO, ())]:
            certainty, rule = _certainty(ent, kind)
            if question and certainty not in (None, HISTORICAL):
                certainty, rule = HYPOTHETICAL, f"clinical question ({section} section)"
            related = kind == RELATED
            counted = not related and certainty not in (None, HISTORICAL)
            found.append(Mention(
                finding=finding,
                text=written.text,
                certainty=certainty,
                status=policy.status(certainty) if counted else None,
                rule=(f"related sign; {rule}" if related else rule) + spelling,
                sentence=source.text,
                section=section,
                start=offset + written.start_char,
                end=offset + written.end_char,
                related=related,
            ))
    return found


def aggregate(found: list[Mention], vocab: Vocabulary, policy: Policy) -> list[Label]:
    """One label per mentioned finding, in vocabulary order."""
    levels: dict[str, list[str]] = {}
    for mention in found:
        if mention.counts():
            levels.setdefault(mention.finding, []).append(mention.certainty)
    labels = []
    for finding in vocab.findings:
        level = strongest(levels.get(finding.name, []))
        if level is not None:
            labels.append(Label(finding.name, policy.status(level), level))
    abnormal = [
        label for label in labels if is_asserted(label.certainty) and label.name not in vocab.no_finding_ignores
    ]
    if vocab.no_finding is not None and not abnormal:
        order = {name: i for i, name in enumerate(vocab.names())}
        labels.append(Label(vocab.no_finding, policy.status(DEFINITE), DEFINITE))
        labels.sort(key=lambda label: order[label.name])
    return labels


def statuses(labels: list[Label]) -> dict[str, int]:
    """finding -> 1 / 0 / -1 for the labels that have a status (blank ones left out)."""
    return {label.name: label.status for label in labels if label.status is not None}
