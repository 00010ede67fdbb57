"""A dataset card (markdown in the Hugging Face style, plus PNG charts) describing a built dataset.

The card is what a reviewer or a downstream user reads before touching the data: how it was built, how
big each split is, how prevalent each finding is (labels are NLP-derived, so prevalence is the first
sanity check), how often each text granularity is available, and what privacy measures apply. Every count
of rows, labels and texts is computed from the shards themselves (streamed, image bytes never read), not
copied from the manifest, so the card cannot disagree with the data it describes; only the build's
provenance (pipeline, hash, date, timings) comes from the manifest.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mgll_data import schema
from mgll_data.dataset import (
    REJECTS_FILE,
    NotADatasetError,
    iter_row_groups,
    ordered_splits,
    read_manifest,
    require_dataset,
    shard_paths,
)

CARD_FILE = "README.md"
CHARTS = ("label_prevalence.png", "granularity_coverage.png", "image_sizes.png")
EXAMPLE_CHARS = 160
TOP_VALUES = 10
STATUS_NAMES = {1: "positive", 0: "negative", -1: "uncertain"}
SIZE_COLUMNS = ("height", "width", "original_height", "original_width")
DISTRIBUTION_COLUMNS = ("modality", "view_position", "body_part", "source_format", "channels")


class CardError(Exception):
    """The dataset cannot be described (an unreadable shard); the message is one line."""


@dataclass
class CardStats:
    """Everything the card shows, gathered in one streaming pass over the shards' non-image columns."""

    rows: int = 0
    shards: int = 0
    granularities: list[str] = field(default_factory=list)
    vocabulary: list[str] = field(default_factory=list)
    schema_version: str | None = None
    pipeline: str | None = None
    split_rows: Counter[str] = field(default_factory=Counter)
    split_patients: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    split_studies: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    labels: dict[str, dict[str, Counter[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Counter))
    )  # finding -> split -> status -> rows
    coverage: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    train_examples: dict[str, str] = field(default_factory=dict)
    any_examples: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))  # chunks, 0 = null
    distributions: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    image_formats: Counter[str] = field(default_factory=Counter)
    rejects: Counter[tuple[str, str]] = field(default_factory=Counter)
    manifest: dict[str, Any] = field(default_factory=dict)

    def size_values(self, column: str) -> np.ndarray:
        chunks = self.sizes.get(column)
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int32)

    def example(self, granularity: str) -> str | None:
        """A text from a train row when there is one (the split users look at), else from any row."""
        return self.train_examples.get(granularity) or self.any_examples.get(granularity)

    def splits(self) -> list[str]:
        return ordered_splits(self.split_rows)


def collect(dataset: Path) -> CardStats:
    """Stream the shards (never the image bytes) and the rejects table into CardStats."""
    root = require_dataset(Path(dataset))
    stats = CardStats(manifest=read_manifest(root) or {})
    shards = shard_paths(root)
    stats.shards = len(shards)
    if shards:
        metadata = schema.read_metadata(pq.read_schema(shards[0]))
        stats.granularities = list(metadata.get("granularities") or stats.manifest.get("granularities") or [])
        stats.vocabulary = list(metadata.get("label_vocabulary") or stats.manifest.get("label_vocabulary") or [])
        stats.schema_version = metadata.get("schema_version")
        stats.pipeline = metadata.get("pipeline")
    text_columns = [schema.text_column(g) for g in stats.granularities]
    columns = ["split", "patient_id", "study_id", "labels", "image.path", *SIZE_COLUMNS, *DISTRIBUTION_COLUMNS,
               *text_columns]
    for table in iter_row_groups(root, columns):
        _add_row_group(stats, table)
    rejects_path = root / REJECTS_FILE
    if rejects_path.is_file():
        rejects = pq.ParquetFile(rejects_path).read(columns=["stage", "reason"]).to_pylist()
        stats.rejects.update((r["stage"], r["reason"]) for r in rejects)
    return stats


def _counts(table: pa.Table, keys: list[str]) -> list[dict[str, Any]]:
    """Row counts per distinct combination of `keys` (nulls included as None)."""
    return table.group_by(keys).aggregate([([], "count_all")]).to_pylist()


def _add_row_group(stats: CardStats, table: pa.Table) -> None:
    """Aggregate one row group with Arrow group-bys: Python touches distinct values, not rows."""
    n = table.num_rows
    stats.rows += n
    names = set(table.column_names)
    split = pc.fill_null(table.column("split"), "(null)") if "split" in names else pa.chunked_array(
        [pa.array(["(none)"] * n, pa.string())]
    )
    for entry in _counts(pa.table({"split": split}), ["split"]):
        stats.split_rows[entry["split"]] += entry["count_all"]
    for key, target in (("patient_id", stats.split_patients), ("study_id", stats.split_studies)):
        if key in names:
            pairs = pa.table({"split": split, key: table.column(key)}).group_by(["split", key]).aggregate([])
            for s, value in zip(pairs.column("split").to_pylist(), pairs.column(key).to_pylist()):
                target[s].add(value)
    if "labels" in names:
        labels = table.column("labels").combine_chunks()
        flat = pc.list_flatten(labels)
        if len(flat):
            per_label = pa.table(
                {
                    "split": pc.take(split, pc.list_parent_indices(labels)),
                    "name": pc.struct_field(flat, "name"),
                    "status": pc.struct_field(flat, "status"),
                }
            )
            per_label = per_label.filter(pc.is_valid(per_label.column("name")))
            for entry in _counts(per_label, ["name", "split", "status"]):
                stats.labels[entry["name"]][entry["split"]][entry["status"]] += entry["count_all"]
    text_columns = {g: schema.text_column(g) for g in stats.granularities if schema.text_column(g) in names}
    if text_columns:
        counted = pa.table({"split": split, **{g: table.column(c) for g, c in text_columns.items()}})
        aggregated = counted.group_by("split").aggregate([(g, "count") for g in text_columns]).to_pylist()
        for entry in aggregated:
            for g in text_columns:
                stats.coverage[g][entry["split"]] += entry[f"{g}_count"]
    for g, column in text_columns.items():
        if g in stats.train_examples:
            continue
        values = table.column(column)
        in_train = pc.filter(values, pc.and_(pc.equal(split, "train"), pc.is_valid(values)))
        if len(in_train):
            stats.train_examples[g] = in_train[0].as_py()
        elif g not in stats.any_examples and values.null_count < n:
            stats.any_examples[g] = pc.drop_null(values)[0].as_py()
    for column in SIZE_COLUMNS:
        if column in names:
            stats.sizes[column].append(pc.fill_null(table.column(column), 0).to_numpy())
    for column in DISTRIBUTION_COLUMNS:
        if column in names:
            for entry in _counts(table.select([column]), [column]):
                value = entry[column]
                stats.distributions[column]["(missing)" if value is None else str(value)] += entry["count_all"]
    if "image" in names:
        paths = pc.struct_field(table.column("image"), "path")
        extensions = pc.utf8_upper(pc.struct_field(pc.extract_regex(paths, r"\.(?P<ext>[^./]+)$"), "ext"))
        for entry in _counts(pa.table({"ext": extensions}), ["ext"]):
            stats.image_formats[entry["ext"] or "(none)"] += entry["count_all"]


# -- markdown ----------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ").strip()


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _n(n: int) -> str:
    return f"{n:,}"


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "–"


def _short(text: str, limit: int = EXAMPLE_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _size_category(rows: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < bound:
            return name
    return "1M<n<10M" if rows < 10_000_000 else "n>10M"


def _front_matter(stats: CardStats) -> str:
    name = stats.pipeline or (stats.manifest.get("pipeline") or {}).get("name") or "dataset"
    return "\n".join(
        [
            "---",
            f'pretty_name: "mgll {name} dataset"',
            "tags: [medical, radiology, vision-language, multi-granular, mgll]",
            "task_categories: [zero-shot-image-classification, image-to-text, image-classification]",
            f"size_categories: [{_size_category(stats.rows)}]",
            "configs:",
            "  - config_name: default",
            '    data_files: "data/*.parquet"',
            "---",
        ]
    )


def _summary(stats: CardStats) -> str:
    patients = len(set().union(*stats.split_patients.values())) if stats.split_patients else 0
    studies = len(set().union(*stats.split_studies.values())) if stats.split_studies else 0
    modalities = ", ".join(v for v, _ in stats.distributions["modality"].most_common(3)) or "unknown"
    granularities = ", ".join(f"`{g}`" for g in stats.granularities) or "none"
    name = stats.pipeline or "mgll"
    return (
        f"# Dataset card: {name}\n\n"
        f"{stats.rows:,} de-identified images from {patients:,} patients ({studies:,} studies; modality "
        f"{modalities}), one row per image. Each image comes with its de-identified report, "
        f"{len(stats.vocabulary)} finding labels (positive / negative / uncertain, from the report) and texts "
        f"at {len(stats.granularities)} granularities ({granularities}), coarse to fine, for Multi-Granular "
        "Language Learning (MGLL) pretraining of vision encoders.\n\n"
        "Written by `mgll card`: every count below is computed from the data shards (build provenance comes "
        "from `manifest.json`). Check the dataset with `mgll validate` before sharing it."
    )


def _build(stats: CardStats) -> str:
    m = stats.manifest
    pipeline = m.get("pipeline") if isinstance(m.get("pipeline"), dict) else {}
    timings = m.get("timings") if isinstance(m.get("timings"), dict) else {}
    inputs = m.get("inputs")
    rejects = sum(stats.rejects.values())
    rows = [
        ["pipeline", pipeline.get("name", stats.pipeline or "unknown")],
        ["source layout", pipeline.get("layout", "unknown")],
        ["pipeline file hash", f"`{pipeline.get('content_hash', 'unknown')}`"],
        ["mgll version", m.get("tool_version", "unknown")],
        ["schema version", stats.schema_version or m.get("schema_version", "unknown")],
        ["built", m.get("created", "unknown")],
        ["engine (workers)", f"{m.get('engine', 'unknown')} ({m.get('workers', '?')})"],
        ["inputs found", inputs if inputs is not None else "unknown"],
        ["rows (images)", f"{stats.rows:,}"],
        ["rejected inputs", f"{rejects:,} ({_pct(rejects, inputs)})" if isinstance(inputs, int) else rejects],
        ["data shards", stats.shards],
    ]
    if "seconds" in timings:
        rows.append(["build time", f"{timings['seconds']:.1f} s ({timings.get('images_per_second', 0):.1f} images/s)"])
    return "## How it was built\n\n" + _table(["", "value"], rows)


def _splits(stats: CardStats) -> str:
    rows = [
        [s, _n(stats.split_rows[s]), _n(len(stats.split_patients[s])), _n(len(stats.split_studies[s])),
         _pct(stats.split_rows[s], stats.rows)]
        for s in stats.splits()
    ]
    rows.append(["all", _n(stats.rows), _n(len(set().union(*stats.split_patients.values()))),
                 _n(len(set().union(*stats.split_studies.values()))), _pct(stats.rows, stats.rows)])
    return (
        "## Splits\n\nAssigned per patient (no patient is in two splits), deterministically.\n\n"
        + _table(["split", "images", "patients", "studies", "share"], rows)
    )


def label_counts(stats: CardStats, finding: str, split: str | None) -> dict[str, int]:
    """positive / negative / uncertain / unmentioned row counts of one finding in one split (None: all)."""
    splits = stats.splits() if split is None else [split]
    counts = Counter()
    for s in splits:
        counts.update(stats.labels[finding][s])
    total = sum(stats.split_rows[s] for s in splits)
    out = {name: counts[status] for status, name in STATUS_NAMES.items()}
    out["unmentioned"] = total - sum(out.values())
    return out


def _findings(stats: CardStats) -> list[str]:
    return list(stats.vocabulary) + sorted(set(stats.labels) - set(stats.vocabulary))


def _labels(stats: CardStats, charts: list[str]) -> str:
    rows = []
    for finding in _findings(stats):
        for split in [*stats.splits(), None]:
            c = label_counts(stats, finding, split)
            total = stats.rows if split is None else stats.split_rows[split]
            rows.append([finding, split or "all", _n(c["positive"]), _n(c["negative"]), _n(c["uncertain"]),
                         _n(c["unmentioned"]), _pct(c["positive"], total)])
    text = (
        "## Labels\n\nExtracted from the report text by rule-based mention detection with negation and "
        "uncertainty (not read by a radiologist). Status 1 = positive, 0 = negative (explicitly ruled out), "
        "-1 = uncertain (hedged); a finding the report does not mention is absent from the row.\n\n"
        + _table(["finding", "split", "positive", "negative", "uncertain", "unmentioned", "% positive"], rows)
    )
    if "label_prevalence.png" in charts:
        text += "\n\n![Label prevalence](label_prevalence.png)"
    return text


def _granularities(stats: CardStats, charts: list[str]) -> str:
    descriptions = schema.contract()["granularities"]
    splits = stats.splits()
    rows = []
    for g in stats.granularities:
        cells = [f"{_n(stats.coverage[g][s])} ({_pct(stats.coverage[g][s], stats.split_rows[s])})" for s in splits]
        total = sum(stats.coverage[g].values())
        rows.append([g, f"`{schema.text_column(g)}`", *cells, f"{_n(total)} ({_pct(total, stats.rows)})"])
    examples = [[g, _short(stats.example(g)) if stats.example(g) else "(none)"] for g in stats.granularities]
    meanings = [[g, descriptions.get(g, "")] for g in stats.granularities]
    text = (
        "## Text granularities\n\nOne text column per granularity, coarse to fine; null where the report or "
        "header does not support it. Coverage (non-null rows):\n\n"
        + _table(["granularity", "column", *splits, "all"], rows)
    )
    if "granularity_coverage.png" in charts:
        text += "\n\n![Granularity coverage](granularity_coverage.png)"
    text += "\n\n### What each granularity holds\n\n" + _table(["granularity", "meaning"], meanings)
    text += "\n\n### Examples (from a train row)\n\n" + _table(["granularity", "example"], examples)
    return text


def _images(stats: CardStats, charts: list[str]) -> str:
    rows = []
    for column in SIZE_COLUMNS:
        values = stats.size_values(column)
        values = values[values > 0]
        if len(values):
            rows.append([column, _n(int(values.min())), _n(int(np.median(values))), _n(int(values.max()))])
    formats = ", ".join(f"{k} ({v:,} images)" for k, v in stats.image_formats.most_common()) or "unknown"
    text = "## Images\n\nStored images are resized (long side) and encoded as " + formats + ".\n\n"
    text += _table(["pixels", "min", "median", "max"], rows) if rows else "No images."
    if "image_sizes.png" in charts:
        text += "\n\n![Image sizes](image_sizes.png)"
    for column in DISTRIBUTION_COLUMNS:
        counts = stats.distributions.get(column)
        if not counts:
            continue
        top = counts.most_common(TOP_VALUES)
        rest = sum(counts.values()) - sum(n for _, n in top)
        table_rows = [[value, _n(n), _pct(n, stats.rows)] for value, n in top]
        if rest:
            table_rows.append(["(other)", _n(rest), _pct(rest, stats.rows)])
        text += f"\n\n### {column.replace('_', ' ')}\n\n" + _table([column, "images", "share"], table_rows)
    return text


def _rejects(stats: CardStats) -> str:
    total = sum(stats.rejects.values())
    if not total:
        return "## Rejected inputs\n\nNo input was rejected."
    inputs = stats.manifest.get("inputs")
    rows = [[stage, reason, _n(n), _pct(n, inputs) if isinstance(inputs, int) else "–"]
            for (stage, reason), n in stats.rejects.most_common()]
    return (
        "## Rejected inputs\n\nInputs that could not become a row are listed in `rejects.parquet` "
        "(keyed source hash, stage, reason, a one-line error); rows + rejects = inputs.\n\n"
        + _table(["stage", "reason", "inputs", "share of inputs"], rows)
    )


def _schema(stats: CardStats) -> str:
    docs = {c["name"]: c.get("doc", "") for c in schema.contract()["columns"]}
    descriptions = schema.contract()["granularities"]
    rows = []
    for column in schema.columns([g for g in stats.granularities if g in descriptions]):
        meaning = docs.get(column.name) or descriptions.get(column.name.removeprefix(schema.text_column("")), "")
        rows.append([f"`{column.name}`", f"`{column.type}`", "yes" if column.nullable else "no", meaning])
    return (
        f"## Schema\n\nSchema version {stats.schema_version or 'unknown'} (`schemas/dataset-v"
        f"{(stats.schema_version or schema.CURRENT_VERSION).split('.')[0]}.json`). File metadata: "
        "`mgll.schema_version`, `mgll.label_vocabulary`, `mgll.granularities`, `mgll.pipeline`.\n\n"
        + _table(["column", "type", "nullable", "meaning"], rows)
    )


def _privacy(root: Path) -> str:
    text = (
        "## Privacy\n\n"
        "- `patient_id` and `study_id` are keyed pseudonyms (HMAC-SHA256 with a secret salt kept outside the "
        "dataset): stable across rebuilds with the same salt, not reversible or linkable without it.\n"
        "- `image_id` is a keyed hash of the image content and its place in the export; no file path is stored.\n"
        "- Only allow-listed DICOM header fields are kept (modality, view position, body part, manufacturer "
        "model, pixel spacing, scrubbed study / series descriptions); names, dates, UIDs, institutions and every "
        "other header field are dropped.\n"
        "- Report text is scrubbed: names, dates, phone numbers, record / accession numbers, addresses, e-mails "
        "and ages over 89 become [NAME] [DATE] [PHONE] [ID] [ADDRESS] [EMAIL] [AGE]; identifiers from the "
        "image's own header are removed from its report too.\n"
        "- The linkage table (image id ↔ source path and original ids) is written outside this folder and must "
        "never be shared with it.\n"
        "- Residual risk: text burned into the pixels (annotations, scanned forms) and unusual identifiers in "
        "free text can escape automatic scrubbing. Review a sample of images and reports before release; "
        "`mgll validate` runs privacy smoke checks on every string column."
    )
    leaked = sorted(p.relative_to(root).as_posix() for p in root.rglob("*linkage*") if p.is_file())
    if leaked:
        text += ("\n\n**Warning:** this folder holds files that look like a private linkage table: "
                 + ", ".join(f"`{p}`" for p in leaked) + ". Remove them before sharing.")
    return text


def _usage(stats: CardStats) -> str:
    column = schema.text_column(stats.granularities[-1]) if stats.granularities else "report_text"
    return (
        "## Intended use and limitations\n\n"
        "Pretraining and evaluating medical vision-language models (e.g. `mgll pretrain`). Labels are "
        "automatically extracted and noisy; they are not a diagnostic reference. Prevalence reflects the source "
        "population, not the general one. Not for clinical decision making.\n\n"
        "## Loading\n\n"
        "```python\n"
        "import pandas as pd\n"
        f'rows = pd.read_parquet("data", columns=["image_id", "split", "labels", "{column}"])\n'
        "# or: datasets.load_dataset(\"parquet\", data_files=\"data/*.parquet\")  (image = {bytes, path})\n"
        "```\n\n"
        "To publish on the Hugging Face Hub, put this README.md and its charts at the dataset's root (the "
        "front matter's `data_files` is relative to it)."
    )


def render_markdown(stats: CardStats, root: Path, charts: list[str]) -> str:
    sections = [
        _front_matter(stats),
        _summary(stats),
        _build(stats),
        _splits(stats),
        _labels(stats, charts),
        _granularities(stats, charts),
        _images(stats, charts),
        _rejects(stats),
        _schema(stats),
        _privacy(root),
        _usage(stats),
    ]
    return "\n\n".join(sections) + "\n"


# -- charts ------------------------------------------------------------------------------------------------


def _long_sides(stats: CardStats, height: str, width: str) -> np.ndarray:
    heights, widths = stats.size_values(height), stats.size_values(width)
    if len(heights) != len(widths):  # one of the columns is missing from some shard
        return np.zeros(0, dtype=np.int32)
    sides = np.maximum(heights, widths)
    return sides[sides > 0]


def write_charts(stats: CardStats, out: Path) -> list[str]:
    """The PNG charts that have something to show, written into `out`; returns their file names."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot, no display needed

    written = []
    findings = _findings(stats)
    if stats.rows and findings:
        counts = [label_counts(stats, f, None) for f in findings]
        fig = Figure(figsize=(7, 1.2 + 0.32 * len(findings)), layout="constrained")
        ax = fig.subplots()
        left = [0.0] * len(findings)
        for name, colour in (("positive", "#c0392b"), ("uncertain", "#f39c12"), ("negative", "#2e86c1")):
            widths = [100 * c[name] / stats.rows for c in counts]
            ax.barh(findings, widths, left=left, color=colour, label=name)
            left = [a + b for a, b in zip(left, widths)]
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of images (the rest: not mentioned)")
        ax.set_title(f"Label prevalence ({stats.rows:,} images)")
        ax.legend(loc="lower right", fontsize="small")
        fig.savefig(out / "label_prevalence.png", dpi=100)
        written.append("label_prevalence.png")
    if stats.rows and stats.granularities:
        splits = stats.splits()
        fig = Figure(figsize=(7, 3.5), layout="constrained")
        ax = fig.subplots()
        width = 0.8 / max(len(splits), 1)
        for k, split in enumerate(splits):
            xs = [i + k * width for i in range(len(stats.granularities))]
            values = [100 * stats.coverage[g][split] / stats.split_rows[split] for g in stats.granularities]
            ax.bar(xs, values, width=width, label=split)
        ax.set_xticks([i + width * (len(splits) - 1) / 2 for i in range(len(stats.granularities))])
        ax.set_xticklabels(stats.granularities, rotation=30, ha="right")
        ax.set_ylim(0, 105)
        ax.set_ylabel("% of images with this text")
        ax.set_title("Granularity coverage")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.savefig(out / "granularity_coverage.png", dpi=100)
        written.append("granularity_coverage.png")
    panels = [
        (name, sides)
        for name, sides in (
            ("original", _long_sides(stats, "original_height", "original_width")),
            ("stored", _long_sides(stats, "height", "width")),
        )
        if len(sides)
    ]
    if panels:
        fig = Figure(figsize=(7, 3), layout="constrained")
        for ax, (name, values) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
            low, high = float(values.min()), float(values.max())
            pad = max(1.0, 0.05 * high) if low == high else 0
            ax.hist(values, bins=20, range=(low - pad, high + pad), color="#5d6d7e")
            ax.ticklabel_format(axis="x", useOffset=False, style="plain")
            ax.set_xlabel(f"{name} long side (pixels)")
            ax.set_ylabel("images")
        fig.suptitle("Image sizes")
        fig.savefig(out / "image_sizes.png", dpi=100)
        written.append("image_sizes.png")
    return written


def write_card(dataset: Path, out: Path | None = None) -> Path:
    """Write `README.md` and the charts into `out` (default `<dataset>/card/`); returns the README's path.

    Raises NotADatasetError for a path that is no dataset, CardError for one whose shards cannot be read.
    """
    root = require_dataset(Path(dataset))
    try:
        stats = collect(root)
    except (OSError, pa.ArrowException, KeyError, TypeError) as exc:
        raise CardError(f"cannot read {root} ({type(exc).__name__}); run `mgll validate {root}`") from None
    target = Path(out) if out is not None else root / "card"
    target.mkdir(parents=True, exist_ok=True)
    for stale in CHARTS:
        (target / stale).unlink(missing_ok=True)
    charts = write_charts(stats, target)
    card = target / CARD_FILE
    card.write_text(render_markdown(stats, root, charts), encoding="utf-8")
    return card


__all__ = ["CardError", "CardStats", "NotADatasetError", "collect", "label_counts", "write_card"]
