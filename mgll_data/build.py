"""`mgll build` as a library function: export → sources → per-input stage (via an engine) → writer.

The build is resumable: inputs whose `source_key` is already in a whole shard or in the rejects table are
skipped, so re-running the same command after a kill finishes the rest. Rows + rejects = inputs is
checked before the manifest is written.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mgll_data import __version__, deid, reports, schema, sources, writer
from mgll_data.engines import get_engine
from mgll_data.pipeline import Pipeline
from mgll_data.pipeline import load as load_pipeline
from mgll_data.process import BuildContext


@dataclass
class BuildSummary:
    out: Path
    inputs: int
    rows: int
    rejects: int
    skipped: int
    processed: int
    seconds: float
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    linkage: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)  # summed `Outcome.counts` of this run's inputs

    @property
    def reject_rate(self) -> float:
        return self.rejects / self.inputs if self.inputs else 0.0

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "inputs": self.inputs,
            "rows": self.rows,
            "rejects": self.rejects,
            "skipped_already_built": self.skipped,
            "processed": self.processed,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 3),
            "reject_rate": round(self.reject_rate, 4),
            "rejects_by_reason": self.rejects_by_reason,
            "splits": self.splits,
            "counts": self.counts,
        }


def default_linkage_path(out: Path) -> Path:
    return out.parent / f"{out.name}.linkage.parquet"


def build_dataset(
    source: Path,
    out: Path,
    pipeline: Pipeline | str | Path,
    *,
    workers: int = 1,
    engine: str = "local",
    engine_options: dict[str, Any] | None = None,
    linkage: Path | None = None,
    salt_file: Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> BuildSummary:
    started = time.perf_counter()
    source, out = Path(source).resolve(), Path(out).resolve()
    if not isinstance(pipeline, Pipeline):
        pipeline = load_pipeline(pipeline)
    linkage_path = Path(linkage).resolve() if linkage else default_linkage_path(out)
    if linkage_path == out or out in linkage_path.parents:
        raise ValueError("the linkage table identifies patients: --linkage must point outside the dataset folder")
    salt = deid.load_salt(Path(salt_file) if salt_file else deid.default_salt_path())

    items = list(sources.discover(source, pipeline))
    state = writer.prepare_output(out, linkage_path, pipeline.content_hash, overwrite)
    ctx = BuildContext(export_root=source, pipeline=pipeline, salt=salt)
    todo = [item for item in items if deid.source_key(salt, item.source_path) not in state.done_keys]

    vocabulary = reports.vocabulary_names(pipeline.reports.vocabulary)
    arrow_schema = schema.arrow_schema(
        list(pipeline.granularities), vocabulary, pipeline.name, pipeline_hash=pipeline.content_hash
    )
    journal = writer.LinkageJournal(linkage_path)
    shards = writer.ShardWriter(out, arrow_schema, first_shard=state.next_shard, before_commit=journal.flush)
    rejects = list(state.rejects)
    input_counts: Counter[str] = Counter()
    run = get_engine(engine, **(engine_options or {}))
    bar = tqdm(total=len(todo), unit="img", desc="build", disable=not progress, dynamic_ncols=True)
    try:
        for outcome in run(todo, ctx, max(1, workers)):
            journal.add(writer.linkage_entry(outcome))  # before the row: adding it may commit its shard
            input_counts.update(outcome.counts)
            if outcome.row is not None:
                shards.add(outcome.row)
            else:
                rejects.append(writer.reject_entry(outcome))
            bar.update(1)
            bar.set_postfix(rejects=len(rejects) - len(state.rejects), refresh=False)
    finally:
        bar.close()
        shards.close()
        writer.write_rejects(out, rejects)
        journal.finish()

    counts = writer.dataset_counts(out)
    seconds = time.perf_counter() - started
    summary = BuildSummary(
        out=out,
        inputs=len(items),
        rows=counts["rows"],
        rejects=len(rejects),
        skipped=len(items) - len(todo),
        processed=len(todo),
        seconds=seconds,
        rejects_by_reason=dict(Counter(r["reason"] for r in rejects).most_common()),
        splits=counts["splits"],
        linkage=linkage_path,
        counts=dict(input_counts),
    )
    if summary.rows + summary.rejects != summary.inputs:
        raise RuntimeError(
            f"accounting error: {summary.rows} rows + {summary.rejects} rejects != {summary.inputs} inputs; "
            "the export changed since the last build? re-run with --overwrite"
        )
    writer.write_manifest(out, _manifest(summary, pipeline, vocabulary, engine, workers))
    return summary


def _manifest(summary: BuildSummary, pipeline: Pipeline, vocabulary: list[str], engine: str, workers: int) -> dict[str, Any]:
    return {
        "schema_version": schema.schema_version(),
        "tool_version": __version__,
        "pipeline": {"name": pipeline.name, "content_hash": pipeline.content_hash, "layout": pipeline.layout},
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "engine": engine,
        "workers": workers,
        "inputs": summary.inputs,
        "rows": summary.rows,
        "rejects": summary.rejects,
        "rejects_by_reason": summary.rejects_by_reason,
        "splits": summary.splits,
        "label_vocabulary": vocabulary,
        "granularities": list(pipeline.granularities),
        "shards": [f"{writer.DATA_DIR}/{p.name}" for p in writer.shard_paths(summary.out)],
        "timings": {
            "seconds": round(summary.seconds, 3),
            "images_per_second": round(summary.images_per_second, 3),
            "processed": summary.processed,
            "cpu_count": os.cpu_count(),
        },
    }
