"""`mgll label`: label free-text reports without building a dataset (a thin layer over label_reports)."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import click

MAX_WARNINGS_SHOWN = 10


@dataclass
class InputReport:
    report_id: str
    text: str | None  # None = unusable, `problem` says why
    problem: str | None = None


def _check_text(report_id: str, raw: str | bytes | None, max_chars: int) -> InputReport:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return InputReport(report_id, None, "not UTF-8")
    if raw is None or not str(raw).strip():
        return InputReport(report_id, None, "empty report")
    text = str(raw)
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        return InputReport(report_id, None, "not UTF-8")
    if len(text) > max_chars:
        return InputReport(report_id, None, f"longer than {max_chars} characters")
    return InputReport(report_id, text)


def read_reports(path: Path, max_chars: int) -> list[InputReport]:
    """CSV (report_id,text), JSONL ({"report_id","text"}) or a folder of .txt files (report_id = stem)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise click.ClickException(f"{path} holds no .txt reports")
        return [_check_text(p.relative_to(path).with_suffix("").as_posix(), p.read_bytes(), max_chars) for p in files]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, max_chars)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl(path, max_chars)
    raise click.ClickException(f"{path.name}: give a .csv, a .jsonl or a folder of .txt reports")


def _read_csv(path: Path, max_chars: int) -> list[InputReport]:
    csv.field_size_limit(max(max_chars * 10, 1 << 24))
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:  # -sig: Excel's BOM
        reader = csv.DictReader(fh)
        columns = {c.strip().lower(): c for c in (reader.fieldnames or [])}
        if "report_id" not in columns or "text" not in columns:
            raise click.ClickException(f"{path.name} needs the columns report_id,text (found: {','.join(columns) or 'none'})")
        reports = []
        for n, row in enumerate(reader, start=1):
            report_id = (row.get(columns["report_id"]) or "").strip() or f"row-{n}"
            reports.append(_check_text(report_id, row.get(columns["text"]), max_chars))
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
            report_id = str(record.get("report_id") or f"line-{n}").encode("utf-8", "replace").decode("utf-8")
            text = record.get("text")
            if text is not None and not isinstance(text, str):
                reports.append(InputReport(report_id, None, "text is not a string"))
                continue
            reports.append(_check_text(report_id, text, max_chars))
    return reports


def write_labels(out: Path, reports: list[InputReport], labels: list[dict[str, int] | None], names: list[str]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {"report_id": pa.array([r.report_id for r in reports], pa.string())}
        for name in names:
            columns[name] = pa.array([None if row is None else row.get(name) for row in labels], pa.int8())
        pq.write_table(pa.table(columns), out)
        return
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["report_id", *names])
        for report, row in zip(reports, labels):
            writer.writerow([report.report_id, *("" if row is None or name not in row else row[name] for name in names)])


@click.command(
    "label",
    epilog="""\b
Example:
  mgll label reports.csv --vocab nih14 --out labels.csv --evidence evidence.jsonl --workers 2
  mgll label reports/ --vocab my-vocab.yaml --out labels.parquet
""",
)
@click.argument("reports", type=click.Path(path_type=Path))
@click.option("--vocab", default="chexpert", show_default=True, help="nih14, chexpert, fundus, or a vocabulary YAML file.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="labels.csv or labels.parquet.")
@click.option("--evidence", type=click.Path(path_type=Path), help="JSONL of every mention: sentence, section, rule.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256), help="Processes to label with.")
@click.option("--sections", default="findings,impression", show_default=True,
              help="Sections to label when a report has headings (others are ignored).")
@click.option("--max-chars", default=100_000, show_default=True, type=click.IntRange(1), help="Longer reports are skipped.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
def label(reports: Path, vocab: str, out: Path, evidence: Path | None, workers: int, sections: str, max_chars: int,
          as_json: bool, progress: bool) -> None:
    """Label free-text reports: one row per report, one column per finding (1 positive, 0 negative,
    -1 uncertain, blank not mentioned).

    REPORTS is a CSV with columns report_id,text, a JSONL file of {"report_id": ..., "text": ...}, or a
    folder of .txt files (report_id = file name). Empty, non-UTF-8 or enormous reports get a blank row
    and a warning.
    """
    from tqdm import tqdm

    from mgll_data.reports import VocabularyError, label_reports, load_vocabulary
    from mgll_data.reports.nlp import get_nlp

    if not reports.exists():
        raise click.ClickException(f"{reports} does not exist")
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise click.ClickException(f"--out must end in .csv or .parquet, got {out.name}")
    try:
        vocabulary = load_vocabulary(vocab)
    except VocabularyError as exc:
        raise click.ClickException(str(exc)) from None
    wanted_sections = tuple(s.strip().lower() for s in sections.split(",") if s.strip())
    inputs = read_reports(reports, max_chars)
    usable = [r for r in inputs if r.text is not None]
    get_nlp(vocabulary.source)  # load spaCy + medspaCy once, outside the timed part
    started = time.perf_counter()
    with tqdm(total=len(usable), unit="report", file=sys.stderr, disable=not progress, desc="labelling") as bar:
        results = label_reports([r.text for r in usable], vocabulary.source, n_process=workers,
                                sections=wanted_sections, on_progress=bar.update)
    seconds = time.perf_counter() - started
    by_id = {id(r): res for r, res in zip(usable, results)}
    rows = [dict(by_id[id(r)].labels) if id(r) in by_id else None for r in inputs]
    write_labels(out, inputs, rows, vocabulary.names())
    if evidence:
        _write_evidence(evidence, inputs, by_id)
    _report(inputs, rows, vocabulary.names(), seconds, out, as_json)


def _write_evidence(path: Path, inputs: list[InputReport], by_id: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for report in inputs:
            for mention in by_id[id(report)].mentions if id(report) in by_id else []:
                fh.write(json.dumps({"report_id": report.report_id, **mention.to_dict()}) + "\n")


def _report(inputs: list[InputReport], rows: list, names: list[str], seconds: float, out: Path, as_json: bool) -> None:
    problems = [r for r in inputs if r.problem]
    for r in problems[:MAX_WARNINGS_SHOWN]:
        click.echo(f"warning: report {r.report_id!r}: {r.problem}; its row is blank", err=True)
    if len(problems) > MAX_WARNINGS_SHOWN:
        click.echo(f"warning: {len(problems) - MAX_WARNINGS_SHOWN} more unusable reports", err=True)
    duplicates = [k for k, n in Counter(r.report_id for r in inputs).items() if n > 1]
    if duplicates:
        click.echo(f"warning: {len(duplicates)} report_id values repeat (e.g. {duplicates[0]!r})", err=True)
    positives = {name: sum(1 for row in rows if row and row.get(name) == 1) for name in names}
    uncertain = {name: sum(1 for row in rows if row and row.get(name) == -1) for name in names}
    labelled = len(inputs) - len(problems)
    summary = {
        "reports": len(inputs),
        "labelled": labelled,
        "skipped": len(problems),
        "skipped_by_reason": dict(Counter(r.problem for r in problems)),
        "seconds": round(seconds, 3),
        "reports_per_second": round(labelled / seconds, 1) if seconds > 0 else None,
        "positives": positives,
        "uncertain": uncertain,
        "out": str(out),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    rate = summary["reports_per_second"]
    click.echo(f"labelled {labelled} of {len(inputs)} reports in {seconds:.1f}s ({rate} reports/s) -> {out}", err=True)
    width = max(len(n) for n in names)
    for name in names:
        click.echo(f"  {name:<{width}}  positive {positives[name]:>6}  uncertain {uncertain[name]:>6}", err=True)
