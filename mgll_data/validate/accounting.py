"""Accounting: every input ends up as a data row or a reject, and the manifest says so truthfully.

Checks rejects.parquet itself, then compares the manifest's counts, splits, reject reasons and
declarations with what the shards and the rejects table actually hold.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mgll_data import schema
from mgll_data.dataset import MANIFEST_FILE, REJECTS_FILE
from mgll_data.validate.report import Recorder, examples, plural, verb
from mgll_data.validate.scan import PRIVACY_PATTERNS, Scan
from mgll_data.validate.structure import normalise_type

REJECT_STAGES = ("sources", "imaging", "deid", "reports", "writer")
PATH_PATTERN = r"(^|[\s'\"(=])(/[^\s/]+){2,}|\b[A-Za-z]:\\"



# -- rejects and counts --------------------------------------------------------------------------------

def check_rejects(root: Path, out: Recorder) -> list[dict[str, Any]] | None:
    """rejects.parquet: readable, with the contract's columns, known stages and one row per source; its rows,
    or None when there is no usable table."""
    path = root / REJECTS_FILE
    if not path.is_file():
        out.error("rejects", f"{REJECTS_FILE} is missing (an empty table is expected when nothing was rejected)")
        return None
    try:
        table = pq.ParquetFile(path).read()
    except (OSError, pa.ArrowException):
        out.error("rejects", f"{REJECTS_FILE} is not a readable Parquet file")
        return None
    expected = schema.rejects_schema()
    usable = []
    for field_ in expected:
        index = table.schema.get_field_index(field_.name)
        if index < 0:
            out.error("rejects", f"{REJECTS_FILE} lacks column '{field_.name}'")
        elif not normalise_type(table.schema.field(index).type)[0].equals(field_.type):
            out.error("rejects", f"{REJECTS_FILE} column '{field_.name}' is {table.schema.field(index).type}, "
                                 f"expected {field_.type}")
        else:
            usable.append(field_.name)
            if not field_.nullable and table.column(field_.name).null_count:
                out.error("rejects", f"{plural(table.column(field_.name).null_count, 'null')} in "
                                     f"{REJECTS_FILE} column '{field_.name}'")
    rows = table.select(usable).to_pylist()
    if "stage" in usable:
        unknown = sorted({r["stage"] for r in rows if r["stage"] is not None} - set(REJECT_STAGES))
        if unknown:
            out.warn("rejects", f"unknown reject stages{examples(unknown)}")
    if "error" in usable:
        column = table.column("error")
        for what, pattern in {**PRIVACY_PATTERNS, "a file path": PATH_PATTERN}.items():
            n = pc.sum(pc.match_substring_regex(column, pattern)).as_py() or 0
            if n:
                holds = verb(n, "looks like it holds", "look like they hold")
                out.phi("privacy", f"{plural(n, 'reject error')} {holds} {what}")
    if "source_key" in usable:
        repeated = sum(n - 1 for n in Counter(r["source_key"] for r in rows).values() if n > 1)
        if repeated:
            out.error("rejects", f"{plural(repeated, 'duplicate source_key')} in {REJECTS_FILE}")
    out.stats["rejects"] = len(rows)
    out.stats["rejects_by_reason"] = dict(Counter(r["reason"] for r in rows if "reason" in usable).most_common())
    out.passed("rejects", f"{REJECTS_FILE}: {plural(len(rows), 'row')}, schema as in the contract")
    return rows

def check_counts(
    manifest: dict[str, Any] | None,
    metadata: dict[str, Any],
    scan: Scan,
    rejects: list[dict[str, Any]] | None,
    out: Recorder,
) -> None:
    """The manifest's counts and declarations against what the shards and rejects.parquet hold."""
    data_rows = scan.rows_on_disk
    out.stats["inputs"] = manifest.get("inputs") if manifest else None
    if manifest is None:
        out.skip("counts", f"no usable {MANIFEST_FILE} to compare counts with")
        return
    m_inputs, m_rows, m_rejects = manifest.get("inputs"), manifest.get("rows"), manifest.get("rejects")
    if isinstance(m_rows, int) and m_rows != data_rows:
        out.error("counts", f"manifest says {m_rows} rows, the shards hold {data_rows}")
    if rejects is not None and isinstance(m_rejects, int) and m_rejects != len(rejects):
        out.error("counts", f"manifest says {m_rejects} rejects, {REJECTS_FILE} holds {len(rejects)}")
    if isinstance(m_inputs, int) and isinstance(m_rows, int) and isinstance(m_rejects, int) \
            and m_rows + m_rejects != m_inputs:
        out.error("counts", f"rows + rejects = {m_rows} + {m_rejects} = {m_rows + m_rejects}, "
                            f"but manifest inputs = {m_inputs}")
    if rejects is not None and isinstance(m_inputs, int) and data_rows + len(rejects) != m_inputs:
        out.error("counts", f"data rows + rejects on disk = {data_rows} + {len(rejects)} = "
                            f"{data_rows + len(rejects)}, but manifest inputs = {m_inputs}")
    splits = manifest.get("splits")
    if isinstance(splits, dict) and not scan.unreadable_rows:
        actual = {k: v for k, v in scan.split_rows.items() if v}
        stated = {k: v for k, v in splits.items() if v}
        if actual != stated and "split" in scan.seen_columns:
            out.error("counts", f"manifest splits {stated} differ from the data's {actual}")
    by_reason = manifest.get("rejects_by_reason")
    if isinstance(by_reason, dict) and rejects is not None:
        actual_reasons = dict(Counter(r.get("reason") for r in rejects))
        stated_reasons = {k: v for k, v in by_reason.items() if v}
        if actual_reasons != stated_reasons:
            out.error("counts", f"manifest rejects_by_reason {stated_reasons} differs from "
                                f"{REJECTS_FILE}'s {actual_reasons}")
    comparisons = (
        ("label_vocabulary", "mgll.label_vocabulary", manifest.get("label_vocabulary")),
        ("granularities", "mgll.granularities", manifest.get("granularities")),
        ("schema_version", "mgll.schema_version", manifest.get("schema_version")),
        ("pipeline.name", "mgll.pipeline", (manifest.get("pipeline") or {}).get("name")
         if isinstance(manifest.get("pipeline"), dict) else None),
        ("pipeline.content_hash", "mgll.pipeline_hash", (manifest.get("pipeline") or {}).get("content_hash")
         if isinstance(manifest.get("pipeline"), dict) else None),
    )
    for manifest_key, metadata_key, stated in comparisons:
        recorded = metadata.get(metadata_key)
        if recorded not in (None, "") and stated is not None and recorded != stated:
            out.error("counts", f"manifest {manifest_key} differs from the shards' {metadata_key}")
    out.passed("counts", f"rows + rejects = inputs ({data_rows} + {len(rejects or [])} = {m_inputs}); "
                         "manifest counts match the data")
