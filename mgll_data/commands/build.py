"""`mgll build`: a thin click layer over `mgll_data.build.build_dataset`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mgll_data.build import DEFAULT_MAX_REJECT_RATE, build_dataset
from mgll_data.commands.options import describe_os_error, human_echo, json_option, quiet_option, write_json
from mgll_data.dataset import DEFAULT_LICENSE, LINKAGE_SUFFIX
from mgll_data.engines import ENGINES
from mgll_data.output_folder import OutputFolderError
from mgll_data.pipeline import PipelineError
from mgll_data.progress import is_terminal
from mgll_data.sources import SourceError

SALT_NOTICE = """\
mgll: created a new pseudonym key (the "salt") at {path} (mode 0600, readable by you only).
  Back it up. Every patient, study and image id in the dataset is a keyed hash made with it: a rebuild or
  an increment made with another salt gets other pseudonyms and no longer links to this dataset.
  Keep it secret, like a password, and never ship it with the dataset: whoever holds it and an original
  id (an MRN, a UID) can recompute that pseudonym and re-identify the patient's rows.
  Reuse it with --salt-file PATH or $MGLL_SALT_FILE."""


def announce_salt(path: Path) -> None:
    click.echo(SALT_NOTICE.format(path=path), err=True)


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--pipeline", "pipeline_name", default="mimic-cxr", show_default=True,
              help="A pipeline name (mimic-cxr, openi, folder, manifest, fundus) or a path to your own YAML copy.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 512),
              help="Worker processes decoding and de-identifying inputs (with --engine ray: Ray actors).")
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
              help="local: a process pool on this machine; ray: Ray Data (needs the `ray` extra).")
@click.option("--address", default=None, help="Ray cluster address (with --engine ray); default starts a local Ray.")
@click.option("--linkage", type=click.Path(path_type=Path), default=None,
              help="Where the PRIVATE linkage table (image ↔ source path and original ids) goes. "
                   f"Default: <OUT>{LINKAGE_SUFFIX} beside OUT, never inside it.")
@click.option("--salt-file", type=click.Path(path_type=Path), default=None,
              help="Secret salt for pseudonyms (default ~/.config/mgll/salt or $MGLL_SALT_FILE; created if "
                   "missing). Reuse it so rebuilds and increments link up; never ship it with the dataset.")
@click.option("--overwrite", is_flag=True,
              help="Start over instead of resuming: delete the files an earlier build (or `mgll card`) wrote into "
                   "OUT, and only those.")
@click.option("--max-reject-rate", default=DEFAULT_MAX_REJECT_RATE, show_default=True, type=click.FloatRange(0, 1),
              help="Exit non-zero when more than this fraction of inputs are rejected.")
@click.option("--license", "license_", default=DEFAULT_LICENSE, show_default=True,
              help="The dataset's licence (an SPDX id such as cc-by-nc-4.0, or 'other'), recorded in the manifest "
                   "for the dataset card's front matter.")
@json_option("the end summary")
@quiet_option
def build(source: Path, out: Path, pipeline_name: str, workers: int, engine: str, address: str | None,
          linkage: Path | None, salt_file: Path | None, overwrite: bool, max_reject_rate: float,
          license_: str, json_out: str | None, quiet: bool) -> None:
    """Build a de-identified multi-granular Parquet dataset from a raw export.

    Every input found in SOURCE becomes a row in OUT/data/ (shards per split: train-NNNNN.parquet,
    validation-…, test-…: a Hugging Face dataset) or a reject in OUT/rejects.parquet (with the reason).
    An input is an image file, or a report that no image belongs to (a `report-without-image` reject).
    Re-running the same command resumes: inputs already written are skipped. OUT must be new, empty or
    an mgll dataset, and outside SOURCE; one build at a time writes it (a second is refused).

    \b
    Example:
      mgll build /data/export /data/mgll-cxr --pipeline mimic-cxr --workers 8
      mgll validate /data/mgll-cxr
    """
    engine_options = {"address": address, "progress": not quiet and is_terminal(sys.stderr)} if engine == "ray" else {}
    try:
        summary = build_dataset(
            source, out, pipeline_name, workers=workers, engine=engine, engine_options=engine_options,
            linkage=linkage, salt_file=salt_file, overwrite=overwrite, progress=not quiet, license=license_,
            on_salt_created=announce_salt,
        )
    except (PipelineError, SourceError, OutputFolderError, ValueError, ImportError) as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    except OSError as exc:
        raise click.ClickException(
            f"the build stopped: {describe_os_error(exc)}; then run the same command again to resume"
        ) from None

    human_echo(json_out)("\n".join(summary.summary_lines()))
    write_json(summary.to_dict(), json_out)
    too_many = summary.over_reject_rate(max_reject_rate)
    if too_many:
        raise click.ClickException(too_many)
