"""Linkage: every row and reject of the dataset has its entry in the private linkage table, and the table
holds nothing else.

The table lives outside the dataset (it is never shared with it), so it is checked only when `--linkage
PATH` names it. A row without an entry can never be traced back to its source, which a resume cannot
repair (it skips the row's input), and an entry without a row means the table belongs to another build:
both are errors, since this is the table a site keeps to answer "which image was that?".
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mgll_data import dataset
from mgll_data.validate.report import Recorder, examples, plural, verb
from mgll_data.validate.scan import Scan


def check_linkage(path: Path, scan: Scan, rejects: list[dict[str, Any]] | None, out: Recorder) -> None:
    """The linkage table at `path` against the rows scanned and the rejects read."""
    path = Path(path)
    entries = _read(path, out)
    journal = dataset.linkage_journal_path(path)
    if journal.exists():
        out.warn("linkage", f"{journal.name} exists: a build of this dataset is running or was killed; its "
                            "entries reach the table when the build finishes")
    if entries is None:
        return
    if path.stat().st_mode & 0o077:
        out.warn("linkage", f"{path.name} is readable by other users (mode {path.stat().st_mode & 0o777:o}); "
                            "it identifies patients: chmod 600 it")
    repeated = sorted(k for k, n in Counter(e["source_key"] for e in entries).items() if n > 1)
    if repeated:
        out.error("linkage", f"{plural(len(repeated), 'input')} {verb(len(repeated), 'has', 'have')} more "
                             f"than one linkage entry{examples(repeated)}")
    linked_rows = {e["image_id"] for e in entries if e["kind"] == "row"}
    linked_rejects = {e["source_key"] for e in entries if e["kind"] == "reject"}
    unlinked = sorted(scan.image_ids - linked_rows)
    if unlinked:
        out.error("linkage", f"{plural(len(unlinked), 'row')} {verb(len(unlinked), 'has', 'have')} no entry "
                             f"in {path.name}: {verb(len(unlinked), 'it', 'they')} cannot be traced to "
                             f"{verb(len(unlinked), 'its source', 'their sources')}{examples(unlinked)}")
    reject_keys = {r["source_key"] for r in rejects or []}
    unlinked_rejects = sorted(reject_keys - linked_rejects)
    if unlinked_rejects:
        out.error("linkage", f"{plural(len(unlinked_rejects), 'reject')} without an entry in {path.name}"
                             f"{examples(unlinked_rejects)}")
    foreign = sorted(linked_rows - scan.image_ids)
    if rejects is not None:
        foreign += sorted(linked_rejects - reject_keys)
    if foreign:
        out.error("linkage", f"{path.name} holds {_entries(len(foreign))} for inputs that are not in this "
                             f"dataset (another build's table?){examples(foreign)}")
    out.passed("linkage", f"every row and reject has its entry in {path.name} ({_entries(len(entries))}), "
                          "none for inputs outside the dataset")


def _entries(n: int) -> str:
    return f"{n} {verb(n, 'entry', 'entries')}"


def _read(path: Path, out: Recorder) -> list[dict[str, Any]] | None:
    """The table's entries, or None (an error recorded) when it is missing or not a linkage table."""
    if not path.is_file():
        out.error("linkage", f"linkage table {path} does not exist")
        return None
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException):
        out.error("linkage", f"{path.name} is not a readable Parquet file")
        return None
    missing = [name for name in ("kind", "source_key", "image_id") if name not in table.column_names]
    if missing:
        out.error("linkage", f"{path.name} is not an mgll linkage table (no column {', '.join(missing)})")
        return None
    return table.select(["kind", "source_key", "image_id"]).to_pylist()
