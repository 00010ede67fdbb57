"""Assembly of the spaCy / scispaCy / medspaCy pipeline that reads one report.

Order: scispaCy's biomedical tokenizer (plus splitting "effusion/pneumothorax" and "mass-like" so
vocabulary words match inside them) -> a rule sentence splitter -> scispaCy's AbbreviationDetector ->
medspaCy Sectionizer (radiology headings) -> medspaCy TargetMatcher (the vocabulary's terms) -> short
forms a report defines itself ("pleural effusion (PE) ... no PE") become mentions of the long form's
finding -> medspaCy ConText (our radiology rules). Labels come only from the vocabulary, so results do not
depend on which optional packages (scispaCy's statistical en_core_sci_* models) a machine has.

medspaCy's default sentence splitter (PyRuSH) is the slowest part of `medspacy.load()`; reports are short
and punctuated, so a rule splitter on ". ? !", blank lines and section headings is as accurate here and
several times faster.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
import threading
import warnings
from functools import lru_cache

import spacy
from medspacy.context import ConText  # noqa: F401  (registers the medspacy_context factory)
from medspacy.ner import TargetMatcher, TargetRule  # noqa: F401  (registers medspacy_target_matcher)
from medspacy.section_detection import Sectionizer, SectionRule  # noqa: F401  (registers medspacy_sectionizer)
from scispacy.custom_tokenizer import combined_rule_tokenizer
from spacy.language import Language
from spacy.tokens import Doc, Span

from mgll_data.reports import assertion
from mgll_data.reports.vocabulary import Vocabulary, compile_term, load, stem_key

PSEUDO_TARGET = "PSEUDO_TARGET"
HEDGED = "hedged"
NORMAL = "normal"

# Section headings as they appear in radiology reports, mapped to a section name. A heading must end with
# a colon (or be alone on its line) so "findings consistent with" inside a sentence is not a heading.
SECTION_HEADINGS: dict[str, list[str]] = {
    "findings": ["findings", "finding", "report", "chest findings", "description"],
    "impression": ["impression", "impressions", "conclusion", "conclusions", "summary", "opinion",
                   "diagnosis", "interpretation", "final impression", "assessment"],
    "indication": ["indication", "indications", "reason for exam", "reason for examination", "reason for study",
                   "clinical indication", "clinical information", "clinical details", "clinical question"],
    "history": ["history", "clinical history", "medical history", "hx"],
    "comparison": ["comparison", "comparisons", "prior", "priors", "comparison exam"],
    "technique": ["technique", "procedure", "exam", "examination", "study", "views", "protocol"],
    "notification": ["notification", "communication", "recommendation", "recommendations"],
}

_SENTENCE_END = {".", "?", "!"}
_EXTRA_INFIX = r"(?<=[A-Za-z])[-/](?=[A-Za-z])"


@contextmanager
def quiet_matchers():
    """spaCy warns (W036) whenever a matcher without patterns runs: scispaCy's abbreviation detector and
    medspaCy's rule matchers keep an empty matcher by design, so the warning is noise on every report."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\[W036\]")
        yield


@Language.component("mgll_sentences")
def split_sentences(doc: Doc) -> Doc:
    """Rule sentence boundaries: after . ? !, at line breaks, and after a section heading's colon."""
    previous = None
    for i, token in enumerate(doc):
        if i == 0:
            token.is_sent_start = True
        elif previous.text in _SENTENCE_END or ("\n" in previous.text and previous.is_space):
            token.is_sent_start = True
        elif previous.text.endswith(".") and token.text[:1].isupper():  # "hepatitis-C. The", "T12. No"
            token.is_sent_start = True
        elif previous.text == ":" and i >= 2 and doc[i - 2].text.isupper():
            token.is_sent_start = True
        else:
            token.is_sent_start = False
        previous = token
    return doc


@Language.component("mgll_abbreviation_targets")
def abbreviation_targets(doc: Doc) -> Doc:
    """Mentions for abbreviations the report defines, labelled like the finding inside the long form."""
    if not Doc.has_extension("abbreviations") or not doc._.abbreviations:
        return doc
    ents = list(doc.ents)
    taken = {i for ent in ents for i in range(ent.start, ent.end)}
    added = []
    for short in doc._.abbreviations:
        long_form = short._.long_form
        if short.start - long_form.end <= 1:  # the defining "(PE)" right after its long form
            continue
        label = next((e.label_ for e in ents if long_form.start <= e.start and e.end <= long_form.end
                      and e.label_ != PSEUDO_TARGET), None)
        if label and not taken.intersection(range(short.start, short.end)):
            added.append(Span(doc, short.start, short.end, label=label))
            taken.update(range(short.start, short.end))
    if added:
        doc.ents = sorted(ents + added, key=lambda span: span.start)
    return doc


def make_tokenizer(nlp: Language):
    """scispaCy's tokenizer that also splits letters joined by '-' or '/'."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scispaCy's regexes trip a harmless re warning
        tokenizer = combined_rule_tokenizer(nlp)
    infix = tokenizer.infix_finditer.__self__.pattern
    tokenizer.infix_finditer = re.compile(f"{_EXTRA_INFIX}|{infix}").finditer
    return tokenizer


def section_rules() -> list[SectionRule]:
    rules = []
    for category, headings in SECTION_HEADINGS.items():
        for heading in headings:
            rules.append(SectionRule(f"{heading}:", category))
            words = heading.split()
            pattern = [{"LOWER": w} for w in words] + [{"TEXT": ":"}]
            rules.append(SectionRule(f"{heading} :", category, pattern=pattern))
    return rules


def target_rules(vocab: Vocabulary) -> list[TargetRule]:
    """One TargetRule per vocabulary term; exclusions become pseudo-targets that win by being longer."""
    prefixes = vocab.prefixes()
    rules = []
    for finding in vocab.mentionable():
        for term in finding.terms:
            rules.append(TargetRule(term, finding.name, pattern=compile_term(term, prefixes=prefixes)))
        for term in finding.hedged:
            rules.append(TargetRule(term, finding.name, pattern=compile_term(term, prefixes=prefixes),
                                    metadata={HEDGED: True}))
        for term in finding.normal:
            rules.append(TargetRule(term, finding.name, pattern=compile_term(term, prefixes=prefixes),
                                    metadata={NORMAL: True}))
        for term in finding.exclusions:
            rules.append(TargetRule(term, PSEUDO_TARGET, pattern=compile_term(term, prefixes=prefixes),
                                    metadata={"excludes": finding.name}))
    return rules


@Language.factory("mgll_stems", default_config={"prefixes": []})
def make_stem_tagger(nlp, name, prefixes):  # no annotations: spaCy validates them and cannot resolve strings
    """NORM = "<longest vocabulary prefix>*" for words starting with one, else the lower-case word, so
    target patterns match stems ("atelecta*") by hash instead of by regular expression."""
    ordered = sorted(prefixes, key=len, reverse=True)
    stem_re = re.compile("|".join(re.escape(p) for p in ordered)) if ordered else None

    def tag_stems(doc: Doc) -> Doc:
        for token in doc:
            lower = token.lower_
            match = stem_re.match(lower) if stem_re else None
            token.norm_ = stem_key(match.group(0)) if match else lower
        return doc

    return tag_stems


def build_nlp(vocab: Vocabulary, abbreviations: bool = True) -> Language:
    """A fresh pipeline for one vocabulary (use `get_nlp` for the per-process cached one)."""
    nlp = spacy.blank("en")
    nlp.tokenizer = make_tokenizer(nlp)
    nlp.add_pipe("mgll_sentences")
    if abbreviations:
        import scispacy.abbreviation  # noqa: F401  (registers the abbreviation_detector factory)

        nlp.add_pipe("abbreviation_detector")
    sectionizer = nlp.add_pipe("medspacy_sectionizer", config={"rules": None})
    sectionizer.add(section_rules())
    nlp.add_pipe("mgll_stems", config={"prefixes": sorted(vocab.prefixes())})
    matcher = nlp.add_pipe("medspacy_target_matcher")
    matcher.add(target_rules(vocab))
    if abbreviations:
        nlp.add_pipe("mgll_abbreviation_targets")
    context = nlp.add_pipe("medspacy_context", config={"rules": None})
    context.add(assertion.context_rules())
    return nlp


def context_only_nlp() -> Language:
    """Tokenizer + sentences + ConText, for judging assertion on given target spans (NegEx corpus)."""
    nlp = spacy.blank("en")
    nlp.tokenizer = make_tokenizer(nlp)
    nlp.add_pipe("mgll_sentences")
    context = nlp.add_pipe("medspacy_context", config={"rules": None})
    context.add(assertion.context_rules())
    return nlp


_lock = threading.Lock()


@lru_cache(maxsize=8)
def _cached(vocab: Vocabulary) -> Language:
    return build_nlp(vocab)


def get_nlp(vocab_name_or_path: str) -> Language:
    """The pipeline for a vocabulary, built once per process: spaCy + medspaCy setup takes seconds."""
    vocab = load(vocab_name_or_path)
    with _lock:
        return _cached(vocab)
