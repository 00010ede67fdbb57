"""Planted bad inputs (`--broken`): what a real export always contains somewhere.

Each kind goes in a study of its own, with an otherwise valid report, so exactly one thing is wrong with
it. The expected reject reason is written beside it in demo_images.csv, so a builder test can check that
rows + rejects = inputs and that each bad file is rejected for the right reason, not dropped.
"""

from __future__ import annotations

from pathlib import Path

# kind -> the reject reason the builder is expected to give (the imaging/sources contracts' names)
BROKEN_KINDS = {
    "truncated-file": "truncated-file",
    "empty-file": "empty-file",
    "not-an-image": "not-an-image",
    "no-pixel-data": "no-pixel-data",
    "report-missing": "report-missing",
    "report-not-utf8": "report-not-utf8",
}
_NOT_DICOM_TEXT = (
    "This file was exported by mistake: it is the PACS transfer log, not an image.\n"
    "transfer started; 3 objects queued; 0 failed\n"
)
_NOT_UTF8_REPORT = (
    " FINDINGS:\n\n Heart size is normal. No pleural effusion or pneumothorax.\n\n"
    " IMPRESSION:\n\n No acute cardiopulmonary process.\n\n"
    " Dictated by: Dr. J\u00fcrgen M\u00fcller, Klinik S\u00e4ntis. Dose 0.5 \u00b5Gy \u00bd view.\n"
)


def truncate(path: Path) -> None:
    """Cut a valid DICOM file inside its pixel data, as an interrupted transfer does."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])


def write_empty(path: Path) -> None:
    path.write_bytes(b"")


def write_not_an_image(path: Path) -> None:
    path.write_text(_NOT_DICOM_TEXT, encoding="ascii")


def write_not_utf8_report(path: Path) -> None:
    """A report saved as Windows-1252 by an older RIS: its umlauts and µ are not valid UTF-8."""
    path.write_bytes(_NOT_UTF8_REPORT.encode("cp1252"))
