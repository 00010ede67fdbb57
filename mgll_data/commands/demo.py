"""`mgll demo export` and `mgll demo run`: thin click layers over `mgll_data.demo`.

`mgll demo run` is the one place where the tour joins the data side and the training side: its steps
are `mgll_data.demo.run.DATA_STEPS` plus the pretrain and evaluate steps below, which import mgll_train
when they run (so `mgll demo export` never imports torch).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from mgll_data.commands.options import describe_os_error, human_echo, json_option, quiet_option, write_json
from mgll_data.demo import DemoError, write_demo_export
from mgll_data.demo.run import DATA_STEPS, DemoRunSettings, DemoStep, Echo, StepResult, write_log
from mgll_data.progress import is_terminal


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def demo() -> None:
    """The embedded sample: a synthetic MIMIC-CXR-shaped export, and a one-command tour of the toolkit.

    \b
    Examples:
      mgll demo export sample-export --studies 24
      mgll demo run demo-out
    """


@demo.command("export")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--studies", default=24, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Synthetic studies to write (1-3 images each), besides the packaged real DICOMs.")
@click.option("--seed", default=0, show_default=True, help="Same seed, same files, byte for byte.")
@click.option("--broken", is_flag=True,
              help="Also plant bad inputs (truncated, empty and non-DICOM .dcm files, a DICOM without pixels, "
                   "a study without its report, a non-UTF-8 report) so a build shows rejects.")
@click.option("--packaged/--no-packaged", default=True, show_default=True,
              help="Copy the real DICOM test files shipped in pydicom-data, pydicom and deid-data (about 21 MB).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Worker processes writing studies.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier demo export in OUT.")
@json_option("the summary")
@quiet_option
def export(out: Path, studies: int, seed: int, broken: bool, packaged: bool, workers: int, overwrite: bool,
           json_out: str | None, quiet: bool) -> None:
    """Write a MIMIC-CXR-shaped demo export into OUT (absent or empty).

    Images are synthetic chest radiographs saved as real DICOM files (CR/DX, MONOCHROME1/2, 8-16 bits,
    eight transfer syntaxes) with FAKE identifying details in their headers and reports; visible
    patterns follow each study's findings, so models trained on it learn something. OUT/ground_truth.csv
    holds the findings as each report writes them; the builder ignores it.

    \b
    Examples:
      mgll demo export sample-export
      mgll demo export big-export --studies 2000 --workers 2
      mgll demo export broken-export --studies 8 --broken
      mgll build sample-export mgll-cxr --pipeline mimic-cxr
    """
    try:
        summary = write_demo_export(out, studies=studies, seed=seed, broken=broken, packaged=packaged,
                                    workers=workers, overwrite=overwrite, progress=not quiet)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write the demo export: {describe_os_error(exc)}") from None
    echo = human_echo(json_out)
    echo(f"wrote {summary.studies} studies ({summary.synthetic_studies} synthetic, {len(summary.packaged)} packaged"
         f"{f', {len(summary.broken)} planted broken inputs' if broken else ''}), "
         f"{summary.images} DICOM files, {summary.reports} reports, {summary.bytes / 1e6:.1f} MB "
         f"in {summary.seconds:.1f}s to {out}")
    echo("transfer syntaxes: " + ", ".join(f"{k} {v}" for k, v in summary.transfer_syntaxes.items()))
    echo("positive studies: " + ", ".join(f"{k} {v}" for k, v in summary.positives.items()))
    if summary.packaged_missing:
        echo(f"not installed, skipped: {', '.join(summary.packaged_missing)}")
    echo(f"expect {summary.expected_rows} rows and {len(summary.broken)} rejects; "
         f"next: mgll build {out} <dataset> --pipeline mimic-cxr")
    write_json(summary.to_dict(), json_out)


_RUN_DEFAULTS = DemoRunSettings()


@demo.command("run")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"))
@click.option("--studies", default=_RUN_DEFAULTS.studies, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Synthetic studies.")
@click.option("--seed", default=_RUN_DEFAULTS.seed, show_default=True, help="Seed for the export and the training.")
@click.option("--steps", default=_RUN_DEFAULTS.steps, show_default=True, type=click.IntRange(1),
              help="Pretraining steps (tiny vision model).")
@click.option("--text-model", default=_RUN_DEFAULTS.text_model, show_default=True,
              help="Text tower: 'tiny' (fast, random init), 'minilm' (the packaged pretrained MiniLM, "
                   "about 6x slower on CPU) or a local folder.")
@click.option("--workers", default=_RUN_DEFAULTS.workers, show_default=True, type=click.IntRange(1, 256),
              help="Worker processes for the export and the build steps.")
@click.option("--device", default=_RUN_DEFAULTS.device, show_default=True,
              help="cpu, cuda or auto, for pretrain and evaluate.")
@click.option("--broken", is_flag=True, help="Plant bad inputs too, so the build shows rejects.")
@json_option("the step results")
@quiet_option
def run(out: Path, studies: int, seed: int, steps: int, text_model: str, workers: int, device: str, broken: bool,
        json_out: str | None, quiet: bool) -> None:
    """Run the whole toolkit on a fresh demo export in OUT (default ./demo-out).

    Steps: demo export -> mgll build (mimic-cxr) -> mgll validate -> mgll card -> mgll pretrain
    (tiny vision model, a few CPU steps) -> mgll evaluate (zero-shot + linear probe), then a table of results.
    A step whose library is not installed is reported as skipped and the run goes on. OUT holds
    export/, dataset/, run/, eval/, logs/ and demo_run.json; rerunning replaces them.

    \b
    Examples:
      mgll demo run
      mgll demo run demo-out --studies 200 --steps 100 --workers 2 --text-model minilm
    """
    from mgll_data.demo.run import format_results, run_demo

    settings = DemoRunSettings(studies=studies, seed=seed, steps=steps, text_model=text_model, workers=workers,
                               device=device, broken=broken)
    # with --json -, stdout carries only the JSON: the steps' own output goes to stderr
    step_output = contextlib.redirect_stdout(sys.stderr) if json_out == "-" else contextlib.nullcontext()
    try:
        with step_output:
            results = run_demo(out, DEMO_STEPS, settings, progress=not quiet)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write the demo: {describe_os_error(exc)}") from None
    echo = human_echo(json_out)
    echo("")
    echo(format_results(results))
    echo(f"details: {out / 'demo_run.json'}")
    write_json([asdict(r) for r in results], json_out)
    if any(r.status == "failed" for r in results):
        raise click.ClickException(f"some demo steps failed (see the table above); details in {out / 'demo_run.json'}")


def _step_pretrain(out: Path, s: DemoRunSettings, progress: bool, echo: Echo) -> StepResult:
    """`mgll pretrain DATASET --out RUN --model tiny --image-size 64 --batch-size 16 --max-steps N ...`."""
    from mgll_train.config import resolve
    from mgll_train.trainer import train

    overrides: dict[str, Any] = {"dataset": str(out / "dataset"), "out": str(out / "run"), "model": "tiny",
                                 "image_size": 64, "batch_size": 16, "max_steps": s.steps, "device": s.device,
                                 "seed": s.seed, "save_every": max(s.steps, 1)}
    if s.text_model != "minilm":
        overrides["text_model"] = s.text_model
    summary = train(resolve(None, overrides, resume=False), progress=progress)
    echo("\n".join(summary.summary_lines()))
    write_log(out, "pretrain", summary.to_dict())
    detail = f"{summary.steps} steps on {summary.device}"
    if summary.first_loss is not None and summary.last_loss is not None:
        detail += f", loss {summary.first_loss:.3f} -> {summary.last_loss:.3f}"
    if summary.samples_per_second:
        detail += f", {summary.samples_per_second:.1f} samples/s"
    metrics = {"steps": summary.steps, "first_loss": summary.first_loss, "last_loss": summary.last_loss,
               "samples_per_second": summary.samples_per_second}
    return StepResult("pretrain", "ok", detail=detail, metrics=metrics)


def _step_evaluate(out: Path, s: DemoRunSettings, progress: bool, echo: Echo) -> StepResult:
    """`mgll evaluate RUN DATASET --task zero-shot --task linear-probe --bootstrap 200 ...`."""
    from mgll_train.evaluate import EvaluationOptions, evaluate
    from mgll_train.evaluate.report import summary_lines

    options = EvaluationOptions(bootstrap=200, seed=s.seed, device=s.device,
                                progress=progress and is_terminal(sys.stderr))  # a bar only on a terminal
    run, data, results_dir = out / "run", out / "dataset", out / "eval"
    results = evaluate(run, data, ["zero-shot", "linear-probe"], results_dir, options)
    echo("\n".join(summary_lines(results, run, data, results_dir)))
    write_log(out, "evaluate", results)
    metrics: dict[str, Any] = {}
    parts = []
    for task, task_out in (results.get("tasks") or {}).items():
        for metric, entry in (task_out.get("macro") or {}).items():
            value = entry.get("value") if isinstance(entry, dict) else entry
            metrics[f"{task} macro {metric}"] = value
            if metric == "auc":
                parts.append(f"{task} macro AUC {'n/a' if value is None else f'{value:.3f}'}")
    return StepResult("evaluate", "ok", detail="; ".join(parts) or f"results in {results_dir}", metrics=metrics)


DEMO_STEPS = (
    *DATA_STEPS,
    DemoStep("pretrain", _step_pretrain, needs="build", module="mgll_train.trainer"),
    DemoStep("evaluate", _step_evaluate, needs="pretrain", module="mgll_train.evaluate"),
)
