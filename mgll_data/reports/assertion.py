"""Radiology-tuned ConText rules: which words negate, hedge or stop the scope of a finding mention.

medspaCy's default ConText rules target general clinical notes (history, family, "denies"). Radiology
reports differ: absence is stated as "no", "without", "clear of", "has resolved", "is not seen";
uncertainty as "cannot exclude", "may represent", "versus", "suggestive of"; and findings are listed with
commas, so a single "No" must reach every item up to the sentence end or a contrast word ("but",
"however", "although") that starts a new statement. The phrasing is our own, informed by the published
NegEx / NegBio / CheXpert labeller ideas.

Each rule is (literal, category, direction, max_scope). `max_scope` counts tokens; None = to the
sentence end or a terminator.
"""

from __future__ import annotations

from medspacy.context import ConTextRule

NEGATED = "NEGATED_EXISTENCE"
POSSIBLE = "POSSIBLE_EXISTENCE"
HYPOTHETICAL = "HYPOTHETICAL"
HISTORICAL = "HISTORICAL"
TERMINATE = "TERMINATE"
PSEUDO = "PSEUDO"

_FORWARD_NEGATION = [
    "no", "not", "without", "no evidence of", "no evidence for", "no signs of", "no sign of",
    "no convincing",     "no radiographic evidence of", "no findings of", "no findings to suggest", "negative for",
    "free of", "clear of", "absence of", "absent", "resolution of", "resolved", "interval resolution of",
    "near complete resolution of", "denies", "denied", "denying", "deny", "never", "neither", "nor",
    "rules out", "ruled out", "ruling out", "rule out the presence of", "excluded", "not demonstrate",
    "does not demonstrate", "fails to reveal", "failed to reveal", "not see",     "without evidence of", "without any", "no longer", "not appear", "does not appear", "not identified",
    "removal of", "interval removal of",     "nothing to suggest",
    "unremarkable for", "with no", "there is no",
    "there are no", "there has been no", "there was no", "not seen", "not present", "not visualized",
    "none", "-ve for", "low suspicion for", "no known", "was removed", "were removed", "clearing of",
    "interval clearing of",
]
_BACKWARD_NEGATION = [
    "is not seen", "are not seen", "not seen", "not identified", "is not identified", "are not identified",
    "not visualized", "not appreciated", "is absent", "are absent", "absent", "has resolved",
    "have resolved", "resolved", "has cleared", "have cleared", "cleared", "is no longer seen",
    "are no longer seen", "no longer seen", "no longer visualized", "no longer present", "no longer evident",
    "not present", "is not present", "are not present", "not evident", "not demonstrated",
    "ruled out", "has been ruled out", "has been excluded", "was ruled out", "is negative", "are negative",
    "has been removed", "have been removed", "not detected", "unlikely", "is unlikely",
    "not apparent", "not noted", "are not enlarged", "is not enlarged", "not appreciable",
    "none", "was negative", "were negative", "- none",
]
_FORWARD_POSSIBLE = [
    "may", "might", "could", "may represent", "might represent", "could represent", "may be", "could be",
    "possible", "possibly", "probable", "probably", "likely", "most likely", "presumably", "presumed",
    "suspect", "suspected", "suspicious for", "suspicious of", "concerning for", "concern for",
    "worrisome for", "cannot exclude", "can not exclude", "cannot be excluded", "cannot rule out",
    "can not rule out", "cannot entirely exclude", "not excluded", "not entirely excluded",
    "difficult to exclude", "question of", "questionable", "suggest", "suggests", "suggesting",
    "suggestive of", "suggestion of", "differential", "differential diagnosis",
    "differential includes", "considerations include", "consider", "considered", "borderline",
    "equivocal", "indeterminate", "may reflect", "may relate", "could reflect", "would be",
    "cannot differentiate", "not clearly", "potential", "potentially", "ddx",
    "developing", "atypical", "versus early",
    "at the upper limits of normal", "upper limits of normal", "upper limit of normal", "top normal",
    "top-normal", "difficult to assess", "not well evaluated", "obscured", "poorly evaluated", "less likely",
]
_BACKWARD_POSSIBLE = [
    "cannot be excluded", "can not be excluded", "cannot be ruled out", "can not be ruled out",
    "not excluded", "not entirely excluded", "is not excluded", "not ruled out", "is possible",
    "are possible", "is suspected", "are suspected", "is not entirely excluded", "is questionable",
    "is likely", "are likely", "is suggested", "is favored", "not completely excluded",
    "could be present", "may be present", "?", "should be considered",
    "is a consideration", "are a consideration", "not entirely", "less likely",
]
_BIDIRECTIONAL_POSSIBLE = ["versus", "vs", "vs.", "and / or", "and/or"]
_HYPOTHETICAL = [
    "evaluate for", "evaluation for", "assess for", "to assess", "to evaluate", "to exclude", "eval for",
    "r / o", "r/o", "rule out", "to rule out", "if", "in case of", "risk of", "at risk for",
    "screening for", "indication", "reason for exam", "check for", "look for",
]
_HISTORICAL = ["history of", "h / o", "hx of", "known history of", "remote history of", "status post"]
_TERMINATE = [
    "but", "however", "although", "though", "except", "with the exception of", "aside from",
    "apart from", "which", "whereas", "yet", "nevertheless", "still", "other than", "otherwise",
    "due to", "secondary to", "as well as", "and there is", "there is", "there are", "while",
    "and the", "and a", "and an",
    "persistent", "residual", "remaining", "remains", "continues", "unchanged", "stable", "although there is", ";", ":",
]
# Phrases that contain a trigger word but do not negate or hedge what follows.
_PSEUDO = [
    "no increase", "no change", "no significant change", "no interval change", "not only", "no further change",
    "not significantly changed", "not changed", "no new change", "not certain if", "not certain whether",
    "without change", "without significant change", "without interval change", "gram negative",
    "no change in", "unchanged in", "not necessarily", "not extend", "not clear whether", "no decrease",
    "no definite change", "may be related", "could be related", "no significant interval change",
    "negative for change", "likely related", "otherwise unremarkable", "not improved", "not resolved", "no resolution",
    "has not resolved", "have not resolved", "not completely resolved", "incompletely resolved",
    "not entirely resolved", "partially resolved", "partial resolution",
]

# A comma or "and" followed by a degree word starts a new statement inside one sentence:
# "No effusion, mild cardiomegaly." / "No pneumothorax and small left effusion." ("large" is left out:
# "no pneumothorax or large effusion" lists what is absent).
_DEGREE_WORDS = ["mild", "mildly", "moderate", "moderately", "severe", "minimal", "small", "trace", "stable",
                 "persistent", "new", "increased", "increasing", "decreased", "unchanged", "chronic", "old", "slight"]
_CLAUSE_BREAKS = [
    ConTextRule(", degree", "CONJ", direction="TERMINATE", pattern=[{"TEXT": ","}, {"LOWER": {"IN": _DEGREE_WORDS}}]),
    ConTextRule("and degree", "CONJ", direction="TERMINATE", pattern=[{"LOWER": "and"}, {"LOWER": {"IN": _DEGREE_WORDS}}]),
]

_BACKWARD_SCOPE = 8
_FORWARD_POSSIBLE_SCOPE = 12


def _rules(literals: list[str], category: str, direction: str, max_scope: int | None = None) -> list[ConTextRule]:
    return [ConTextRule(lit, category, direction=direction, max_scope=max_scope) for lit in literals]


def _two_way(forward: list[str], backward: list[str], category: str) -> list[ConTextRule]:
    """A phrase listed both ways ("resolved", "ruled out") becomes one bidirectional rule: two rules on the
    same words would compete and one direction would be lost."""
    both = [lit for lit in forward if lit in backward]
    rules = _rules([lit for lit in forward if lit not in both], category, "FORWARD",
                   _FORWARD_POSSIBLE_SCOPE if category == POSSIBLE else None)
    rules += _rules([lit for lit in backward if lit not in both], category, "BACKWARD", _BACKWARD_SCOPE)
    rules += _rules(both, category, "BIDIRECTIONAL", _BACKWARD_SCOPE)
    return rules


def context_rules() -> list[ConTextRule]:
    """All ConText rules of our radiology set."""
    rules = _two_way(_FORWARD_NEGATION, _BACKWARD_NEGATION, NEGATED)
    rules += _two_way(_FORWARD_POSSIBLE, _BACKWARD_POSSIBLE, POSSIBLE)
    rules += _rules(_BIDIRECTIONAL_POSSIBLE, POSSIBLE, "BIDIRECTIONAL", 6)
    rules += _rules(_HYPOTHETICAL, HYPOTHETICAL, "FORWARD", 10)
    rules += _rules(_HISTORICAL, HISTORICAL, "FORWARD", 6)
    rules += _rules(_TERMINATE, "CONJ", "TERMINATE")
    rules += _rules(_PSEUDO, PSEUDO, "PSEUDO")
    rules += _CLAUSE_BREAKS
    return rules
