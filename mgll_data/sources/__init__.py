"""Sources: turn a raw export folder into `SourceItem`s, one per image file, following a pipeline's layout.

Rules every layout keeps, because "rows + rejects = inputs" depends on them:
- every image file found (by the pipeline's `image_patterns`, matched case-insensitively on the file
  name) is exactly one item, in a deterministic order; nothing is dropped here. A missing or unparsable
  report is recorded as `report_error` so the build turns the image into a reject with that reason;
- only regular files can be read, but every entry named like an image is an item whatever it is (a FIFO,
  a socket, a device, a broken symbolic link, a folder named `x.png`): the imaging stage rejects it with
  its own reason. Nothing here opens a file that is not regular (reading a FIFO blocks forever);
- a report that no image found belongs to is an item too (`image_path` None, reason
  `report-without-image`), after the images: it cannot become a row, but images lost on the way to the
  export show up exactly this way, so it is counted and listed, never skipped. Which files are reports is
  the layout's own rule (MIMIC's `p…/s….txt`, an Open-i XML, a folder's `.txt` sidecar);
- files that are not images by pattern are ignored, and so are report/metadata files (.txt, .xml,
  .csv, .json, DICOMDIR) even under a catch-all pattern like "*", hidden files and folders (".*"),
  and macOS debris (`__MACOSX`);
- report files are not read here (workers read them and check UTF-8); only their existence is checked.
  Layouts that carry the text inline (Open-i XML, CSVs) put it in `report_text`;
- paths are POSIX, relative to the export root (a manifest may name absolute paths outside the root:
  those are kept absolute).

Layouts: mimic-cxr, openi, folder, manifest (see `pipelines/*.yaml`). An export that cannot be used at
all (root missing, unusable CSV) raises `SourceError` with a one-line message. Modules: `files` walks the
export and matches image patterns, `tables` reads users' CSVs, `layouts` pairs images with reports, and
`inputs` holds what they record (reason codes, the report-only item).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mgll_data.pipeline import Pipeline
from mgll_data.records import SourceItem
from mgll_data.sources import layouts
from mgll_data.sources.inputs import (
    REPORT_BROKEN_LINK,
    REPORT_MISSING,
    REPORT_NOT_REGULAR,
    REPORT_UNREADABLE,
    REPORT_WITHOUT_IMAGE,
    SourceError,
    report_file_problem,
)

__all__ = [
    "REPORT_BROKEN_LINK",
    "REPORT_MISSING",
    "REPORT_NOT_REGULAR",
    "REPORT_UNREADABLE",
    "REPORT_WITHOUT_IMAGE",
    "SourceError",
    "discover",
    "report_file_problem",
]

LAYOUTS = {
    "mimic-cxr": layouts.mimic,
    "openi": layouts.openi,
    "folder": layouts.folder,
    "manifest": layouts.manifest,
}


def discover(export_root: Path, pipeline: Pipeline) -> Iterator[SourceItem]:
    """Every input of the export as a `SourceItem` (images sorted, then reports without images),
    following `pipeline.layout`."""
    root = Path(export_root)
    if not root.exists():
        raise SourceError(f"export root {root} does not exist")
    if not root.is_dir():
        raise SourceError(f"export root {root} is not a directory")
    if pipeline.layout not in LAYOUTS:
        raise SourceError(f"unknown layout {pipeline.layout!r}; known: {', '.join(LAYOUTS)}")
    yield from LAYOUTS[pipeline.layout](root, pipeline)
