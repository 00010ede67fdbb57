"""The dataset card's markdown: Hugging Face front matter (licence, splits), then one section per aspect.

Every number comes from `CardStats`; the charts are linked from the charts folder beside the card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mgll_data import dataset, schema
from mgll_data.card.statistics import (
    DISTRIBUTION_COLUMNS,
    SIZE_COLUMNS,
    CardStats,
    findings,
    label_counts,
)

EXAMPLE_CHARS = 160
TOP_VALUES = 10


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


def _chart(charts: list[str], kind: str, title: str) -> str:
    """The markdown image of a chart that was written (charts live in a folder beside the card)."""
    name = dataset.CHARTS[kind]
    return f"\n\n![{title}]({dataset.CHARTS_DIR}/{name})" if name in charts else ""


def _size_category(rows: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < bound:
            return name
    return "1M<n<10M" if rows < 10_000_000 else "n>10M"


def _front_matter(stats: CardStats) -> str:
    """The Hub's YAML header: licence (from the build's --license), and a `configs` entry naming each
    split's shards, so `datasets.load_dataset` reads exactly those (never the charts or the rejects)."""
    name = stats.pipeline or (stats.manifest.get("pipeline") or {}).get("name") or "dataset"
    license_ = str(stats.manifest.get("license") or dataset.DEFAULT_LICENSE)
    lines = [
        "---",
        f'pretty_name: "mgll {name} dataset"',
        f"license: {license_}",
        "tags: [medical, radiology, vision-language, multi-granular, mgll]",
        "task_categories: [zero-shot-image-classification, image-to-text, image-classification]",
        f"size_categories: [{_size_category(stats.rows)}]",
    ]
    if stats.data_files:
        lines += ["configs:", "  - config_name: default", "    data_files:"]
        for split, pattern in stats.data_files.items():
            lines += [f"      - split: {split}", f"        path: {pattern}"]
    return "\n".join([*lines, "---", dataset.CARD_MARKER])


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
        f"from `{dataset.MANIFEST_FILE}`). Check the dataset with `mgll validate` before sharing it."
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
        ["licence", m.get("license", dataset.DEFAULT_LICENSE)],
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
        "## Splits\n\nAssigned per patient (no patient is in two splits), deterministically. Each split has its own "
        f"shards in `{dataset.DATA_DIR}/`, named by the Hugging Face split (`val` rows are the `"
        f"{dataset.hf_split('val')}` split); the `split` column says the same.\n\n"
        + _table(["split", "images", "patients", "studies", "share"], rows)
    )


def _labels(stats: CardStats, charts: list[str]) -> str:
    rows = []
    for finding in findings(stats):
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
    text += _chart(charts, "labels", "Label prevalence")
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
    text += _chart(charts, "coverage", "Granularity coverage")
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
    text += _chart(charts, "sizes", "Image sizes")
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
        f"## Rejected inputs\n\nInputs that could not become a row are listed in `{dataset.REJECTS_FILE}` "
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
        "`mgll.schema_version`, `mgll.label_vocabulary`, `mgll.granularities`, `mgll.pipeline`, and "
        f"`{schema.META_HUGGINGFACE.decode()}` (the `datasets` features: `image` is an `Image`).\n\n"
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
    first = next(iter(stats.data_files.values()), f"{dataset.DATA_DIR}/*.parquet")
    return (
        "## Intended use and limitations\n\n"
        "Pretraining and evaluating medical vision-language models (e.g. `mgll pretrain`). Labels are "
        "automatically extracted and noisy; they are not a diagnostic reference. Prevalence reflects the source "
        "population, not the general one. Not for clinical decision making.\n\n"
        "## Loading\n\n"
        "```python\n"
        "import datasets\n"
        'splits = datasets.load_dataset("path/to/this/folder")  # train / validation / test; image decodes to PIL\n'
        "import pandas as pd\n"
        f'rows = pd.read_parquet("{dataset.DATA_DIR}", columns=["image_id", "split", "labels", "{column}"])\n'
        "```\n\n"
        f"The front matter's `data_files` (e.g. `{first}`) are relative to the dataset's root: publish this "
        f"{dataset.CARD_FILE} and its `{dataset.CHARTS_DIR}/` there, as `mgll card` writes them by default."
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
