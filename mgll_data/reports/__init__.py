"""Report understanding: sections -> sentences -> finding mentions with a certainty -> labels -> texts.

The builder calls `understand()` once per image (inside worker processes); `mgll label` calls
`label_reports()` on many reports at once. Both share one spaCy pipeline per process and vocabulary.
Names are imported on first use, so light modules (`certainty`, `vocabulary`, `io`, `items`) load without spaCy.
"""

from importlib import import_module

_EXPORTS = {
    "LabelResult": "batch",
    "label_reports": "batch",
    "Label": "labels",
    "Mention": "labels",
    "MAX_REPORT_CHARS": "understanding",
    "ReportResult": "understanding",
    "understand": "understanding",
    "Policy": "certainty",
    "PolicyError": "certainty",
    "policy_from": "certainty",
    "Vocabulary": "vocabulary",
    "VocabularyError": "vocabulary",
    "load_vocabulary": "vocabulary",
    "vocabulary_names": "vocabulary",
    "item_vocabulary": "items",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)
