"""The plain records that pass between the builder's stages.

A source yields `SourceItem`s (one per image file found). The per-input stage turns each into an
`Outcome`: a public row or a reject, plus the private linkage entry. Engines only move these around.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SourceItem:
    """One input of an export: an image file found, with what the layout says about it, or a report that
    no image found belongs to (`image_path` None), which can only become a reject but must be counted.

    `report_text` holds the raw report when the layout carries it inline (manifest, Open-i XML);
    otherwise `report_path` names the file to read. `report_error` is set when the layout already knows
    the report is unusable (missing, not UTF-8, no image), so the input becomes a reject with that reason.
    Ids are the export's own (identifying) ids; they are pseudonymised before anything is written.
    """

    image_path: str | None  # relative to the export root, POSIX separators
    patient_id: str | None = None
    study_id: str | None = None
    report_path: str | None = None  # relative to the export root
    report_text: str | None = None
    report_error: str | None = None

    @property
    def source_path(self) -> str:
        """The file this input stands for: its image, or its report when it has no image."""
        path = self.image_path if self.image_path is not None else self.report_path
        assert path is not None, "an input names an image or a report"
        return path


@dataclass
class Reject:
    stage: str
    reason: str
    error: str


class StageError(Exception):
    """An input that cannot become a row; carries the reject's stage, reason code and one-line message.

    The message must never include header values, report text or paths: it is stored in the shareable
    rejects table.
    """

    def __init__(self, stage: str, reason: str, error: str):
        super().__init__(error)
        self.reject = Reject(stage=stage, reason=reason, error=error)


@dataclass
class Outcome:
    """What one input became. Exactly one of `row` / `reject` is set.

    `linkage` is private (original ids, source path, full error detail) and goes only to the linkage
    table outside the dataset. `counts` are things done to this input that the build summary adds up
    (e.g. control characters stripped from its report).
    """

    source_key: str
    row: dict[str, Any] | None = None
    reject: Reject | None = None
    linkage: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
