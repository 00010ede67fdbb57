"""What every layout records about an input: the reasons it already knows, the one-line error for an
export that cannot be used at all, and the item for a report that no image belongs to."""

from __future__ import annotations

from pathlib import Path

from mgll_data import filekind
from mgll_data.records import SourceItem

REPORT_MISSING = "report-missing"
REPORT_UNREADABLE = "report-unreadable"
REPORT_NOT_REGULAR = "report-not-a-regular-file"
REPORT_BROKEN_LINK = "report-broken-symlink"
REPORT_WITHOUT_IMAGE = "report-without-image"


class SourceError(Exception):
    """An export that cannot be used at all; the message is one line for the user."""


def report_file_problem(path: Path) -> tuple[str, str] | None:
    """(reason, message) when a report path cannot be read as a regular file, None when it can; never
    opens it."""
    try:
        kind = filekind.entry_kind(path)
    except OSError as exc:
        return REPORT_UNREADABLE, f"the report file cannot be examined ({type(exc).__name__})"
    if kind == filekind.REGULAR:
        return None
    if kind == filekind.MISSING:
        return REPORT_MISSING, "the report file does not exist"
    if kind == filekind.BROKEN_LINK:
        return REPORT_BROKEN_LINK, "the report is a symbolic link whose target does not exist"
    return REPORT_NOT_REGULAR, f"the report is a {kind}, not a regular file"


def report_without_image(
    report: str, patient_id: str | None = None, study_id: str | None = None, reason: str = REPORT_WITHOUT_IMAGE
) -> SourceItem:
    return SourceItem(None, patient_id=patient_id, study_id=study_id, report_path=report, report_error=reason)
