"""The burned-in-text gate: images whose pixels carry identifying text are refused."""

from __future__ import annotations

from typing import Any

from mgll_data.deid.header import _first_text
from mgll_data.records import StageError


def refuse_burned_in_text(header: Any, policy: str) -> None:
    """Reject an image whose header says identifying text is burned into its pixels.

    Modalities type names, dates and ids onto screen captures, ultrasound and some scanned films; that
    text is pixels, so every header and report scrub walks past it, and this builder does not read pixels
    for text. The header's own flag (BurnedInAnnotation, 0028,0301 = YES) is the one signal the DICOM
    standard gives, so it is honoured by default; `keep` is for exports whose pixels were cleaned upstream.
    """
    if policy == "keep" or header is None:
        return
    if (_first_text(header, "BurnedInAnnotation") or "").strip().upper() == "YES":
        raise StageError(
            "deid", "burned-in-annotation",
            "the header says identifying text is burned into the pixels (BurnedInAnnotation YES); "
            "set image.burned_in_annotation: keep in the pipeline only for exports cleaned upstream",
        )  # fmt: skip
