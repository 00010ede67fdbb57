"""What `mgll validate` hands back: the check outcomes, the stats, and their human and JSON renderings.

`Recorder` is what the checks write into; the small phrasing helpers keep every message in the same form
(a count, what is wrong, a few example ids), so a report reads the same whichever check wrote a line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mgll_data.dataset import split_order

EXAMPLES = 3

# The order checks are reported in; each appears once as "ok" when it found nothing.
CHECKS = (
    "layout",
    "manifest",
    "shards",
    "metadata",
    "columns",
    "huggingface",
    "nulls",
    "values",
    "labels",
    "splits",
    "image_ids",
    "images",
    "duplicates",
    "granularities",
    "rejects",
    "counts",
    "linkage",
    "privacy",
)


@dataclass(frozen=True)
class CheckOutcome:
    check: str
    level: str  # "ok" | "error" | "warn" | "skip"
    message: str


@dataclass
class ValidationReport:
    dataset: str
    outcomes: list[CheckOutcome] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        return [f"{f.check}: {f.message}" for f in self.outcomes if f.level == "error"]

    @property
    def warnings(self) -> list[str]:
        return [f"{f.check}: {f.message}" for f in self.outcomes if f.level == "warn"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "ok": self.ok,
            "errors": self.errors,
            "warnings": self.warnings,
            "checks": [{"check": f.check, "level": f.level, "message": f.message} for f in self.outcomes],
            "stats": self.stats,
        }

    def summary_lines(self) -> list[str]:
        """One line per check (ok / ERROR / warn / skip), the coverage table, then the verdict."""
        stats = self.stats
        lines = [
            f"mgll validate {self.dataset}: {stats.get('rows', 0)} rows in {stats.get('shards', 0)} shard(s), "
            f"{stats.get('rejects', 0)} rejects, schema {stats.get('schema_version', '?')}, "
            f"pipeline {stats.get('pipeline', '?')}"
        ]
        tags = {"ok": "ok", "error": "ERROR", "warn": "warn", "skip": "skip"}
        for f in self.outcomes:
            lines.append(f"  {tags[f.level]:<6} {f.check:<14} {f.message}")
        coverage = stats.get("coverage", {})
        if coverage:
            splits = sorted({s for c in coverage.values() for s in c["by_split"]}, key=split_order)
            lines.append("granularity coverage (non-null rows):")
            header = f"  {'granularity':<13} " + " ".join(f"{s:>8}" for s in splits) + f" {'all':>8} {'rows':>9}"
            lines.append(header)
            for granularity, c in coverage.items():
                cells = " ".join(f"{c['by_split'].get(s, 0.0):>8.1%}" for s in splits)
                lines.append(f"  {granularity:<13} {cells} {c['fraction']:>8.1%} {c['non_null']:>9}")
        verdict = "OK" if self.ok else "FAILED"
        lines.append(f"{verdict}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return lines


class Recorder:
    """Collects the checks' outcomes and stats into one ValidationReport."""

    def __init__(self, dataset: str, *, allow_phi: bool = False) -> None:
        self.report = ValidationReport(dataset=dataset)
        self.allow_phi = allow_phi
        self.stats = self.report.stats
        self._ok_messages: dict[str, str] = {}

    def _add(self, check: str, level: str, message: str) -> None:
        self.report.outcomes.append(CheckOutcome(check, level, message))

    def error(self, check: str, message: str) -> None:
        self._add(check, "error", message)

    def warn(self, check: str, message: str) -> None:
        self._add(check, "warn", message)

    def phi(self, check: str, message: str) -> None:
        """PHI the checks can see: an error (a dataset is meant to be shared), a warning when allowed."""
        self._add(check, "warn" if self.allow_phi else "error", message)

    def skip(self, check: str, message: str) -> None:
        self._add(check, "skip", message)

    def passed(self, check: str, message: str) -> None:
        """What the check reports when it found nothing (decided at the end: a later stage can still add a
        problem to an earlier check, e.g. an unreadable row group to "shards")."""
        self._ok_messages[check] = message

    def finish(self) -> ValidationReport:
        """The report: an "ok" line for each check that found nothing, every finding in CHECKS order."""
        reported = {f.check for f in self.report.outcomes}
        for check, message in self._ok_messages.items():
            if check not in reported:
                self._add(check, "ok", message)
        self.report.outcomes.sort(key=lambda f: CHECKS.index(f.check))
        return self.report


def examples(values: list[Any]) -> str:
    """' (e.g. a, b, c)' naming the first few values, or '' when there are none."""
    shown = ", ".join(str(v) for v in values[:EXAMPLES])
    return f" (e.g. {shown})" if values else ""


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def verb(n: int, singular: str, plural: str) -> str:
    return singular if n == 1 else plural
