"""One report in, labels + sectioned text + granularity texts out: the builder's per-image call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spacy.tokens import Doc

from mgll_data.reports.granularity import granularity_texts
from mgll_data.reports.labels import Mention, aggregate, mentions
from mgll_data.reports.nlp import get_nlp, quiet_matchers
from mgll_data.reports.vocabulary import Vocabulary, load

# Reports longer than this are not radiology reports (a pasted log, a whole chart): refuse to label them
# rather than spend minutes on one input.
MAX_REPORT_CHARS = 100_000


@dataclass
class ReportResult:
    report_text: str
    labels: list[tuple[str, int]]
    texts: dict[str, str | None]
    mentions: list[Mention] = field(default_factory=list)


@dataclass
class Analysis:
    """What the NLP pipeline found in one report, before granularity texts are chosen."""

    labels: list[tuple[str, int]]
    mentions: list[Mention]
    section_texts: dict[str, str]
    sectioned_text: str


def section_texts(doc: Doc) -> dict[str, str]:
    """Body text per section name (repeated headings are joined); text before any heading is under ""."""
    texts: dict[str, list[str]] = {}
    for section in doc._.sections:
        body = doc[section.body_start : section.body_end].text.strip()
        if body:
            texts.setdefault(section.category or "", []).append(" ".join(body.split()))
    return {name: " ".join(parts) for name, parts in texts.items()}


def sectioned(texts: Mapping[str, str], sections: tuple[str, ...], whole: str) -> str:
    """"FINDINGS: ...\\nIMPRESSION: ..." for the wanted sections; the whole text when it has none of them."""
    parts = [f"{name.upper()}: {texts[name]}" for name in sections if texts.get(name)]
    return "\n".join(parts) if parts else " ".join(whole.split())


def analyse_doc(doc: Doc, vocab: Vocabulary, sections: tuple[str, ...]) -> Analysis:
    found = mentions(doc, sections)
    texts = section_texts(doc)
    has_text = bool(doc.text.strip())
    return Analysis(
        labels=aggregate(found, vocab) if has_text else [],
        mentions=found,
        section_texts=texts,
        sectioned_text=sectioned(texts, sections, doc.text),
    )


def understand(report_text: str | None, metadata: Mapping[str, Any] | None, pipeline: Any) -> ReportResult:
    """Labels and granularity texts for one de-identified report.

    `pipeline` is a `mgll_data.pipeline.Pipeline` (its `.reports.vocabulary`, `.reports.sections` and
    `.granularities` are used). The spaCy pipeline is built once per process and vocabulary.
    """
    vocab = load(pipeline.reports.vocabulary)
    sections = tuple(pipeline.reports.sections)
    text = (report_text or "")[:MAX_REPORT_CHARS]
    metadata = metadata or {}
    if text.strip():
        nlp = get_nlp(pipeline.reports.vocabulary)
        with quiet_matchers():
            analysis = analyse_doc(nlp(text), vocab, sections)
    else:
        analysis = Analysis(labels=[], mentions=[], section_texts={}, sectioned_text="")
    texts = granularity_texts(
        pipeline.granularities,
        labels=analysis.labels,
        found=analysis.mentions,
        section_texts=analysis.section_texts,
        report_text=analysis.sectioned_text,
        metadata=metadata,
        vocab=vocab,
    )
    return ReportResult(
        report_text=analysis.sectioned_text,
        labels=analysis.labels,
        texts=texts,
        mentions=analysis.mentions,
    )
