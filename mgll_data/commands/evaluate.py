"""`mgll evaluate`: a thin click layer over `mgll_train.evaluate.evaluate`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mgll_data.commands.options import human_echo, json_option, old_spelling, old_spellings, quiet_option, write_json
from mgll_data.progress import is_terminal
from mgll_train.evaluate import TASKS, EvaluationError, EvaluationOptions
from mgll_train.evaluate import evaluate as run_evaluation
from mgll_train.evaluate.report import summary_lines

_DEFAULTS = EvaluationOptions()  # each option's default is the library's


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--task", "tasks", multiple=True, required=True, metavar="TASK",
              help=f"One of {', '.join(TASKS)}, or all; repeat the option for several.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder for results.json, results.md and the charts (created if missing).")
@click.option("--bootstrap", default=_DEFAULTS.bootstrap, show_default=True, type=click.IntRange(0, 100_000),
              help="Bootstrap resamples of the test patients for the 95% intervals (0: no intervals).")
@click.option("--seed", default=_DEFAULTS.seed, show_default=True, help="Seed for bootstrap, probe and fine-tuning.")
@click.option("--device", default=_DEFAULTS.device, show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", default=_DEFAULTS.batch_size, show_default=True, type=click.IntRange(1),
              help="Images per feature batch.")
@click.option("--threads", "workers", default=_DEFAULTS.workers, show_default=True, type=click.IntRange(1, 64),
              callback=old_spellings, help="Threads decoding images.")
@old_spelling(
    "--workers", "use --threads (they are threads, not processes)", dest="workers", type=click.IntRange(1, 64)
)
@click.option("--labels", default=None, help="Comma-separated label columns/findings to evaluate (default: all).")
@click.option("--image-column", default=None,
              help="CSV input: the image path column (default: image, image_path or path).")
@click.option("--prompts", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help='zero-shot: JSON {"Label": {"positive": [...], "negative": [...]}} instead of the prompts '
                   "taken from the data's training texts.")
@click.option("--probe-features", type=click.Choice(["backbone", "embedding"]), default=_DEFAULTS.probe_features,
              show_default=True, help="linear-probe: pooled vision features, or the projected shared-space embedding.")
@click.option(
    "--head",
    type=click.Choice(["auto", "multilabel", "multiclass"]),
    default=_DEFAULTS.head,
    show_default=True,
    help="finetune: multi-label BCE, or multi-class CE (a CSV with one class column); auto picks from the data.",
)
@click.option("--epochs", default=_DEFAULTS.epochs, show_default=True, type=click.IntRange(1), help="finetune: epochs.")
@click.option("--finetune-batch-size", default=_DEFAULTS.finetune_batch_size, show_default=True, type=click.IntRange(1),
              help="finetune: batch size.")
@click.option("--lr", default=_DEFAULTS.lr, show_default=True, type=click.FloatRange(0, min_open=True),
              help="finetune: learning rate of the vision tower (the new head uses 10x).")
@json_option("the full results")
@quiet_option
def evaluate(run: Path, dataset: Path, tasks: tuple[str, ...], out: Path, bootstrap: int, seed: int, device: str,
             batch_size: int, workers: int, labels: str | None, image_column: str | None, prompts: Path | None,
             probe_features: str, head: str, epochs: int, finetune_batch_size: int, lr: float,
             json_out: str | None, quiet: bool) -> None:
    """Evaluate a pretraining RUN on DATASET: zero-shot, retrieval, linear probe, fine-tuning.

    DATASET is a folder built by `mgll build` (its train/val/test splits are used) or a CSV with an
    image path column, label columns (1 / 0 / -1, blank = 0) or one class column, and optionally a
    split column. Every metric comes with a bootstrap 95% interval over the test patients (images
    when the data has no patient_id).

    \b
    Example:
      mgll evaluate runs/mgll-tiny mgll-cxr --task all --out eval/mgll-tiny
      mgll evaluate runs/mgll-tiny cohort.csv --task linear-probe --task finetune --out eval/csv
    """
    label_list = [s.strip() for s in labels.split(",") if s.strip()] if labels else None
    options = EvaluationOptions(
        bootstrap=bootstrap, seed=seed, device=device, batch_size=batch_size, workers=workers, labels=label_list,
        image_column=image_column, prompts=prompts, probe_features=probe_features, head=head, epochs=epochs,
        finetune_batch_size=finetune_batch_size, lr=lr,
        progress=not quiet and is_terminal(sys.stderr),  # a bar only on a terminal
    )  # fmt: skip
    # off a terminal, a line per stage instead of the bars
    stage_lines = None if quiet or options.progress else (lambda line: click.echo(line, err=True))
    try:
        results = run_evaluation(run, dataset, list(tasks), out, options, echo=stage_lines)
    except EvaluationError as exc:
        raise click.ClickException(str(exc)) from None

    human_echo(json_out)("\n".join(summary_lines(results, run, dataset, out)))
    write_json(results, json_out)
