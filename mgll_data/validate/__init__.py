"""Check a built dataset folder against the contract in `schemas/`, before anyone trains on or shares it.

A dataset is checked as it sits on disk, independently of how it was built: a hand-edited shard, a killed
build or another tool's writer must all be caught. Shards are streamed one row group at a time (datasets
can hold millions of images), image bytes are hashed for every row but decoded only for a deterministic
sample unless `full=True`, and every problem becomes one line naming the check, the count and a few
example image ids (pseudonymous, so safe to print), never a traceback.

The stages, in the order `validate_dataset` runs them:
- `reading`: the shards' file metadata as it is on disk (the folder itself is read through `mgll_data.dataset`);
- `structure`: layout, manifest, shard listing, file metadata and column types, before any row is read;
- `huggingface`: shards named by split and the `datasets` features in each, as the standard loader needs;
- `scan`: one streaming pass over every row group, tallied into a `Scan`;
- `content`: the row checks judged from those tallies;
- `accounting`: rejects.parquet, and the manifest's counts against the data;
- `linkage`: with `linkage=PATH`, the private linkage table against the rows and rejects;
- `report`: the check outcomes, stats and their rendering, in one fixed order of checks.
"""

from __future__ import annotations

from pathlib import Path

from mgll_data.dataset import NotADatasetError, data_files, relative_name, require_dataset
from mgll_data.validate.accounting import check_counts, check_rejects
from mgll_data.validate.content import report_scan
from mgll_data.validate.huggingface import check_huggingface
from mgll_data.validate.linkage import check_linkage
from mgll_data.validate.report import CheckOutcome, Recorder, ValidationReport
from mgll_data.validate.scan import image_problem, scan_shards
from mgll_data.validate.structure import (
    check_columns,
    check_layout_and_manifest,
    check_metadata,
    check_shards,
    declared_granularities,
)

__all__ = [
    "CheckOutcome",
    "NotADatasetError",
    "ValidationReport",
    "image_problem",
    "validate_dataset",
]


def validate_dataset(
    path: Path,
    full: bool = False,
    sample: int = 200,
    *,
    linkage: Path | None = None,
    progress: bool = False,
    allow_phi: bool = False,
) -> ValidationReport:
    """Check the dataset folder at `path`; never raises for a broken dataset, only for a path that is not one.

    `sample` images (evenly spread, so the same rows every run) are decoded, or all with `full=True`;
    every other check reads every row. PHI the privacy checks can see is an error unless `allow_phi`
    makes it a warning. With `linkage`, the private linkage table at that path must hold an entry for
    every row and reject and none for anything else. Raises NotADatasetError (one-line message) when
    `path` is not a dataset folder.
    """
    root = require_dataset(Path(path))
    out = Recorder(str(root), allow_phi=allow_phi)
    manifest = check_layout_and_manifest(root, out)
    shards = check_shards(root, manifest, out)
    contract_version, metadata = check_metadata(shards, manifest, out)
    usable = check_columns(shards, contract_version, metadata, out)
    vocabulary = metadata.get("mgll.label_vocabulary")
    if vocabulary is None and manifest and isinstance(manifest.get("label_vocabulary"), list):
        vocabulary = manifest["label_vocabulary"]
    granularities = declared_granularities(metadata, manifest, contract_version)
    version = metadata.get("mgll.schema_version") or (manifest or {}).get("schema_version")
    check_huggingface([relative_name(root, p) for p in data_files(root)], shards, granularities, version, out)
    scan = scan_shards(shards, usable, vocabulary, granularities, contract_version,
                       sample=sample, full=full, progress=progress, out=out)
    report_scan(scan, usable, out)
    rejects = check_rejects(root, out)
    check_counts(manifest, metadata, scan, rejects, out)
    if linkage is not None:
        check_linkage(linkage, scan, rejects, out)
    return out.finish()
