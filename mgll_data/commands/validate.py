"""`mgll validate`: thin click wrapper over `mgll_data.validate.validate_dataset`."""

from __future__ import annotations

from pathlib import Path

import click

from mgll_data.commands.options import describe_os_error, human_echo, json_option, quiet_option, write_json
from mgll_data.dataset import LINKAGE_SUFFIX, NotADatasetError
from mgll_data.validate import validate_dataset


@click.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@json_option("the verdict (every check, error and warning)")
@click.option("--full", is_flag=True, help="Decode every image, not a sample.")
@click.option("--linkage", type=click.Path(path_type=Path), default=None,
              help="Also check the private linkage table at this path: an entry for every row and reject, "
                   f"none for anything else (the default build path is <DATASET>{LINKAGE_SUFFIX}).")
@click.option("--sample", type=click.IntRange(min=0), default=200, show_default=True,
              help="How many images to decode (evenly spread, same rows every run).")
@click.option("--allow-warnings", is_flag=True,
              help="Report PHI-like strings (UIDs, dates, DICOM names, raw ids) as warnings, not errors.")
@quiet_option
def validate(dataset: Path, json_out: str | None, full: bool, linkage: Path | None, sample: int,
             allow_warnings: bool, quiet: bool) -> None:
    """Check a built DATASET folder against the contract; exit 1 on any error.

    Checks the Arrow schema and file metadata, nulls, label statuses and names, image decoding and sizes,
    split leakage (a patient in two splits), duplicate ids and image content, granularity coverage,
    manifest counts (rows + rejects = inputs) and shard listing, plus privacy checks: a string that looks
    like a UID, a date, a DICOM person name or a raw id fails the dataset (--allow-warnings: warn only);
    with --linkage, that the private linkage table links every row and reject.

    \b
    Example:
      mgll validate mgll-cxr
      mgll validate mgll-cxr --full --json report.json
      mgll validate mgll-cxr --linkage mgll-cxr.linkage.parquet
      mgll validate mgll-cxr --json - | jq .ok
    """
    try:
        report = validate_dataset(dataset, full=full, sample=sample, linkage=linkage, progress=not quiet,
                                  allow_phi=allow_warnings)
    except NotADatasetError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot read the dataset: {describe_os_error(exc)}") from None
    human_echo(json_out)("\n".join(report.summary_lines()))
    write_json(report.to_dict(), json_out)
    if json_out not in (None, "-"):
        click.echo(f"wrote {json_out}", err=True)
    if not report.ok:
        raise SystemExit(1)
