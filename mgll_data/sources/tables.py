"""Reading the CSVs a user writes (a manifest, a reports table): any dialect, UTF-8, one-line errors, and
paths in them made relative to the export root.

Every CSV mgll reads names one idea one way: `image` (an image path), `report` (report text),
`report_path`, `report_id`, `patient_id`, `study_id`, `split`. Earlier names are still read
(`OLD_COLUMN_NAMES`), so a manifest written for an older release keeps working.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path, PurePosixPath

from mgll_data import filekind
from mgll_data.sources.inputs import SourceError

MAX_CSV_BYTES = 2_000_000_000
OLD_COLUMN_NAMES = {"image_path": "image", "report_text": "report", "text": "report"}


def resolve(root: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else root / path


def read_csv(path: Path, required: list[tuple[str, ...]], what: str) -> list[dict[str, str]]:
    """Rows of a UTF-8 CSV with normalised (stripped, lower-case) headers; SourceError when unusable.

    `required` lists column groups: at least one column of each group must be present. A column under
    an old name (`OLD_COLUMN_NAMES`) is read under the current one unless that is present too.
    """
    try:
        kind = filekind.entry_kind(path)
    except OSError as exc:
        raise SourceError(f"{what} {path} cannot be read: {exc.strerror or type(exc).__name__}") from None
    if kind in (filekind.MISSING, filekind.BROKEN_LINK):
        raise SourceError(f"{what} {path} not found")
    if kind != filekind.REGULAR:
        raise SourceError(f"{what} {path} is a {kind}, not a regular file")
    try:
        size = path.stat().st_size
        if size > MAX_CSV_BYTES:
            raise SourceError(f"{what} {path} is too large ({size} bytes)")
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{what} {path} cannot be read: {exc.strerror or type(exc).__name__}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{what} {path} is not UTF-8 (bad byte at offset {exc.start}); re-save it as UTF-8"
        ) from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t") if text.strip() else csv.excel
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = next(reader, None)
        if not header:
            raise SourceError(f"{what} {path} is empty")
        columns = _current_names([h.strip().lower() for h in header])
        missing = [" or ".join(group) for group in required if not any(c in columns for c in group)]
        if missing:
            raise SourceError(
                f"{what} {path} lacks required column(s): {', '.join(missing)} (has: {', '.join(columns)})"
            )
        rows = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            rows.append({c: (values[i] if i < len(values) else "") for i, c in enumerate(columns)})
    except csv.Error as exc:
        raise SourceError(f"{what} {path} is not a readable CSV (line {reader.line_num}: {exc})") from None
    return rows


def _current_names(columns: list[str]) -> list[str]:
    return [OLD_COLUMN_NAMES[c] if c in OLD_COLUMN_NAMES and OLD_COLUMN_NAMES[c] not in columns else c
            for c in columns]


def relative(root: Path, value: str) -> str:
    """A CSV path as a POSIX path relative to root (absolute paths outside the root stay absolute)."""
    value = value.strip()
    if not value:
        return ""
    path = Path(value.replace("\\", "/"))
    if path.is_absolute():
        try:
            return path.relative_to(root.resolve()).as_posix()
        except ValueError:
            try:
                return path.relative_to(root).as_posix()
            except ValueError:
                return path.as_posix()
    return PurePosixPath(path.as_posix()).as_posix().removeprefix("./")


def blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None
