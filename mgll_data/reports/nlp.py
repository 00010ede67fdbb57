"""The spaCy / medspaCy pipeline that reads one sentence of a report.

Order: scispaCy's biomedical tokenizer (plus splitting "effusion/pneumothorax" and "mass-like" so
vocabulary words match inside them) -> the sentence flag (each Doc is one sentence, cut by `segment`)
-> a stem tagger -> medspaCy TargetMatcher (the vocabulary's terms, probable forms, normal statements,
related signs and exclusions) -> coordinated forms ("effusion or thickening") -> abbreviations the report
defined elsewhere -> medspaCy ConText with our radiology rules (skipped when a sentence names nothing).
Labels come only from the vocabulary, so results do not depend on optional statistical models.
"""

from __future__ import annotations

import re
import threading
import warnings
from contextlib import contextmanager
from functools import lru_cache

import spacy
from medspacy.context import ConText
from medspacy.ner import TargetMatcher, TargetRule  # noqa: F401  (registers medspacy_target_matcher)
from scispacy.custom_tokenizer import combined_rule_tokenizer
from spacy.language import Language
from spacy.matcher import Matcher
from spacy.tokens import Doc, Span

from mgll_data.reports import assertion
from mgll_data.reports.vocabulary import Vocabulary, compile_term, first_word_variants, load_vocabulary, stem_key

PSEUDO_TARGET = "PSEUDO_TARGET"
# What a vocabulary phrase says by itself, kept in the TargetRule's metadata.
KIND = "kind"
TERM, PROBABLE_TERM, NORMAL, RELATED = "term", "probable", "normal", "related"
ALSO = "also"  # other (finding, kind) pairs the same phrase names
ABBREVIATIONS_KEY = "mgll_abbreviations"  # Doc.user_data: {short form: finding} defined elsewhere in the report

_EXTRA_INFIX = r"(?<=[A-Za-z])[-/](?=[A-Za-z])"
_CONJUNCTIONS = {"or", "and", "/", ","}


@contextmanager
def quiet_matchers():
    """spaCy warns (W036) whenever a matcher without patterns runs: medspaCy's rule matchers keep an empty
    matcher by design, so the warning is noise on every sentence."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\[W036\]")
        yield


@Language.component("mgll_one_sentence")
def one_sentence(doc: Doc) -> Doc:
    """Each Doc is one sentence already (see `segment`); ConText scopes end at the sentence's end."""
    for i, token in enumerate(doc):
        token.is_sent_start = i == 0
    return doc


def make_tokenizer(nlp: Language):
    """scispaCy's tokenizer that also splits letters joined by '-' or '/'."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scispaCy's regexes trip a harmless re warning
        tokenizer = combined_rule_tokenizer(nlp)
    infix = tokenizer.infix_finditer.__self__.pattern
    tokenizer.infix_finditer = re.compile(f"{_EXTRA_INFIX}|{infix}").finditer
    return tokenizer


def target_rules(vocab: Vocabulary) -> list[TargetRule]:
    """One TargetRule per vocabulary phrase; exclusions become pseudo-targets that win by being longer.

    A phrase listed under two findings names both ("hydropneumothorax" is effusion and pneumothorax;
    "normal cardiomediastinal silhouette" negates cardiomegaly and an enlarged cardiomediastinum): it
    becomes one rule for the first finding, with the others in its metadata (`ALSO`), because spaCy lets
    only one mention own a stretch of text.
    """
    prefixes = vocab.prefixes()
    owners: dict[str, list[tuple[str, str]]] = {}
    for finding in vocab.mentionable():
        for kind, terms in ((TERM, finding.terms), (PROBABLE_TERM, finding.probable), (NORMAL, finding.normal),
                            (RELATED, finding.related_signs)):
            for term in terms:
                owners.setdefault(term, []).append((finding.name, kind))
    rules = []
    for term, named in owners.items():
        (label, kind), *others = named
        for pattern in first_word_variants(compile_term(term, prefixes=prefixes)):
            rules.append(TargetRule(term, label, pattern=pattern, metadata={KIND: kind, ALSO: others}))
    for finding in vocab.mentionable():
        for term in finding.exclusions:
            for pattern in first_word_variants(compile_term(term, prefixes=prefixes)):
                rules.append(TargetRule(term, PSEUDO_TARGET, pattern=pattern, metadata={"excludes": finding.name}))
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


@Language.factory("mgll_coordination", default_config={"vocabulary": ""})
def make_coordination(nlp, name, vocabulary):
    """A bare word joined to a mention by "or" / "and" / "/" names a finding of the same category:
    "small effusion or thickening" is pleural effusion or pleural *thickening*. Each finding lists the
    words that count this way (`coordinated`); alone they say nothing."""
    vocab = load_vocabulary(vocabulary)
    category = {f.name: f.category for f in vocab.findings}
    matcher = Matcher(nlp.vocab)
    prefixes = vocab.prefixes()
    for finding in vocab.mentionable():
        if finding.coordinated:
            matcher.add(finding.name, [compile_term(t, prefixes=prefixes) for t in finding.coordinated])

    def _neighbour(doc: Doc, start: int, end: int, by_end: dict, by_start: dict) -> Span | None:
        after = end
        while after < len(doc) and doc[after].lower_ in _CONJUNCTIONS:
            after += 1
        if after > end and after in by_start:
            return by_start[after]
        before = start
        while before > 0 and doc[before - 1].lower_ in _CONJUNCTIONS:
            before -= 1
        if before < start and before in by_end:
            return by_end[before]
        return None

    def coordinate(doc: Doc) -> Doc:
        if not doc.ents or not len(matcher):
            return doc
        ents = [e for e in doc.ents if e.label_ != PSEUDO_TARGET]
        by_end = {e.end: e for e in ents}
        by_start = {e.start: e for e in ents}
        taken = {i for e in doc.ents for i in range(e.start, e.end)}
        added = []
        for match_id, start, end in matcher(doc):
            label = nlp.vocab.strings[match_id]
            if taken.intersection(range(start, end)):
                continue
            other = _neighbour(doc, start, end, by_end, by_start)
            if other is not None and category.get(other.label_) == category[label]:
                span = Span(doc, start, end, label=label)
                span._.target_rule = TargetRule(span.text.lower(), label, metadata={KIND: TERM})
                added.append(span)
                taken.update(range(start, end))
        if added:
            doc.ents = sorted([*doc.ents, *added], key=lambda s: s.start)
        return doc

    return coordinate


@Language.component("mgll_abbreviation_targets")
def abbreviation_targets(doc: Doc) -> Doc:
    """Mentions for short forms the report defined in another sentence ("pleural effusion (PE) ... no PE"),
    labelled like the finding of their long form (see `understanding.abbreviations`)."""
    defined = doc.user_data.get(ABBREVIATIONS_KEY)
    if not defined:
        return doc
    taken = {i for e in doc.ents for i in range(e.start, e.end)}
    added = []
    for token in doc:
        label = defined.get(token.text)
        if label and token.i not in taken:
            span = Span(doc, token.i, token.i + 1, label=label)
            span._.target_rule = TargetRule(token.text, label, metadata={KIND: TERM})
            added.append(span)
    if added:
        doc.ents = sorted([*doc.ents, *added], key=lambda s: s.start)
    return doc


@Language.factory("mgll_context")
def make_context(nlp, name):
    """medspaCy's ConText with our radiology rules, run only on sentences that name something: most
    sentences of a report ("The trachea is midline.") have no target, and matching cues there is waste."""
    context = ConText(nlp, rules=None)
    context.add(assertion.context_rules())

    def run(doc: Doc) -> Doc:
        return context(doc) if doc.ents else doc

    return run


def build_nlp(vocab: Vocabulary) -> Language:
    """A fresh pipeline for one vocabulary (use `get_nlp` for the per-process cached one)."""
    nlp = spacy.blank("en")
    nlp.tokenizer = make_tokenizer(nlp)
    nlp.add_pipe("mgll_one_sentence")
    nlp.add_pipe("mgll_stems", config={"prefixes": sorted(vocab.prefixes())})
    matcher = nlp.add_pipe("medspacy_target_matcher")
    matcher.add(target_rules(vocab))
    nlp.add_pipe("mgll_coordination", config={"vocabulary": vocab.source})
    nlp.add_pipe("mgll_abbreviation_targets")
    nlp.add_pipe("mgll_context")
    return nlp


def context_only_nlp() -> Language:
    """Tokenizer + sentence flag + ConText, for judging assertion on given target spans (NegEx corpus)."""
    nlp = spacy.blank("en")
    nlp.tokenizer = make_tokenizer(nlp)
    nlp.add_pipe("mgll_one_sentence")
    context = nlp.add_pipe("medspacy_context", config={"rules": None})
    context.add(assertion.context_rules())
    return nlp


_lock = threading.Lock()


@lru_cache(maxsize=8)
def _cached(vocab: Vocabulary) -> Language:
    return build_nlp(vocab)


def get_nlp(vocab_name_or_path: str) -> Language:
    """The pipeline for a vocabulary, built once per process: spaCy + medspaCy setup takes seconds."""
    vocab = load_vocabulary(vocab_name_or_path)
    with _lock:
        return _cached(vocab)
