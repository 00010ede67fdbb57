"""`mgll demo run`: the whole toolkit end to end on the demo export, in one command.

Each step calls the library function behind its `mgll` command, with the options that command would be
given, prints the summary that command prints and keeps what its `--json` would write in OUT/logs/. The
data side's steps (export, build, validate, card) are here; the training side's (pretrain, evaluate) are
in `mgll_data.commands.demo`, because only the CLI may import mgll_train. A step whose library is not
installed (the `train` extra, say) is reported as skipped and the run goes on; a step that fails is
reported with its one-line error, and the steps that need its output are skipped. The run never stops
half-way without a table.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from mgll_data import dataset
from mgll_data.demo.export import DemoError, write_demo_export

MARKER = ".mgll-demo-run"
RESULTS = "demo_run.json"
LOGS = "logs"
_LINKAGE = dataset.default_linkage_path(Path("dataset"))
_OWNED = ("export", "dataset", _LINKAGE.name, dataset.linkage_journal_path(_LINKAGE).name,
          dataset.linkage_lock_path(_LINKAGE).name, "run", "eval", LOGS, "salt", RESULTS)
Echo = Callable[[str], None]


@dataclass
class StepResult:
    step: str
    status: str  # ok | failed | skipped
    seconds: float = 0.0
    detail: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoRunSettings:
    studies: int = 300
    seed: int = 0
    steps: int = 200
    text_model: str = "tiny"  # "tiny" (fast, random init), "minilm" (the packaged MiniLM) or a folder
    workers: int = 1
    device: str = "cpu"
    broken: bool = False


@dataclass(frozen=True)
class DemoStep:
    """One step of the tour: `run(out, settings, progress, echo)` does it and says how it went."""

    name: str
    run: Callable[[Path, DemoRunSettings, bool, Echo], StepResult]
    needs: str | None = None  # the step whose output it reads: skipped when that one did not finish
    module: str | None = None  # the library module it calls: skipped when that is not installed


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise DemoError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise DemoError(f"{out} is not empty and was not made by `mgll demo run`; choose another folder")
        for name in _OWNED:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    (out / LOGS).mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(
        "made by `mgll demo run`; its subfolders are replaced on the next run\n", encoding="utf-8"
    )


def _unavailable(step: DemoStep) -> StepResult | None:
    """None when the step's library module imports; else a skipped result (the module, or a package it
    needs, is not installed) or a failed one (it is installed but does not import: a bug worth showing)."""
    if step.module is None:
        return None
    try:
        importlib.import_module(step.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (step.module == missing or step.module.startswith(missing + ".")):
            return StepResult(step.name, "skipped", detail=f"not available (module {missing} is not installed)")
        package = missing.split(".")[0]
        if package and importlib.util.find_spec(package) is None:
            return StepResult(step.name, "skipped",
                              detail=f"not available (needs {package}, which is not installed; run `make install`)")
        return StepResult(step.name, "failed", detail=one_line(exc))
    except ImportError as exc:
        return StepResult(step.name, "failed", detail=one_line(exc))
    return None


def one_line(exc: BaseException) -> str:
    """A failed step's reason: the error's first line, after its type unless it is the demo's own."""
    first = (str(exc).splitlines() or [""])[0]
    return first if isinstance(exc, DemoError) else f"{type(exc).__name__}: {first}"


def write_log(out: Path, step: str, payload: Any) -> Path:
    """Keep what the step's command would write with `--json`, as OUT/logs/<step>.json."""
    path = out / LOGS / f"{step}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def _step_export(out: Path, s: DemoRunSettings, progress: bool, echo: Echo) -> StepResult:
    summary = write_demo_export(out / "export", studies=s.studies, seed=s.seed, broken=s.broken,
                                workers=s.workers, progress=progress)
    detail = (f"{summary.studies} studies, {summary.images} images "
              f"({len(summary.transfer_syntaxes)} transfer syntaxes), {summary.bytes / 1e6:.1f} MB")
    return StepResult(
        "export",
        "ok",
        detail=detail,
        metrics={"studies": summary.studies, "images": summary.images, "expected_rows": summary.expected_rows},
    )


def _demo_salt(out: Path, seed: int) -> Path:
    """A salt derived from the seed: the demo's patients are fictional, and a fixed salt gives the same
    pseudonyms, hence the same patient splits and the same results table, on every run."""
    path = out / "salt"
    path.write_text(hashlib.sha256(f"mgll-demo-salt-{seed}".encode()).hexdigest() + "\n")
    path.chmod(0o600)
    return path


def _step_build(out: Path, s: DemoRunSettings, progress: bool, echo: Echo) -> StepResult:
    from mgll_data.build import DEFAULT_MAX_REJECT_RATE, build_dataset

    summary = build_dataset(out / "export", out / "dataset", "mimic-cxr", workers=s.workers,
                            salt_file=_demo_salt(out, s.seed), progress=progress)
    echo("\n".join(summary.summary_lines()))
    write_log(out, "build", summary.to_dict())
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary.rejects_by_reason.items()))
    detail = f"{summary.rows} rows, {summary.rejects} rejects" + (f" ({reasons})" if reasons else "")
    if summary.images_per_second:
        detail += f", {summary.images_per_second:.1f} images/s"
    metrics = {"rows": summary.rows, "rejects": summary.rejects, "splits": summary.splits,
               "rejects_by_reason": summary.rejects_by_reason}
    too_many = summary.over_reject_rate(DEFAULT_MAX_REJECT_RATE)
    return StepResult("build", "failed" if too_many else "ok", detail=too_many or detail, metrics=metrics)


def _step_validate(out: Path, s: DemoRunSettings, progress: bool, echo: Echo) -> StepResult:
    from mgll_data.validate import validate_dataset

    report = validate_dataset(out / "dataset", progress=progress)
    echo("\n".join(report.summary_lines()))
    echo(f"wrote {write_log(out, 'validate', report.to_dict())}")
    errors, warnings = report.errors, report.warnings
    detail = f"{'valid' if report.ok else 'INVALID'}: {len(errors)} errors, {len(warnings)} warnings"
    if errors:
        detail += f" (first: {errors[0]})"
    return StepResult("validate", "ok" if report.ok else "failed", detail=detail,
                      metrics={"ok": report.ok, "errors": len(errors), "warnings": len(warnings)})


def _step_card(out: Path, s: DemoRunSettings, progress: bool, echo: Echo) -> StepResult:
    from mgll_data.card import summary_line, write_card, written_charts

    readme = write_card(out / "dataset")
    echo(summary_line(readme))
    files = [dataset.CARD_FILE] + [f"{dataset.CHARTS_DIR}/{name}" for name in written_charts(readme)]
    return StepResult("card", "ok", detail=f"{readme} (and {len(files) - 1} charts)", metrics={"files": files})


# The data side of the tour; `mgll_data.commands.demo` adds pretrain and evaluate.
DATA_STEPS = (
    DemoStep("export", _step_export),
    DemoStep("build", _step_build, needs="export", module="mgll_data.build"),
    DemoStep("validate", _step_validate, needs="build", module="mgll_data.validate"),
    DemoStep("card", _step_card, needs="build", module="mgll_data.card"),
)


def run_demo(out: Path, steps: Sequence[DemoStep], settings: DemoRunSettings = DemoRunSettings(), *,
             progress: bool = True, echo: Echo = click.echo) -> list[StepResult]:
    """Run `steps` into `out`; returns one result per step (also written to OUT/demo_run.json)."""
    out = Path(out)
    _prepare(out)
    results: list[StepResult] = []
    finished: set[str] = set()
    for step in steps:
        if step.needs is not None and step.needs not in finished:
            results.append(StepResult(step.name, "skipped", detail=f"needs {step.needs}, which did not finish"))
            continue
        unavailable = _unavailable(step)
        if unavailable is not None:
            results.append(unavailable)
            continue
        echo(f"== demo step: {step.name}")
        started = time.perf_counter()
        try:
            result = step.run(out, settings, progress, echo)
        except Exception as exc:  # any failure of a step becomes that step's one-line reason
            result = StepResult(step.name, "failed", detail=one_line(exc))
        result.seconds = round(time.perf_counter() - started, 1)
        if result.status == "ok":
            finished.add(step.name)
        results.append(result)
    (out / RESULTS).write_text(json.dumps([asdict(r) for r in results], indent=2, default=str), encoding="utf-8")
    return results


def format_results(results: list[StepResult]) -> str:
    """The end-of-run table: one line per step."""
    header = ("step", "status", "time", "result")
    rows = [(r.step, r.status, f"{r.seconds:.1f}s" if r.status != "skipped" else "-", r.detail) for r in results]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    fmt = lambda row: "  ".join([*(c.ljust(w) for c, w in zip(row[:3], widths)), row[3]])
    return "\n".join([fmt(header), "  ".join("-" * w for w in [*widths, 6]), *(fmt(row) for row in rows)])
