"""`mgll label`: label free-text reports without building a dataset (a thin layer over label_reports)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import click

from mgll_data.commands.options import describe_os_error, human_echo, json_option, quiet_option, write_json
from mgll_data.progress import progress_bar
from mgll_data.reports.certainty import DEFAULT_POLICY, PRESETS
from mgll_data.reports.io import LAYOUTS, OUTPUT_SUFFIXES

MAX_WARNINGS_SHOWN = 10


@click.command(
    "label",
    epilog="""\b
Example:
  mgll label reports.csv --vocab nih14 --out labels.csv --evidence evidence.jsonl --workers 2
  mgll label reports/ --vocab my-vocab.yaml --out labels.parquet --uncertain-policy chexpert
  mgll label mimic-reports/ --vocab chexpert --layout mimic --out chexpert.csv
""",
)
@click.argument("reports", type=click.Path(path_type=Path))
@click.option(
    "--vocab", default="chexpert", show_default=True, help="nih14, chexpert, fundus, or a vocabulary YAML file."
)
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="labels.csv or labels.parquet.")
@click.option("--evidence", type=click.Path(path_type=Path),
              help="JSONL of every mention: sentence, section, certainty, status and the rule that set them.")
@click.option(
    "--uncertain-policy",
    "policy",
    default=DEFAULT_POLICY,
    show_default=True,
    type=click.Choice(list(PRESETS)),
    help="Which certainty levels become 1 / -1 / blank (see the README's labelling section).",
)
@click.option("--layout", default="wide", show_default=True, type=click.Choice(LAYOUTS),
              help="wide: report_id + findings in vocabulary order; mimic: MIMIC-CXR-JPG's subject_id,study_id + "
                   "alphabetical findings as 1.0/0.0/-1.0/blank.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Worker processes labelling reports.")
@click.option("--sections", default="findings,impression", show_default=True,
              help="Sections to label when a report has headings (indication / history are read as the "
                   "clinical question; others are ignored).")
@click.option(
    "--max-chars", default=100_000, show_default=True, type=click.IntRange(1), help="Longer reports are skipped."
)
@json_option("the summary")
@quiet_option
def label(reports: Path, vocab: str, out: Path, evidence: Path | None, policy: str, layout: str, workers: int,
          sections: str, max_chars: int, json_out: str | None, quiet: bool) -> None:
    """Label free-text reports: one row per report, one column per finding (1 positive, 0 negative,
    -1 uncertain, blank not mentioned or not asserted under the policy).

    REPORTS is a CSV with columns report_id,report, a JSONL file of {"report_id": ..., "report": ...}, or a
    folder of .txt files (report_id = file path without .txt). Empty, non-UTF-8 or enormous reports get
    a blank row and a warning.
    """
    from mgll_data.output_file import OutputFileError
    from mgll_data.reports import VocabularyError, label_reports, load_vocabulary
    from mgll_data.reports.io import ReportInputError, check_outputs, read_reports, write_evidence, write_labels
    from mgll_data.reports.labels import statuses
    from mgll_data.reports.nlp import get_nlp

    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise click.ClickException(f"--out must end in .csv or .parquet, got {out.name}")
    try:
        vocabulary = load_vocabulary(vocab)
        check_outputs(reports, out, evidence, vocabulary.names(), layout)
        inputs = read_reports(reports, max_chars)
    except (VocabularyError, ReportInputError, OutputFileError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot read the reports: {describe_os_error(exc)}") from None
    wanted_sections = tuple(s.strip().lower() for s in sections.split(",") if s.strip())
    usable = [r for r in inputs if r.text is not None]
    get_nlp(vocabulary.source)  # load spaCy + medspaCy once, outside the timed part
    started = time.perf_counter()
    with progress_bar(len(usable), desc="labelling", unit="report", enabled=not quiet) as bar:
        results = label_reports([r.text for r in usable], vocabulary.source, n_process=workers,
                                sections=wanted_sections, policy=policy, on_progress=bar.update)
    seconds = time.perf_counter() - started
    by_id = {id(r): res for r, res in zip(usable, results)}
    rows = [statuses(by_id[id(r)].labels) if id(r) in by_id else None for r in inputs]
    try:
        write_labels(out, inputs, rows, vocabulary.names(), layout)
        if evidence:
            write_evidence(evidence, inputs, [by_id[id(r)].mentions if id(r) in by_id else [] for r in inputs])
    except OSError as exc:
        raise click.ClickException(f"cannot write the labels: {describe_os_error(exc)}") from None
    _report(inputs, rows, vocabulary.names(), seconds, out, policy, json_out)


def _report(inputs: list, rows: list, names: list[str], seconds: float, out: Path, policy: str,
            json_out: str | None) -> None:
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
        "uncertain_policy": policy,
        "seconds": round(seconds, 3),
        "reports_per_second": round(labelled / seconds, 1) if seconds > 0 else None,
        "positives": positives,
        "uncertain": uncertain,
        "out": str(out),
    }
    rate = summary["reports_per_second"]
    echo = human_echo(json_out)
    echo(f"labelled {labelled} of {len(inputs)} reports in {seconds:.1f}s ({rate} reports/s, "
         f"uncertain policy {policy}) -> {out}")
    width = max(len(n) for n in names)
    for name in names:
        echo(f"  {name:<{width}}  positive {positives[name]:>6}  uncertain {uncertain[name]:>6}")
    write_json(summary, json_out)
