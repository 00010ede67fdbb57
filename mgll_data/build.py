"""`mgll build` as a library function: export → sources → per-input stage (via an engine) → writer.

The build is resumable: inputs whose `source_key` is already in a whole shard or in the rejects table are
skipped, so re-running the same command after a kill finishes the rest. A resume that cannot find an
input the dataset already holds is refused (the export changed, or it is another one). OUT is claimed
through `output_folder` (checked against the export, locked for the whole build). Rows + rejects = inputs
is checked before the manifest is written.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mgll_data import __version__, dataset, deid, output_folder, reports, schema, sources, writer
from mgll_data.engines import get_engine
from mgll_data.pipeline import Pipeline, load_pipeline
from mgll_data.process import BuildContext
from mgll_data.progress import progress_bar
from mgll_data.records import SourceItem

# Above this share of rejected inputs `mgll build` fails: the pipeline or the export is most likely wrong.
DEFAULT_MAX_REJECT_RATE = 0.5


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
    workers: int = 1
    engine: str = "local"

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

    def over_reject_rate(self, limit: float) -> str | None:
        """The one-line failure when more than `limit` of the inputs were rejected, else None."""
        if self.reject_rate <= limit:
            return None
        return (f"{self.reject_rate:.0%} of inputs were rejected (over --max-reject-rate {limit:.0%}); "
                f"see {self.out / dataset.REJECTS_FILE}")

    def summary_lines(self) -> list[str]:
        """The end of a build as `mgll build` prints it (and `mgll demo run` after its build step)."""
        skipped = f" ({self.skipped} already built, skipped)" if self.skipped else ""
        lines = [f"built {self.out}", f"  inputs {self.inputs}: {self.rows} rows + {self.rejects} rejects{skipped}",
                 "  splits " + ", ".join(f"{k} {v}" for k, v in self.splits.items())]
        if self.counts.get("reports_with_control_characters"):
            lines.append(f"  control characters stripped from {self.counts['reports_with_control_characters']} "
                         f"report(s) ({self.counts['control_characters_stripped']} characters)")
        if self.rejects_by_reason:
            lines.append("  rejects by reason: " + ", ".join(f"{k} {v}" for k, v in self.rejects_by_reason.items()))
        if self.counts.get("reports_truncated"):
            lines.append(f"  {self.counts['reports_truncated']} report(s) longer than the size cap: "
                         f"{self.counts['report_characters_not_read']} characters not read (rows kept)")
        lines.append(f"  {self.processed} processed in {self.seconds:.1f} s ({self.images_per_second:.2f} images/s, "
                     f"{self.workers} worker{'s' if self.workers > 1 else ''}, engine {self.engine})")
        lines.append(f"  private linkage table: {self.linkage} (keep it away from the dataset)")
        return lines


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
    license: str = dataset.DEFAULT_LICENSE,
    on_salt_created: Callable[[Path], None] | None = None,
) -> BuildSummary:
    """Build (or resume building) the dataset of export `source` into `out`.

    `license` (an SPDX id, or "other") is recorded in the manifest for the dataset card's front matter.
    `on_salt_created(path)` is called, before any input is read, when the build had to create its salt.
    Raises OutputFolderError (one line) for an OUT or linkage path it must not use: see `output_folder`."""
    started = time.perf_counter()
    source, out = Path(source).resolve(), Path(out).resolve()
    if not isinstance(pipeline, Pipeline):
        pipeline = load_pipeline(pipeline)
    linkage_path = Path(linkage).resolve() if linkage else dataset.default_linkage_path(out)
    # Every refusal comes before anything is created, the salt included, so a refused build changes nothing.
    output_folder.check_paths(source, out, linkage_path)
    output_folder.check_contents(out)
    writer.check_linkage(linkage_path)  # before --overwrite deletes anything
    items = list(sources.discover(source, pipeline))
    salt = deid.load_salt(Path(salt_file) if salt_file else deid.default_salt_path(), on_create=on_salt_created)
    keys = [deid.source_key(salt, item.source_path) for item in items]
    with output_folder.claim(source, out, linkage_path, overwrite=overwrite):
        if overwrite:
            writer.remove_linkage(linkage_path)
        state = writer.read_existing(out, pipeline.content_hash)
        _refuse_a_changed_export(state, set(keys), source, out)
        writer.start_output(out, linkage_path, state)
        todo = [item for item, key in zip(items, keys) if key not in state.done_keys]
        ctx = BuildContext(export_root=source, pipeline=pipeline, salt=salt)
        rejects, input_counts = _write(
            todo, ctx, state, out, linkage_path, engine, engine_options, workers, progress
        )
        counts = writer.dataset_counts(out)
        summary = BuildSummary(
            out=out,
            inputs=len(items),
            rows=counts["rows"],
            rejects=len(rejects),
            skipped=len(items) - len(todo),
            processed=len(todo),
            seconds=time.perf_counter() - started,
            rejects_by_reason=dict(Counter(r["reason"] for r in rejects).most_common()),
            splits=counts["splits"],
            linkage=linkage_path,
            counts=dict(input_counts),
            workers=workers,
            engine=engine,
        )
        if summary.rows + summary.rejects != summary.inputs:  # an invariant, not a user error: see above
            raise RuntimeError(f"accounting error: {summary.rows} rows + {summary.rejects} rejects != "
                               f"{summary.inputs} inputs")
        writer.write_manifest(out, _manifest(summary, pipeline, license))
    return summary


def _refuse_a_changed_export(state: writer.ExistingState, keys: set[str], source: Path, out: Path) -> None:
    """A resume must find every input the dataset already holds: one missing means the export lost files
    since the last build, or SOURCE is another export (or the salt another salt), and resuming would
    leave rows of inputs that no longer exist. New inputs are fine: that is an increment."""
    gone = len(state.done_keys - keys)
    if not gone:
        return
    done = len(state.done_keys)
    how_many = f"all {done} of them" if gone == done else f"{gone} of its {done}"
    raise output_folder.OutputFolderError(
        f"{out} was built from inputs that are not in {source}: {how_many} (deleted or moved since the last "
        "build, or another export or salt); build into a new folder, or pass --overwrite to rebuild it from "
        "this export"
    )


def _write(
    todo: list[SourceItem],
    ctx: BuildContext,
    state: writer.ExistingState,
    out: Path,
    linkage_path: Path,
    engine: str,
    engine_options: dict[str, Any] | None,
    workers: int,
    progress: bool,
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Run the per-input stage over `todo` and write each outcome: a row into a shard or a reject, its
    linkage entry into the journal first. Returns every reject of the dataset, earlier ones included, and
    this run's summed per-input counts (e.g. control characters stripped from reports)."""
    pipeline = ctx.pipeline
    arrow_schema = schema.arrow_schema(
        list(pipeline.granularities), _vocabulary(pipeline), pipeline.name, pipeline_hash=pipeline.content_hash,
        training_image=pipeline.image.training_format is not None,
        item_vocabulary=reports.item_vocabulary(reports.load_vocabulary(pipeline.reports.vocabulary)),
    )
    journal = writer.LinkageJournal(linkage_path)
    shards = writer.ShardWriter(out, arrow_schema, state.next_shards, before_commit=journal.flush)
    rejects = list(state.rejects)
    input_counts: Counter[str] = Counter()
    run = get_engine(engine, **(engine_options or {}))
    bar = progress_bar(len(todo), desc="build", unit="img", enabled=progress)
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
    return rejects, input_counts


def _vocabulary(pipeline: Pipeline) -> list[str]:
    return reports.vocabulary_names(pipeline.reports.vocabulary)


def _manifest(summary: BuildSummary, pipeline: Pipeline, license: str) -> dict[str, Any]:
    return {
        "schema_version": schema.schema_version(),
        "tool_version": __version__,
        "pipeline": {"name": pipeline.name, "content_hash": pipeline.content_hash, "layout": pipeline.layout},
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "engine": summary.engine,
        "workers": summary.workers,
        "inputs": summary.inputs,
        "rows": summary.rows,
        "rejects": summary.rejects,
        "rejects_by_reason": summary.rejects_by_reason,
        "splits": summary.splits,
        "label_vocabulary": _vocabulary(pipeline),
        "granularities": list(pipeline.granularities),
        "license": license,
        "shards": [dataset.relative_name(summary.out, p) for p in dataset.shard_paths(summary.out)],
        "timings": {
            "seconds": round(summary.seconds, 3),
            "images_per_second": round(summary.images_per_second, 3),
            "processed": summary.processed,
            "cpu_count": os.cpu_count(),
        },
    }
