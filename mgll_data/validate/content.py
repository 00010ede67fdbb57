"""The row checks: what the streamed `Scan` tallies mean, as check outcomes and stats.

Nulls and allowed values, label statuses and names, split leakage, image ids, decoding and duplicate
content, granularity coverage and the privacy smoke checks; each reads the tallies only, never the shards.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from mgll_data import schema
from mgll_data.dataset import split_order
from mgll_data.validate.report import Recorder, examples, plural, verb
from mgll_data.validate.scan import CHANNELS_ALLOWED, Scan
from mgll_data.validate.structure import UsableColumns


def report_scan(state: Scan, usable: UsableColumns, out: Recorder) -> None:
    """Every row check's outcomes, judged against the columns usable in at least one shard."""
    present = set().union(*usable.values()) if usable else set()
    _report_nulls_and_values(state, present, out)
    _report_labels(state, present, out)
    _report_splits(state, present, out)
    _report_images(state, present, out)
    _report_texts(state, present, out)
    _report_privacy(state, out)


def _report_nulls_and_values(state: Scan, present: set[str], out: Recorder) -> None:
    """Nulls, empty ids and out-of-range values in the required columns."""
    for column, n in sorted(state.nulls.items()):
        out.error("nulls", f"{plural(n, 'null')} in required column '{column}'")
    for column, n in sorted(state.empty_ids.items()):
        out.error("nulls", f"{plural(n, 'empty string')} in required column '{column}'")
    if state.rows_on_disk and not present:
        out.skip("nulls", "no usable columns")
    out.passed("nulls", "required columns hold no nulls")

    for column, (n, values) in sorted(state.disallowed.items()):
        out.error("values", f"{plural(n, 'row')} with '{column}' outside the allowed values{examples(values)}")
    for column, n in sorted(state.non_positive.items()):
        out.error("values", f"{plural(n, 'row')} with '{column}' not a positive number")
    if state.bad_channels:
        out.error("values", f"{plural(state.bad_channels, 'row')} with 'channels' not in {CHANNELS_ALLOWED}")
    if state.empty_reports:
        out.warn("values", f"{plural(state.empty_reports, 'row')} with an empty report_text")
    out.passed("values", "split, sizes and channels within their allowed values")


def _report_labels(state: Scan, present: set[str], out: Recorder) -> None:
    """Label statuses, names outside the vocabulary, a finding listed twice."""
    if "labels" not in present and state.rows_on_disk:
        out.skip("labels", "labels column unusable (see columns)")
    if state.bad_status:
        found = ", ".join(str(v) for v in sorted(state.bad_status_values))
        out.error("labels", f"{plural(state.bad_status, 'label')} with a status outside {{1, 0, -1}} "
                            f"(found {found})")
    if state.unknown_names:
        names = [n for n, _ in state.unknown_names.most_common()]
        n = sum(state.unknown_names.values())
        out.error("labels", f"{plural(n, 'label')} {verb(n, 'names a finding', 'name findings')} outside "
                            f"mgll.label_vocabulary{examples(names)}")
    if state.repeated_labels:
        out.error("labels", f"{plural(state.repeated_labels, 'row')} "
                            f"{verb(state.repeated_labels, 'lists', 'list')} the same finding twice"
                            f"{examples(state.repeated_label_ids)}")
    out.passed("labels", f"statuses in {{1, 0, -1}}, names within the {len(state.vocabulary)}-name vocabulary")


def _report_splits(state: Scan, present: set[str], out: Recorder) -> None:
    """Split leakage (a patient in two splits) and the per-split counts."""
    leaked = sorted(p for p, splits in state.patient_splits.items() if len(splits) > 1)
    if leaked:
        placements = [f"{p} in {'+'.join(sorted(state.patient_splits[p], key=split_order))}" for p in leaked]
        out.error("splits", f"{plural(len(leaked), 'patient')} "
                            f"{verb(len(leaked), 'appears', 'appear')} in more than one split"
                            f"{examples(placements)}")
    if state.misplaced:
        n = sum(sum(c.values()) for c in state.misplaced.values())
        where = [f"{shard} holds {plural(sum(c.values()), 'row')} of {'+'.join(sorted(c, key=split_order))}"
                 for shard, c in sorted(state.misplaced.items())]
        out.error("splits", f"{plural(n, 'row')} {verb(n, 'sits', 'sit')} in another split's shard: loaders that "
                            f"take the split from the file name put {verb(n, 'it', 'them')} in the wrong one"
                            f"{examples(where)}")
    out.stats["splits"] = dict(sorted(state.split_rows.items(), key=lambda kv: split_order(kv[0])))
    patients_by_split: Counter[str] = Counter()
    for splits in state.patient_splits.values():
        patients_by_split.update(splits)
    out.stats["patients"] = dict(sorted(patients_by_split.items(), key=lambda kv: split_order(kv[0])))
    if {"patient_id", "split"} - present and state.rows_on_disk:
        out.skip("splits", "patient_id or split column unusable")
    out.passed("splits", f"{len(state.patient_splits)} patients, each in one split")


def _report_images(state: Scan, present: set[str], out: Recorder) -> None:
    """Image ids, decoding of the sampled images and duplicate content."""
    if state.duplicate_ids:
        out.error("image_ids", f"{plural(sum(state.duplicate_ids.values()), 'duplicate image_id')}"
                               f"{examples(list(state.duplicate_ids))}")
    if state.path_mismatch:
        out.error("image_ids", f"{plural(state.path_mismatch, 'row')} whose image.path is not "
                               f"'<image_id>.png|.jpg'{examples(state.path_mismatch_ids)}")
    out.passed("image_ids", f"{len(state.image_ids)} unique image ids")

    checked = state.decoded
    out.stats["images_checked"] = checked
    out.stats["images_failed"] = state.image_failure_count
    scope = "all" if checked == state.rows_scanned else "sampled"
    if state.image_failure_count:
        out.error("images", f"{state.image_failure_count} of {checked} {scope} images failed: "
                            + "; ".join(state.image_failures))
    if {"image", "height", "width", "channels"} - present and state.rows_on_disk:
        out.skip("images", "image, height, width or channels column unusable (see columns)")
    elif not state.decode_at and state.rows_on_disk:
        out.skip("images", "no image decoded (--sample 0)")
    out.passed("images", f"{scope} {checked} image(s) decode to their stored size and channels"
               if scope == "all" else f"{checked} sampled images decode to their stored size and channels")

    n = state.duplicate_content_count
    if n:
        pairs = [f"{a} = {b}" for a, b in state.duplicate_content]
        out.warn("duplicates", f"{plural(n, 'image')} {verb(n, 'shares its', 'share their')} bytes with an "
                               f"earlier row{examples(pairs)}")
    out.stats["duplicate_content"] = n
    out.passed("duplicates", "no two rows hold the same image bytes")


def _report_texts(state: Scan, present: set[str], out: Recorder) -> None:
    """Granularity coverage and empty texts."""
    coverage: dict[str, Any] = {}
    for granularity in state.granularities:
        column = schema.text_column(granularity, state.version)
        if column not in present:
            continue
        non_null = sum(state.text_counts[s][column] for s in state.split_rows)
        coverage[granularity] = {
            "column": column,
            "non_null": non_null,
            "fraction": non_null / state.rows_scanned if state.rows_scanned else 0.0,
            "by_split": {
                s: state.text_counts[s][column] / n for s, n in sorted(state.split_rows.items()) if n
            },
        }
        if state.empty_texts[column]:
            out.error("granularities", f"{plural(state.empty_texts[column], 'empty string')} in '{column}' "
                                       "(use null for an unavailable text)")
        if state.rows_scanned and non_null == 0:
            out.warn("granularities", f"'{column}' is null in every row")
    out.stats["coverage"] = coverage
    out.passed("granularities", f"{len(coverage)} text columns, no empty strings")


def _report_privacy(state: Scan, out: Recorder) -> None:
    """The privacy smoke checks over string columns."""
    for (column, what), n in sorted(state.privacy.items()):
        out.phi("privacy", f"{plural(n, 'value')} in '{column}' {verb(n, 'looks', 'look')} like {what}")
    for column, (n, example) in sorted(state.not_pseudonyms.items()):
        out.phi("privacy", f"{plural(n, 'value')} in '{column}' {verb(n, 'does', 'do')} not look like "
                            f"keyed pseudonyms (<kind>-<hex>), e.g. {example!r}")
    out.passed("privacy", "no UID-, date- or name-like strings; ids look like keyed pseudonyms")
