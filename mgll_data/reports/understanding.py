"""Reports in, labels + mentions + sectioned text out; and the builder's per-image call `understand()`.

A report is cut into sections and sentences first (`segment`), and every sentence of every report in a
batch goes through spaCy as its own small Doc in one `nlp.pipe` stream: the cost is linear in the
report's length, and batching many reports' sentences keeps spaCy's per-call overhead low.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc

from mgll_data.reports import segment
from mgll_data.reports.certainty import Policy, policy_from
from mgll_data.reports.granularity import granularity_texts
from mgll_data.reports.items import granularity_items
from mgll_data.reports.labels import (
    NON_FINDING_SECTIONS,
    QUESTION_SECTIONS,
    Label,
    Mention,
    aggregate,
    sentence_mentions,
)
from mgll_data.reports.nlp import ABBREVIATIONS_KEY, get_nlp, quiet_matchers
from mgll_data.reports.spelling import Speller, speller
from mgll_data.reports.vocabulary import load_vocabulary

# Reports longer than this are not radiology reports (a pasted log, a whole chart): the rest is not read,
# and the result says how many characters were dropped so the caller can count it.
MAX_REPORT_CHARS = 100_000
SENTENCE_BATCH = 256
_DEFINED_ABBREVIATION = re.compile(r"\(\s*([A-Z][A-Za-z]{1,6})\s*\)")


@dataclass
class ReportResult:
    report_text: str
    labels: list[Label]
    texts: dict[str, str | None]
    mentions: list[Mention] = field(default_factory=list)
    items: dict[str, list[str] | None] = field(default_factory=dict)  # per item granularity (reports.items)
    truncated_chars: int = 0  # characters beyond MAX_REPORT_CHARS that were not read


@dataclass
class Analysis:
    """What the NLP pipeline found in one report, before granularity texts are chosen."""

    labels: list[Label]
    mentions: list[Mention]
    section_texts: dict[str, str]
    sectioned_text: str
    truncated_chars: int = 0


@dataclass
class _Plan:
    """One report cut up: which sentences to read, and which of them are the clinical question."""

    text: str
    sections: list[segment.Section]
    sentences: list[tuple[segment.Sentence, bool]]  # (sentence, is the clinical question)
    truncated_chars: int


def _wanted_sections(present: set[str | None], sections: tuple[str, ...] | None) -> set[str | None] | None:
    """Which section names count: the requested ones the report has, and its unheaded text when it has
    no FINDINGS heading of its own ("Two views. Lungs clear. Impression: normal."); a report with none of
    the requested headings counts whole, except indication / history / comparison / technique."""
    if not sections:
        return None
    wanted: set[str | None] = set(sections) & present
    if not wanted:
        return {None} | (present - NON_FINDING_SECTIONS)
    if "findings" in sections and "findings" not in present:
        wanted.add(None)
    return wanted


def _plan(text: str, sections: tuple[str, ...] | None) -> _Plan:
    truncated = max(0, len(text) - MAX_REPORT_CHARS)
    text = text[:MAX_REPORT_CHARS]
    found = segment.sections(text)
    wanted = _wanted_sections({s.category for s in found}, sections)
    chosen = []
    for section in found:
        question = wanted is not None and section.category not in wanted and section.category in QUESTION_SECTIONS
        if wanted is None or section.category in wanted or question:
            chosen.extend((sentence, question) for sentence in segment.sentences(text, section))
    return _Plan(text, found, chosen, truncated)


def section_texts(text: str, found: list[segment.Section]) -> dict[str, str]:
    """Body text per section name (repeated headings are joined); text before any heading is under ""."""
    texts: dict[str, list[str]] = {}
    for section in found:
        body = " ".join(text[section.start : section.end].split())
        if body:
            texts.setdefault(section.category or "", []).append(body)
    return {name: " ".join(parts) for name, parts in texts.items()}


def sectioned(texts: Mapping[str, str], sections: tuple[str, ...], whole: str) -> str:
    """"FINDINGS: ...\\nIMPRESSION: ..." for the wanted sections; the whole text when it has none of them."""
    parts = [f"{name.upper()}: {texts[name]}" for name in sections if texts.get(name)]
    return "\n".join(parts) if parts else " ".join(whole.split())


def _abbreviations(plan: _Plan, mentions: list[Mention]) -> dict[str, str]:
    """Short forms the report defines right after a finding's mention: "pleural effusion (PE)" -> PE."""
    by_end: dict[int, list[Mention]] = {}
    for mention in mentions:
        if not mention.related:
            by_end.setdefault(mention.end, []).append(mention)
    defined = {}
    for match in _DEFINED_ABBREVIATION.finditer(plan.text):
        short = match.group(1)
        end = match.start()
        while end > 0 and plan.text[end - 1].isspace():
            end -= 1
        for mention in by_end.get(end, ()):
            words = plan.text[max(0, mention.start - 40) : mention.end].lower().split()[-4:]
            if any(word.startswith(short[0].lower()) for word in words):
                defined[short] = mention.finding
    return defined


def _sentence_doc(nlp: Language, spell: Speller, text: str) -> tuple[Doc, Doc | None]:
    """The Doc to read (misspelt finding words replaced, token for token) and the original Doc when any
    word was replaced, so mentions keep the report's own words and offsets."""
    doc = nlp.make_doc(text)
    fixed = [spell.correct(token.text) for token in doc]
    if not any(fixed):
        return doc, None
    words = [new or token.text for new, token in zip(fixed, doc)]
    return Doc(nlp.vocab, words=words, spaces=[bool(token.whitespace_) for token in doc]), doc


def analyse_reports(texts: Sequence[str], vocab_ref: str, sections: tuple[str, ...] | None,
                    policy: Policy | str | None = None) -> list[Analysis]:
    """Labels and mentions of each report, in order."""
    policy = policy_from(policy)
    vocab = load_vocabulary(vocab_ref)
    nlp = get_nlp(vocab_ref)
    spell = speller(vocab_ref)
    plans = [_plan(text, sections) for text in texts]
    jobs = [(i, sentence, question) for i, plan in enumerate(plans) for sentence, question in plan.sentences]
    found: list[list[Mention]] = [[] for _ in plans]
    per_job: list[list[Mention]] = []
    prepared = [_sentence_doc(nlp, spell, plans[i].text[s.start : s.end]) for i, s, _ in jobs]
    with quiet_matchers():
        docs = nlp.pipe((doc for doc, _ in prepared), batch_size=SENTENCE_BATCH)
        for (_, sentence, question), doc, (_, original) in zip(jobs, docs, prepared):
            per_job.append(sentence_mentions(doc, sentence.section, sentence.start, policy, question, original))
        _apply_abbreviations(plans, jobs, per_job, nlp, spell, policy)
    for (i, _, _), mentions in zip(jobs, per_job):
        found[i].extend(mentions)
    results = []
    for plan, mentions in zip(plans, found):
        by_section = section_texts(plan.text, plan.sections)
        results.append(Analysis(
            labels=aggregate(mentions, vocab, policy) if plan.text.strip() else [],
            mentions=mentions,
            section_texts=by_section,
            sectioned_text=sectioned(by_section, sections or (), plan.text),
            truncated_chars=plan.truncated_chars,
        ))
    return results


def _apply_abbreviations(plans: list[_Plan], jobs: list, per_job: list[list[Mention]], nlp: Language, spell: Speller,
                         policy: Policy) -> None:
    """Re-read the sentences that use a short form their report defined elsewhere (rare: most reports
    define none, and they cost one regular-expression search)."""
    by_report: dict[int, list[int]] = {}
    for j, (i, _, _) in enumerate(jobs):
        by_report.setdefault(i, []).append(j)
    for i, plan in enumerate(plans):
        if not _DEFINED_ABBREVIATION.search(plan.text):
            continue
        defined = _abbreviations(plan, [m for j in by_report.get(i, []) for m in per_job[j]])
        if not defined:
            continue
        uses = re.compile(r"(?<![(\w])(?:" + "|".join(map(re.escape, defined)) + r")(?![\w)])")
        for j in by_report[i]:
            _, sentence, question = jobs[j]
            text = plan.text[sentence.start : sentence.end]
            if uses.search(text):
                doc, original = _sentence_doc(nlp, spell, text)
                doc.user_data[ABBREVIATIONS_KEY] = defined
                per_job[j] = sentence_mentions(nlp(doc), sentence.section, sentence.start, policy, question, original)


def understand(report_text: str | None, metadata: Mapping[str, Any] | None, pipeline: Any) -> ReportResult:
    """Labels and granularity texts for one de-identified report.

    `pipeline` is a `mgll_data.pipeline.Pipeline` (its `.reports.vocabulary`, `.reports.sections`,
    `.reports.uncertain_policy` and `.granularities` are used).
    """
    vocab = load_vocabulary(pipeline.reports.vocabulary)
    sections = tuple(pipeline.reports.sections)
    text = report_text or ""
    if text.strip():
        analysis = analyse_reports([text], pipeline.reports.vocabulary, sections, pipeline.reports.uncertain_policy)[0]
    else:
        analysis = Analysis(labels=[], mentions=[], section_texts={}, sectioned_text="")
    texts = granularity_texts(
        pipeline.granularities,
        labels=analysis.labels,
        found=analysis.mentions,
        section_texts=analysis.section_texts,
        report_text=analysis.sectioned_text,
        metadata=metadata or {},
        vocab=vocab,
    )
    return ReportResult(
        report_text=analysis.sectioned_text,
        labels=analysis.labels,
        texts=texts,
        mentions=analysis.mentions,
        truncated_chars=analysis.truncated_chars,
        items=granularity_items(texts, labels=analysis.labels, found=analysis.mentions, vocab=vocab),
    )
