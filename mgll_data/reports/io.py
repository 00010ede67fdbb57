"""Reading reports to label and writing their labels: CSV, JSON Lines, a folder of .txt; CSV or Parquet.

Every input row comes back: an unusable one (empty, not UTF-8, too long, not JSON) as an `InputReport`
with `text` None and the reason, so the caller can count it and write a blank row for it. A file that
cannot be read as reports at all raises `ReportInputError` with a one-line message (the CLI translates
it; sqlite-utils' `rows_from_file` works the same way).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from mgll_data.output_file import OutputFileError, check_replaceable, replaced_whole

if TYPE_CHECKING:
    from mgll_data.reports.labels import Mention

OUTPUT_SUFFIXES = (".csv", ".parquet")
LABELS_METADATA = b"mgll.labels"  # in a Parquet labels file's schema: its layout
TEXT_NAMES = ("report", "text")  # the report text's column or key; "text" is its earlier name
LAYOUTS = ("wide", "mimic")
# MIMIC-CXR report files live at files/pXX/p<subject>/s<study>.txt
_MIMIC_IDS = re.compile(r"(?:^|/)p(?P<subject>\d+)/s(?P<study>\d+)(?:\.txt)?$")


class ReportInputError(ValueError):
    """A reports file or folder that cannot be read as reports; the message is one line for the user."""


@dataclass
class InputReport:
    report_id: str
    text: str | None  # None = unusable, `problem` says why
    problem: str | None = None
    subject_id: str | None = None
    study_id: str | None = None


def _check_text(report_id: str, raw: str | bytes | None, max_chars: int, **ids: str | None) -> InputReport:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return InputReport(report_id, None, "not UTF-8", **ids)
    if raw is None or not str(raw).strip():
        return InputReport(report_id, None, "empty report", **ids)
    text = str(raw)
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        return InputReport(report_id, None, "not UTF-8", **ids)
    if len(text) > max_chars:
        return InputReport(report_id, None, f"longer than {max_chars} characters", **ids)
    return InputReport(report_id, text, **ids)


def read_reports(path: Path, max_chars: int) -> list[InputReport]:
    """CSV (report_id,report), JSONL ({"report_id","report"}) or a folder of .txt files (report_id = path
    without .txt). Optional subject_id / study_id columns or keys are kept for the MIMIC layout. The
    text's earlier name `text` is still read (mgll's CSVs name one idea one way: see `sources.tables`)."""
    path = Path(path)
    if not path.exists():
        raise ReportInputError(f"{path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise ReportInputError(f"{path} holds no .txt reports")
        return [_check_text(p.relative_to(path).with_suffix("").as_posix(), p.read_bytes(), max_chars) for p in files]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, max_chars)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl(path, max_chars)
    raise ReportInputError(f"{path.name}: give a .csv, a .jsonl or a folder of .txt reports")


def _read_csv(path: Path, max_chars: int) -> list[InputReport]:
    csv.field_size_limit(max(max_chars * 10, 1 << 24))
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:  # -sig: Excel's BOM
        reader = csv.DictReader(fh)
        columns = {c.strip().lower(): c for c in (reader.fieldnames or [])}
        text_column = next((columns[name] for name in TEXT_NAMES if name in columns), None)
        if "report_id" not in columns or text_column is None:
            raise ReportInputError(
                f"{path.name} needs the columns report_id,report (found: {','.join(columns) or 'none'})"
            )
        reports = []
        for n, row in enumerate(reader, start=1):
            report_id = (row.get(columns["report_id"]) or "").strip() or f"row-{n}"
            ids = {
                key: (row.get(columns[key]) or "").strip() or None
                for key in ("subject_id", "study_id")
                if key in columns
            }
            reports.append(_check_text(report_id, row.get(text_column), max_chars, **ids))
    return reports


def _read_jsonl(path: Path, max_chars: int) -> list[InputReport]:
    reports = []
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8", errors="surrogateescape"))
            except json.JSONDecodeError:
                reports.append(InputReport(f"line-{n}", None, "not valid JSON"))
                continue
            if not isinstance(record, dict):
                reports.append(InputReport(f"line-{n}", None, "not a JSON object"))
                continue
            report_id = _clean_id(record.get("report_id")) or f"line-{n}"
            ids = {key: _clean_id(record.get(key)) for key in ("subject_id", "study_id") if key in record}
            text = next((record[name] for name in TEXT_NAMES if name in record), None)
            if text is not None and not isinstance(text, str):
                reports.append(InputReport(report_id, None, "text is not a string", **ids))
                continue
            reports.append(_check_text(report_id, text, max_chars, **ids))
    return reports


def _clean_id(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value).encode("utf-8", "replace").decode("utf-8")


def mimic_ids(report: InputReport) -> tuple[str, str]:
    """(subject_id, study_id) for MIMIC-CXR-JPG's label files: given columns first, else parsed from a
    MIMIC path ("files/p10/p10000032/s50414267"), else ("", report_id)."""
    match = _MIMIC_IDS.search(report.report_id)
    subject = report.subject_id or (match.group("subject") if match else "")
    study = report.study_id or (match.group("study") if match else report.report_id)
    return subject, study


def write_labels(out: Path, reports: Sequence[InputReport], labels: Sequence[Mapping[str, int] | None],
                 names: Sequence[str], layout: str = "wide") -> None:
    """One row per input report. "wide": report_id + one column per finding in vocabulary order (1 / 0 /
    -1 / blank). "mimic": MIMIC-CXR-JPG's layout, subject_id,study_id + findings in alphabetical order as
    1.0 / 0.0 / -1.0 / blank, so code written for its chexpert.csv reads ours unchanged."""
    if layout not in LAYOUTS:
        raise ReportInputError(f"unknown layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    mimic = layout == "mimic"
    ordered = sorted(names) if mimic else list(names)
    if mimic:
        ids = [mimic_ids(r) for r in reports]
        keys = {"subject_id": [s for s, _ in ids], "study_id": [s for _, s in ids]}
    else:
        keys = {"report_id": [r.report_id for r in reports]}
    values = {name: [None if row is None else row.get(name) for row in labels] for name in ordered}
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        value_type = pa.float64() if mimic else pa.int8()
        columns = {k: pa.array(v, pa.string()) for k, v in keys.items()}
        columns.update({name: pa.array(v, value_type) for name, v in values.items()})
        with replaced_whole(out) as partial:
            pq.write_table(pa.table(columns).replace_schema_metadata({LABELS_METADATA: layout}), partial)
        return
    shown = (lambda v: "" if v is None else f"{float(v):.1f}") if mimic else (lambda v: "" if v is None else v)
    with replaced_whole(out) as partial, open(partial, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(label_columns(names, layout))
        for i in range(len(reports)):
            writer.writerow([*(v[i] for v in keys.values()), *(shown(values[name][i]) for name in ordered)])


def label_columns(names: Sequence[str], layout: str) -> list[str]:
    """The columns `write_labels` writes for these finding names in this layout, in order."""
    return ["subject_id", "study_id", *sorted(names)] if layout == "mimic" else ["report_id", *names]


def check_outputs(reports: Path, out: Path, evidence: Path | None, names: Sequence[str], layout: str) -> None:
    """Refuse, before any labelling, output paths that would destroy a file `mgll label` did not write: the
    reports themselves, a labels file of another vocabulary or layout, anything else already there.
    Raises OutputFileError (one line)."""
    for path in (out, evidence):
        if path and Path(reports).exists() and path.resolve() == Path(reports).resolve():
            raise OutputFileError(f"{path} is the reports file being labelled; choose another output path")
    if evidence and evidence.resolve() == out.resolve():
        raise OutputFileError("--evidence and --out name the same file; choose two paths")
    columns = label_columns(names, layout)
    check_replaceable(out, lambda p: _label_columns_of(p) == columns,
                      f"a {layout} labels file of this vocabulary")
    if evidence:
        check_replaceable(evidence, _is_evidence, "an evidence file")


def _label_columns_of(path: Path) -> list[str] | None:
    """The columns of a labels file `write_labels` wrote (None for any other file)."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        return schema.names if LABELS_METADATA in (schema.metadata or {}) else None
    with open(path, encoding="utf-8", newline="") as fh:
        return next(csv.reader(fh), None)


def _is_evidence(path: Path) -> bool:
    """An evidence file is empty (no mentions) or opens with a mention line as `write_evidence` writes it."""
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    if not first:
        return True
    from mgll_data.reports.labels import Mention  # spaCy: the label command has loaded it already

    return set(json.loads(first)) == {"report_id", *(f.name for f in fields(Mention))}


def write_evidence(path: Path, reports: Sequence[InputReport], mentions: Sequence[Sequence[Mention]]) -> None:
    """JSON Lines, one line per mention: the report id, the finding, its certainty and status, the rule
    that set them, the sentence and the section."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_whole(path) as partial, open(partial, "w", encoding="utf-8") as fh:
        for report, found in zip(reports, mentions, strict=True):
            for mention in found:
                fh.write(json.dumps({"report_id": report.report_id, **mention.to_dict()}) + "\n")
