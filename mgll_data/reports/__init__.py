"""Report understanding: sections -> finding mentions -> negation / uncertainty -> labels -> granularity texts.

The builder calls `understand()` once per image (inside worker processes); `mgll label` calls
`label_reports()` on many reports at once. Both share one spaCy pipeline per process and vocabulary.
"""

from mgll_data.reports.batch import LabelResult, label_reports
from mgll_data.reports.labels import Mention
from mgll_data.reports.understanding import MAX_REPORT_CHARS, ReportResult, understand
from mgll_data.reports.vocabulary import Vocabulary, VocabularyError, load as load_vocabulary, vocabulary_names

__all__ = [
    "LabelResult",
    "MAX_REPORT_CHARS",
    "Mention",
    "ReportResult",
    "Vocabulary",
    "VocabularyError",
    "label_reports",
    "load_vocabulary",
    "understand",
    "vocabulary_names",
]
