"""`mgll card`: thin click wrapper over `mgll_data.card.write_card`."""

from __future__ import annotations

from pathlib import Path

import click

from mgll_data.card import CardError, NotADatasetError, summary_line, write_card
from mgll_data.commands.options import describe_os_error
from mgll_data.dataset import CARD_FILE, CHARTS_DIR


@click.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Folder for {CARD_FILE} and its {CHARTS_DIR}/ (default: the dataset's root, as the Hugging Face "
                   "Hub expects).")
def card(dataset: Path, out: Path | None) -> None:
    """Write a dataset card for DATASET: README.md (Hugging Face style) plus PNG charts in charts/.

    The card holds how the dataset was built, split sizes, label prevalence per finding and split,
    granularity coverage with example texts, image size and modality / view distributions, rejects by
    reason, the schema and privacy notes. Every count comes from the data shards. Its front matter holds
    the licence (from `mgll build --license`) and each split's data files, so `datasets.load_dataset`
    reads exactly the shards. A README.md that mgll card did not write is never overwritten.

    \b
    Example:
      mgll card mgll-cxr
      mgll card mgll-cxr --out reports/mgll-cxr-card
    """
    try:
        readme = write_card(dataset, out)
    except (NotADatasetError, CardError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write the card: {describe_os_error(exc)}") from None
    click.echo(summary_line(readme))
