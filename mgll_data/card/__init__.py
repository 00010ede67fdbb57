"""A dataset card: `README.md` at the dataset's root (the Hugging Face Hub's convention) with YAML front
matter (licence, the splits' data files), plus PNG charts in a folder beside it that loaders ignore.

The card is what a reviewer or a downstream user reads before touching the data: how it was built, how
big each split is, how prevalent each finding is (labels are NLP-derived, so prevalence is the first
sanity check), how often each text granularity is available, and what privacy measures apply. The stages:
`statistics` (one streaming pass over the shards), `markdown` (the text), `charts` (the PNGs).

A README.md that `mgll card` did not write (no `dataset.CARD_MARKER`) is never overwritten: the card is
refused instead, and `--out` can put it elsewhere.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pyarrow as pa

from mgll_data import dataset
from mgll_data.card.charts import write_charts
from mgll_data.card.markdown import render_markdown
from mgll_data.card.statistics import CardStats, collect, label_counts
from mgll_data.dataset import NotADatasetError
from mgll_data.output_folder import OutputFolderError, exclusive_lock

__all__ = ["CardError", "CardStats", "NotADatasetError", "collect", "label_counts", "summary_line", "write_card",
           "written_charts"]


class CardError(Exception):
    """The card cannot be written (unreadable shards, a README.md someone else wrote, a build running);
    the message is one line."""


def write_card(path: Path, out: Path | None = None) -> Path:
    """Write `README.md` into `out` (default: the dataset's root) and the charts into its charts folder;
    returns the README's path. Into the dataset's root, it holds the build lock meanwhile, so a card is
    never written from a half-built dataset.

    Raises NotADatasetError for a path that is no dataset, CardError as above.
    """
    root = dataset.require_dataset(Path(path))
    try:
        stats = collect(root)
    except (OSError, pa.ArrowException, KeyError, TypeError) as exc:
        raise CardError(f"cannot read {root} ({type(exc).__name__}); run `mgll validate {root}`") from None
    target = Path(out) if out is not None else root
    readme = target / dataset.CARD_FILE
    if readme.exists() and not dataset.is_card(readme):
        raise CardError(f"{readme} was not written by mgll card; move it away, or write the card elsewhere "
                        "with --out")
    target.mkdir(parents=True, exist_ok=True)
    try:
        with exclusive_lock(root / dataset.LOCK_FILE, str(root)) if target == root else contextlib.nullcontext():
            _write(stats, root, target, readme)
    except OutputFolderError as exc:
        raise CardError(str(exc)) from None
    return readme


def written_charts(readme: Path) -> list[str]:
    """The file names of the charts beside a card (a chart is left out when its data has nothing to draw)."""
    charts = Path(readme).parent / dataset.CHARTS_DIR
    return [name for name in dataset.CHARTS.values() if (charts / name).is_file()]


def summary_line(readme: Path) -> str:
    """What `mgll card` prints once the card is written (and `mgll demo run` after its card step)."""
    charts = written_charts(readme)
    return f"wrote {readme} and {len(charts)} chart(s): {', '.join(charts) or 'none'}"


def _write(stats: CardStats, root: Path, target: Path, readme: Path) -> None:
    charts_dir = target / dataset.CHARTS_DIR
    charts_dir.mkdir(exist_ok=True)
    for stale in dataset.CHARTS.values():
        (charts_dir / stale).unlink(missing_ok=True)
    charts = write_charts(stats, charts_dir)
    if not charts:
        with contextlib.suppress(OSError):  # someone else's file in it: leave the folder
            charts_dir.rmdir()
    tmp = dataset.temporary_path(readme)
    tmp.write_text(render_markdown(stats, root, charts), encoding="utf-8")
    os.replace(tmp, readme)
