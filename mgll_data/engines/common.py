"""What every engine shares: the stage signature and the reject for an input that killed its worker."""

from __future__ import annotations

from collections.abc import Callable

from mgll_data import deid
from mgll_data.process import BuildContext
from mgll_data.records import Outcome, Reject, SourceItem

Stage = Callable[[SourceItem, BuildContext], Outcome]


def crash_outcome(item: SourceItem, ctx: BuildContext) -> Outcome:
    reject = Reject(
        stage="engine", reason="worker-crashed", error="the worker process died while processing this input"
    )
    return Outcome(
        deid.source_key(ctx.salt, item.source_path),
        reject=reject,
        linkage={"source_path": item.source_path, "report_path": item.report_path, "error_detail": reject.error},
    )
