"""The dataset card's PNG charts: label prevalence, granularity coverage, image sizes.

Each chart is drawn only when there is something to show. Figures are bare `Figure`s rendered by Agg, so
no display and no pyplot state are needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from mgll_data import dataset
from mgll_data.card.statistics import CardStats, findings, label_counts

DPI = 100
STATUS_COLOURS = (("positive", "#c0392b"), ("uncertain", "#f39c12"), ("negative", "#2e86c1"))
ORIGINAL_COLOUR, STORED_COLOUR = "#5d6d7e", "#c0392b"
SIZE_BINS = 30


def write_charts(stats: CardStats, out: Path) -> list[str]:
    """The charts that have something to show, written into `out`; returns their file names."""
    written = []
    for kind, draw in (("labels", _label_prevalence), ("coverage", _granularity_coverage), ("sizes", _image_sizes)):
        figure = draw(stats)
        if figure is not None:
            figure.savefig(out / dataset.CHARTS[kind], dpi=DPI)
            written.append(dataset.CHARTS[kind])
    return written


def _label_prevalence(stats: CardStats) -> Figure | None:
    names = findings(stats)
    if not stats.rows or not names:
        return None
    counts = [label_counts(stats, f, None) for f in names]
    fig = Figure(figsize=(7, 1.2 + 0.32 * len(names)), layout="constrained")
    ax = fig.subplots()
    left = [0.0] * len(names)
    for status, colour in STATUS_COLOURS:
        widths = [100 * c[status] / stats.rows for c in counts]
        ax.barh(names, widths, left=left, color=colour, label=status)
        left = [a + b for a, b in zip(left, widths)]
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of images (the rest: not mentioned)")
    ax.set_title(f"Label prevalence ({stats.rows:,} images)")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def _granularity_coverage(stats: CardStats) -> Figure | None:
    if not stats.rows or not stats.granularities:
        return None
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
    return fig


def long_sides(stats: CardStats, height: str, width: str) -> np.ndarray:
    """The long side of every image with both sizes known."""
    heights, widths = stats.size_values(height), stats.size_values(width)
    if len(heights) != len(widths):  # one of the columns is missing from some shard
        return np.zeros(0, dtype=np.int32)
    sides = np.maximum(heights, widths)
    return sides[sides > 0]


def _image_sizes(stats: CardStats) -> Figure | None:
    """Original and stored long sides on one logarithmic axis: originals span 100 px to several
    thousand (a linear axis squeezes the small ones into one bar), and stored sizes are usually one value
    (the pipeline's resize target), drawn as a line rather than a one-bar panel of its own. Counts are on a
    log axis too, so a few images far from the bulk still show as bars."""
    original = long_sides(stats, "original_height", "original_width")
    stored = long_sides(stats, "height", "width")
    if not len(original) and not len(stored):
        return None
    both = np.concatenate([original, stored]).astype(np.float64)
    low, high = both.min() / 1.25, both.max() * 1.25
    bins = np.geomspace(low, high, SIZE_BINS)
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    ax = fig.subplots()
    if len(original):
        ax.hist(original, bins=bins, color=ORIGINAL_COLOUR, label=f"original ({len(original):,} images)")
    stored_values = np.unique(stored)
    if len(stored_values) == 1:
        ax.axvline(stored_values[0], color=STORED_COLOUR, linewidth=2,
                   label=f"stored: {int(stored_values[0]):,} px (all {len(stored):,} images)")
    elif len(stored):
        ax.hist(stored, bins=bins, histtype="step", linewidth=2, color=STORED_COLOUR,
                label=f"stored ({len(stored):,} images)")
    ax.set_xscale("log")
    ticks = [t for t in (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384) if low <= t <= high]
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlim(low, high)
    ax.set_xlabel("long side (pixels, log scale)")
    ax.set_yscale("log")  # a handful of large originals next to hundreds of small ones stays visible
    ax.set_ylim(bottom=0.7)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    ax.set_ylabel("images (log scale)")
    ax.set_title("Image sizes")
    ax.legend(fontsize="small", loc="upper left")
    return fig
