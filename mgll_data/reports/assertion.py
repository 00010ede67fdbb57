"""Radiology ConText rules: which words negate, hedge, ask about or stop the scope of a finding mention.

medspaCy's default ConText rules target general clinical notes. Radiology reports state absence as "no",
"without", "has resolved", "is not seen"; they grade their doubt ("likely" is not "may represent"); they
ask questions ("to evaluate for", "rule out") and recommend; and they list findings with commas, so one
"No" reaches every item up to the sentence end or a word that starts a new statement. The cue words are
our own list, checked against NegBio's and the CheXpert labeler's patterns (docs/vocabulary-comparison.md
says where they differ and why); the cues adopted from them (maybe, disappearance of, no / without
development of, incompletely evaluated, not well visualized, could / may have this appearance, correlate
clinically for) come from NegBio (a US Government work, public domain; Peng et al., AMIA 2018) and the
CheXpert labeler (MIT licence, Copyright (c) 2018 Stanford Machine Learning Group).

Categories map to the certainty levels of `certainty.py`: NEGATED -> negated, PROBABLE -> probable,
POSSIBLE -> possible, HYPOTHETICAL -> hypothetical, HISTORICAL -> historical (not counted).
Each rule is (literal, category, direction, max_scope); `max_scope` counts tokens, None = to the sentence
end or a terminator.
"""

from __future__ import annotations

from medspacy.context import ConTextRule
from spacy.tokens import Span

NEGATED = "NEGATED_EXISTENCE"
PROBABLE = "PROBABLE_EXISTENCE"
POSSIBLE = "POSSIBLE_EXISTENCE"
HYPOTHETICAL = "HYPOTHETICAL"
HISTORICAL = "HISTORICAL"
PSEUDO = "PSEUDO"
CONJ = "CONJ"
COMMA = "COMMA"
CLAUSE = "CLAUSE"
DEVICE_PLAN = "DEVICE_PLAN"  # hypothetical for devices only; it cuts no other cue

_FORWARD_NEGATION = [
    "no", "not", "without", "no evidence of", "no evidence for", "no signs of", "no sign of", "no convincing",
    "no radiographic evidence of", "no findings of", "no findings to suggest", "negative for", "free of", "clear of",
    "absence of", "absent", "resolution of", "interval resolution of", "near complete resolution of",
    "complete resolution of", "denies", "denied", "deny", "denying", "never", "neither", "nor", "ruled out for",
    "not demonstrate", "low suspicion for", "no findings suggesting", "no evidence suggesting",
    "does not demonstrate", "fails to reveal", "failed to reveal", "without evidence of", "without any", "no longer",
    "not appear", "does not appear", "not identified", "removal of", "interval removal of", "nothing to suggest",
    "unremarkable for", "with no", "there is no", "there are no", "there has been no", "there was no",
    "and there is no", "and there are no", "not seen", "not present", "not visualized", "-ve for", "no known",
    "was removed", "were removed", "clearing of", "interval clearing of", "re - expansion of", "reexpansion of",
    "without recurrent", "no recurrence of", "no longer visible",
]
_BACKWARD_NEGATION = [
    "is not seen", "are not seen", "not seen", "not identified", "is not identified", "are not identified",
    "not visualized", "not appreciated", "is absent", "are absent", "absent", "is no longer seen",
    "are no longer seen", "no longer seen", "no longer visualized", "no longer present", "no longer evident",
    "not present", "is not present", "are not present", "not evident", "not demonstrated", "ruled out",
    "has been ruled out", "has been excluded", "was ruled out", "is negative", "are negative", "not detected",
    "not apparent", "not noted", "are not enlarged", "is not enlarged", "not appreciable", "none", "was negative",
    "were negative", "- none", "is no longer visible", "are no longer visible", "no longer visible",
    "not visible", "is not visible", "are not visible", "is no longer evident", "are no longer evident",
    "has re - expanded", "have re - expanded", "re - expanded", "has reexpanded", "reexpanded",
]
# Gone since the last study: their lists are long ("the effusion, edema and atelectasis have cleared"), so
# these reach back to the start of the sentence.
_BACKWARD_RESOLVED = [
    "has resolved", "have resolved", "resolved", "has cleared", "have cleared", "cleared", "has been removed",
    "have been removed", "has resolved completely", "is resolved", "are resolved", "has essentially resolved",
    "have essentially resolved", "has completely resolved", "have completely resolved",
]
_FORWARD_PROBABLE = [
    "likely", "most likely", "more likely", "probable", "probably", "presumably", "presumed", "suggestive of",
    "suggests", "suggesting", "suggestion of", "favored", "favor", "favoring", "borderline", "likely representing",
    "likely represents", "likely reflects", "likely reflecting", "most compatible with", "most consistent with",
    "favour", "favoured", "favouring",
]
_BACKWARD_PROBABLE = ["is likely", "are likely", "is favored", "is suggested", "is probable", "are probable",
                      "is favored", "are favored", "is favoured", "are favoured", "is presumed", "likely present",
                      "are likely present",
                      "is likely present", "is most likely", "is probably present"]
_FORWARD_POSSIBLE = [
    "may", "might", "could", "may represent", "might represent", "could represent", "may be", "could be",
    "possible", "possibly", "suspect", "suspected", "suspicious for", "suspicious of", "concerning for",
    "concern for", "worrisome for", "cannot exclude", "can not exclude", "cannot be excluded", "cannot rule out",
    "can not rule out", "cannot entirely exclude", "not excluded", "not entirely excluded", "difficult to exclude",
    "question of", "questionable", "suggestion of", "differential", "differential diagnosis",
    "differential includes", "differential considerations include", "considerations include", "consider",
    "considered", "equivocal", "may reflect", "may relate to", "could reflect", "may be related to",
    "could be related to", "may be due to", "could be due to", "cannot differentiate", "potential", "potentially",
    "ddx", "atypical", "less likely", "not clearly", "difficult to assess", "not well evaluated",
    "poorly evaluated", "obscured", "obscuring", "cannot be ruled out", "in the differential", "perhaps",
    "?", "rather than", "not favored", "unlikely", "may account for", "might account for", "could account for",
    "suspicion for", "suspicion of", "could have a similar appearance", "may have a similar appearance",
    "maybe", "incompletely evaluated", "not well visualized", "may have this appearance",
    "could have this appearance",
]
_BACKWARD_POSSIBLE = [
    "cannot be excluded", "can not be excluded", "cannot be ruled out", "can not be ruled out", "not excluded",
    "not entirely excluded", "is not excluded", "not ruled out", "is possible", "are possible", "is suspected",
    "are suspected", "is not entirely excluded", "is questionable", "not completely excluded", "could be present",
    "may be present", "?", "should be considered", "is a consideration", "are a consideration", "not entirely",
    "is less likely", "is not ruled out", "are not excluded", "is not well seen", "cannot be entirely excluded",
    "is in the differential", "could be considered", "is difficult to exclude", "is questioned",
    "are questioned", "is a possibility", "are a possibility", "is unlikely", "are unlikely", "unlikely",
    "is suspected", "is considered", "are considered", "is not favored", "may be present", "might be present",
    "is possibly present", "is in the differential diagnosis", "less likely", "cant be excluded",
    "can't be excluded", "is the primary concern", "is the main concern", "is a concern", "remains a concern",
    "is of concern", "may account for",
    "might account for", "could account for", "could have a similar appearance", "may have a similar appearance",
]
# Differentials name every alternative: "effusion versus thickening", "atelectasis or pneumonia"; they
# reach the next few words on either side, within one clause (a comma ends them).
DIFFERENTIAL = "DIFFERENTIAL"
_DIFFERENTIAL = ["versus", "vs", "vs.", "and / or", "and/or", "or"]
# Questions and plans: "to evaluate for pneumonia", "rule out pneumothorax" look forward; a recommendation
# puts its whole sentence in the future ("Follow-up CT is recommended for the nodule").
_FORWARD_HYPOTHETICAL = [
    "evaluate for", "evaluation for", "assess for", "to exclude", "eval for", "r / o", "r/o", "rule out",
    "to rule out", "rule - out", "if", "in case of", "risk of", "at risk for", "screening for", "check for",
    "look for", "query", "correlate for", "monitor for", "concern is", "question is", "indication",
    "reason for exam", "assessment for", "to look for", "to assess for", "if there is", "if there are", "eval",
    "insensitive for", "not sensitive for", "limited sensitivity for", "correlate clinically for",
    "clinical correlation for",
    "to evaluate for", "exclude", "excluding",
]
# "history of", "s/p" reach to the end of their clause; "prior", "old" only the next few words ("prior
# granulomatous infection"), so "compared to prior, new effusion" keeps its effusion.
# A device taken out is gone ("after pigtail catheter removal"); one recommended is not in the chest yet
# ("recommend chest tube placement"). Other findings are not removed by these words ("pneumothorax after
# chest tube removal").
_DEVICE_REMOVED = ["removal", "removed", "withdrawn", "discontinued"]
_DEVICE_PLANS = ["recommend", "recommended", "recommends", "would recommend", "suggest", "suggested", "consider"]
_DEVICES = {"Support Devices"}
_HISTORICAL = ["history of", "h / o", "hx of", "known history of", "remote history of", "status post", "s / p",
               "prior history of", "past history of"]
_HISTORICAL_NEAR = ["prior", "previous", "old", "remote", "past", "treated"]
_HISTORICAL_SCOPE = 4
# Things a historical cue must not touch: an old fracture or a device in place is still seen on the image.
_HISTORICAL_EXCLUDED = {"Fracture", "Support Devices"}
_TERMINATE = [
    "but", "however", "although", "though", "except", "with the exception of", "aside from", "apart from",
    "which", "whereas", "yet", "nevertheless", "other than", "otherwise", "as well as", "while", "and the", "and a",
    "and an", "and there is", "and there are", ";",
]
# Words that start a new clause for what looks forward, but leave a question open: "if there is".
_CLAUSE_STARTS = ["there is", "there are"]
# Phrases that contain a trigger word but do not negate or hedge what follows.
_PSEUDO = [
    "no increase", "no change", "no significant change", "no interval change", "not only", "no further change",
    "not significantly changed", "not changed", "no new change", "not certain if", "not certain whether",
    "without change", "without significant change", "without interval change", "gram negative", "no change in",
    "unchanged in", "not necessarily", "not extend", "not clear whether", "no decrease", "no definite change",
    "no significant interval change", "negative for change", "otherwise unremarkable", "not improved",
    "not resolved", "no resolution", "has not resolved", "have not resolved", "not completely resolved",
    "incompletely resolved", "not entirely resolved", "partially resolved", "partial resolution",
    "prior study", "prior studies", "prior exam", "prior exams", "prior examination", "prior film", "prior films",
    "prior radiograph", "prior radiographs", "prior chest radiograph", "prior images", "prior imaging",
    "prior ct", "prior x - ray", "prior cxr", "previous study", "previous exam", "previous examination",
    "previous film", "previous radiograph", "previous images", "previous ct", "prior to", "since prior",
    "compared to prior", "compared with prior", "when compared to prior", "from prior", "than prior",
    "on prior", "to prior", "with prior", "similar to prior", "as on prior", "on the prior", "the prior",
    "no other", "not well", "nearly resolved", "almost resolved", "largely resolved", "mostly resolved",
    "near resolution", "resolving", "document resolution of", "documenting resolution of", "ensure resolution of",
    "confirm resolution of", "assess resolution of", "evaluate resolution of", "to document resolution",
    "document resolution", "until resolution", "unlikely to change", "year - old", "year old", "years old",
    "yr - old", "month - old", "day - old", "years - old", "not present previously", "was not present previously",
    "not present on", "not seen previously", "not previously seen", "not previously present",
    "not seen on the prior", "not present on the prior",
]

# A comma, "and" or "with" followed by a degree word starts a new statement inside one sentence:
# "No effusion, mild cardiomegaly." / "No pneumothorax and small left effusion." ("large" is left out:
# "no pneumothorax or large effusion" lists what is absent). They end what looks forward only: a list
# before a backward cue ("the effusion, left atelectasis and mild edema have resolved") stays one list.
_DEGREE_WORDS = ["mild", "mildly", "moderate", "moderately", "severe", "minimal", "small", "trace", "stable",
                 "persistent", "new", "increased", "increasing", "decreased", "unchanged", "chronic", "old", "slight",
                 "residual", "there", "the", "bilateral", "left", "right", "improving", "worsening", "interval"]
# Terminators and commas get a one-token scope of their own: medspaCy compares scopes before it lets one
# modifier cut another, and its overlap test misses a scope that lies wholly inside the other.
_CUT_SCOPE = 1
_CLAUSE_BREAKS = [
    ConTextRule(", degree", CLAUSE, direction="PSEUDO", max_scope=_CUT_SCOPE,
                pattern=[{"TEXT": ","}, {"LOWER": {"IN": _DEGREE_WORDS}}]),
    ConTextRule("and degree", CLAUSE, direction="PSEUDO", max_scope=_CUT_SCOPE,
                pattern=[{"LOWER": "and"}, {"LOWER": {"IN": [w for w in _DEGREE_WORDS if w != "the"]}}]),
    ConTextRule("with degree", CLAUSE, direction="PSEUDO", max_scope=_CUT_SCOPE,
                pattern=[{"LOWER": "with"}, {"LOWER": {"IN": [w for w in _DEGREE_WORDS if w != "the"]}}]),
]

_BACKWARD_SCOPE = 12
_FORWARD_HEDGE_SCOPE = 12
_DIFFERENTIAL_SCOPE = 3
_VERBS = frozenset({"is", "are", "was", "were", "has", "have", "had", "shows", "show", "demonstrates", "remains",
                    "remain", "appears", "appear"})
_CLAUSE_JOINS = frozenset({"and", ",", "but", "with", "while", "whereas"})
_SINGULAR = frozenset({"is", "was", "has"})
_PREDICATE_FILLERS = frozenset({"all", "now", "both", "been", "since", "each", "also", "in", "the", "interval"})


def _same_clause(target: Span, modifier: Span, _between: Span) -> bool:
    """A backward cue ("is not seen") belongs to the clause right before it: a mention whose own words
    hold a verb ("heart is enlarged and pneumothorax is not seen"), or one separated from the cue by a
    verb and a join ("effusion is present and pneumothorax is not seen"), is in another clause. Lists
    ("the effusion, edema and atelectasis have all cleared") are not: the cue's own auxiliary and adverbs
    just before it do not count. (medspaCy's third argument also covers the cue, so the gap is taken
    from the spans.)"""
    if target.end > modifier.start:
        return True
    if any(t.lower_ in _VERBS for t in target):
        return False
    gap = [t.lower_ for t in target.doc[target.end : modifier.start]]
    while gap and (gap[-1] in _VERBS or gap[-1] in _PREDICATE_FILLERS or gap[-1].endswith("ly")):
        gap.pop()
    return not (_VERBS.intersection(gap) and _CLAUSE_JOINS.intersection(gap))


def _rules(
    literals: list[str], category: str, direction: str, max_scope: int | None = None, **kwargs
) -> list[ConTextRule]:
    return [ConTextRule(lit, category, direction=direction, max_scope=max_scope, **kwargs) for lit in literals]


def _two_way(forward: list[str], backward: list[str], category: str, forward_scope: int | None,
             backward_scope: int | None = _BACKWARD_SCOPE, cut_by: frozenset[str] = frozenset(),
             both_cut_by: frozenset[str] = frozenset()) -> list[ConTextRule]:
    """Rules for cues read forward, backward or both ways. A phrase listed both ways ("?", "not
    excluded") becomes one bidirectional rule: two rules on the same words would compete and one
    direction would be lost. Clause breaks end what looks forward; `both_cut_by` ends a bidirectional
    rule's reach too ("less likely" does not reach back over a comma: in "likely atelectasis, less likely
    pneumonia" it belongs to what follows)."""
    both = [lit for lit in forward if lit in backward]
    rules = _rules([lit for lit in forward if lit not in both], category, "FORWARD", forward_scope,
                   terminated_by=set(cut_by | {CLAUSE}))
    for literal in (lit for lit in backward if lit not in both):
        # "X is likely" has one subject: the mention right before it ("infiltrate, pneumonia is favored")
        one_subject = 1 if literal.split()[0] in _SINGULAR else None
        rules.append(ConTextRule(literal, category, direction="BACKWARD", max_scope=backward_scope,
                                 max_targets=one_subject, on_modifies=_same_clause, terminated_by=set(cut_by)))
    rules += _rules(both, category, "BIDIRECTIONAL", backward_scope, on_modifies=_same_clause,
                    terminated_by=set(cut_by | both_cut_by | {CLAUSE}))
    return rules


def context_rules() -> list[ConTextRule]:
    """All ConText rules of our radiology set.

    A new kind of statement ends the one before it: a hedge or a question ends a negation's scope ("no
    effusion, possible small pneumothorax"), a negation ends a hedge's, and a weak hedge ends a strong one
    ("likely atelectasis, less likely pneumonia"). Differentials are left out of this: "may represent
    atelectasis or pneumonia" hedges both alternatives.
    """
    negation_cut = frozenset({POSSIBLE, PROBABLE, HYPOTHETICAL})
    rules = _two_way([lit for lit in _FORWARD_NEGATION if lit not in _BACKWARD_RESOLVED],
                     [lit for lit in _BACKWARD_NEGATION if lit not in _BACKWARD_RESOLVED], NEGATED, None,
                     cut_by=negation_cut)
    # "have resolved" reaches back over a whole list, clause breaks included ("the effusion, left atelectasis
    # and mild edema have resolved"); "Resolved infiltrate" also reads forward
    rules += _rules([lit for lit in _BACKWARD_RESOLVED if lit != "resolved"], NEGATED, "BACKWARD",
                    on_modifies=_same_clause, terminated_by=set(negation_cut))
    # "resolved" reads forward when it opens the sentence ("Resolved right basilar infiltrate"), back otherwise
    rules += [ConTextRule("resolved", NEGATED, direction="BACKWARD", on_modifies=_same_clause,
                          terminated_by=set(negation_cut), pattern=[{"LOWER": "resolved", "IS_SENT_START": False}]),
              ConTextRule("resolved (opening)", NEGATED, direction="FORWARD",
                          terminated_by=set(negation_cut | {CLAUSE}),
                          pattern=[{"LOWER": "resolved", "IS_SENT_START": True}])]
    rules += _rules(_DEVICE_REMOVED, NEGATED, "BACKWARD", _DIFFERENTIAL_SCOPE + 2, allowed_types=_DEVICES)
    rules += _two_way(_FORWARD_PROBABLE, _BACKWARD_PROBABLE, PROBABLE, _FORWARD_HEDGE_SCOPE,
                      cut_by=frozenset({NEGATED, POSSIBLE}), both_cut_by=frozenset({COMMA}))
    rules += _two_way(_FORWARD_POSSIBLE, _BACKWARD_POSSIBLE, POSSIBLE, _FORWARD_HEDGE_SCOPE,
                      cut_by=frozenset({NEGATED, PROBABLE}), both_cut_by=frozenset({COMMA}))
    rules += _rules(_DIFFERENTIAL, DIFFERENTIAL, "BIDIRECTIONAL", _DIFFERENTIAL_SCOPE, terminated_by={COMMA, CLAUSE})
    rules += _rules(_FORWARD_HYPOTHETICAL, HYPOTHETICAL, "FORWARD", terminated_by={CLAUSE})
    rules += _rules(_DEVICE_PLANS, DEVICE_PLAN, "BIDIRECTIONAL", _DIFFERENTIAL_SCOPE + 2, allowed_types=_DEVICES)
    rules += _rules(_HISTORICAL, HISTORICAL, "FORWARD", excluded_types=_HISTORICAL_EXCLUDED,
                    terminated_by={COMMA, CLAUSE})
    rules += _rules(_HISTORICAL_NEAR, HISTORICAL, "FORWARD", _HISTORICAL_SCOPE,
                    excluded_types=_HISTORICAL_EXCLUDED, terminated_by={COMMA, CLAUSE})
    rules += _rules(_TERMINATE, CONJ, "TERMINATE", _CUT_SCOPE)
    rules += _rules(_CLAUSE_STARTS, CLAUSE, "PSEUDO", _CUT_SCOPE)
    rules += _rules(_PSEUDO, PSEUDO, "PSEUDO")
    rules += [ConTextRule(",", COMMA, direction="PSEUDO", max_scope=_CUT_SCOPE)]
    rules += _CLAUSE_BREAKS
    return rules
