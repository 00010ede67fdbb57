"""`mgll demo run`: the whole toolkit end to end on the demo export, in one command.

Each step runs the registered `mgll` command in this process (exactly what a user would type), so the
demo exercises the real CLI surface rather than a private shortcut. A step whose command is not installed
is reported as skipped and the run goes on; a step that fails is reported with its one-line error, and the
steps that need its output are skipped. The run never stops half-way without a table.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from mgll_data import dataset
from mgll_data.demo.export import DemoError, write_demo_export

MARKER = ".mgll-demo-run"
RESULTS = "demo_run.json"
_LINKAGE = dataset.default_linkage_path(Path("dataset"))
_OWNED = ("export", "dataset", _LINKAGE.name, dataset.linkage_journal_path(_LINKAGE).name,
          dataset.linkage_lock_path(_LINKAGE).name, "run", "eval", "logs", "salt", RESULTS)


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
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(
        "made by `mgll demo run`; its subfolders are replaced on the next run\n", encoding="utf-8"
    )


def _command_unavailable(name: str) -> StepResult | None:
    """None when `mgll <name>` loads; else a skipped result (not installed / not written yet) or a failed
    one (its module exists but does not import: a bug worth showing, not hiding)."""
    from mgll_data.cli import COMMANDS, main

    module_name = COMMANDS[name][0].split(":")[0] if name in COMMANDS else ""
    try:
        with click.Context(main) as ctx:
            command = main.get_command(ctx, name)
    except click.ClickException as exc:
        return StepResult(name, "skipped", detail=f"not available ({exc.format_message()})")
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name and module_name.startswith(exc.name):
            return StepResult(name, "skipped", detail=f"not available (module {exc.name} is not installed)")
        return StepResult(name, "failed", detail=f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}")
    if command is None:
        return StepResult(name, "skipped", detail=f"not available (no command named {name!r})")
    return None


def _invoke(args: list[str]) -> None:
    """Run `mgll ARGS` in-process; raises click.ClickException with a one-line reason on failure."""
    from mgll_data.cli import main

    try:
        main.main(args=args, prog_name="mgll", standalone_mode=False)
    except click.exceptions.Exit as exc:
        if exc.exit_code:
            raise click.ClickException(f"exited with status {exc.exit_code}") from None
    except click.ClickException:
        raise
    except click.exceptions.Abort:
        raise click.ClickException("aborted") from None
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise click.ClickException(f"exited with status {exc.code}") from None
    except Exception as exc:  # any crash of a step becomes that step's one-line failure
        first_line = (str(exc).splitlines() or [""])[0]
        raise click.ClickException(f"{type(exc).__name__}: {first_line}") from None


def _quiet(progress: bool) -> list[str]:
    return [] if progress else ["--quiet"]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _step_export(out: Path, s: DemoRunSettings, progress: bool) -> StepResult:
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


def _step_build(out: Path, s: DemoRunSettings, progress: bool) -> StepResult:
    _demo_salt(out, s.seed)
    args = ["build", str(out / "export"), str(out / "dataset"), "--pipeline", "mimic-cxr", "--workers", str(s.workers),
            "--salt-file", str(out / "salt"), "--json", str(out / "logs" / "build.json")]
    _invoke(args + _quiet(progress))
    manifest = _read_json(out / "dataset" / dataset.MANIFEST_FILE)
    rejects = manifest.get("rejects_by_reason") or {}
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(rejects.items()))
    speed = (manifest.get("timings") or {}).get("images_per_second")
    detail = f"{manifest.get('rows', '?')} rows, {manifest.get('rejects', '?')} rejects" + (
        f" ({reasons})" if reasons else ""
    )
    if speed:
        detail += f", {speed:.1f} images/s"
    metrics = {k: manifest.get(k) for k in ("rows", "rejects", "splits", "rejects_by_reason")}
    return StepResult("build", "ok", detail=detail, metrics=metrics)


def _step_validate(out: Path, s: DemoRunSettings, progress: bool) -> StepResult:
    report_path = out / "logs" / "validate.json"
    try:
        _invoke(["validate", str(out / "dataset"), "--json", str(report_path), *_quiet(progress)])
    except click.ClickException:
        if not report_path.is_file():
            raise
    report = _read_json(report_path)
    errors, warnings = report.get("errors") or [], report.get("warnings") or []
    ok = bool(report.get("ok"))
    detail = f"{'valid' if ok else 'INVALID'}: {len(errors)} errors, {len(warnings)} warnings"
    if errors:
        detail += f" (first: {errors[0]})"
    return StepResult("validate", "ok" if ok else "failed", detail=detail,
                      metrics={"ok": ok, "errors": len(errors), "warnings": len(warnings)})


def _step_card(out: Path, s: DemoRunSettings, progress: bool) -> StepResult:
    _invoke(["card", str(out / "dataset")])
    readme = out / "dataset" / dataset.CARD_FILE
    files = [dataset.CARD_FILE] + [f"{dataset.CHARTS_DIR}/{name}" for name in dataset.CHARTS.values()
                                   if (readme.parent / dataset.CHARTS_DIR / name).is_file()]
    return StepResult("card", "ok", detail=f"{readme} (and {len(files) - 1} charts)", metrics={"files": files})


def _step_pretrain(out: Path, s: DemoRunSettings, progress: bool) -> StepResult:
    summary_path = out / "logs" / "pretrain.json"
    args = ["pretrain", str(out / "dataset"), "--out", str(out / "run"), "--model", "tiny", "--image-size", "64",
            "--batch-size", "16", "--max-steps", str(s.steps), "--device", s.device, "--seed", str(s.seed),
            "--save-every", str(max(s.steps, 1)), "--json", str(summary_path)]
    if s.text_model != "minilm":
        args += ["--text-model", s.text_model]
    _invoke(args + _quiet(progress))
    summary = _read_json(summary_path)
    first, last = summary.get("first_loss"), summary.get("last_loss")
    detail = f"{summary.get('steps', '?')} steps on {summary.get('device', s.device)}"
    if first is not None and last is not None:
        detail += f", loss {first:.3f} -> {last:.3f}"
    if summary.get("samples_per_second"):
        detail += f", {summary['samples_per_second']:.1f} samples/s"
    return StepResult("pretrain", "ok", detail=detail,
                      metrics={k: summary.get(k) for k in ("steps", "first_loss", "last_loss", "samples_per_second")})


def _step_evaluate(out: Path, s: DemoRunSettings, progress: bool) -> StepResult:
    results_path = out / "logs" / "evaluate.json"
    args = ["evaluate", str(out / "run"), str(out / "dataset"), "--task", "zero-shot", "--task", "linear-probe",
            "--out", str(out / "eval"), "--bootstrap", "200", "--device", s.device, "--seed", str(s.seed),
            "--json", str(results_path)]
    _invoke(args + _quiet(progress))
    results = _read_json(results_path)
    metrics: dict[str, Any] = {}
    parts = []
    for task, task_out in (results.get("tasks") or {}).items():
        for metric, entry in (task_out.get("macro") or {}).items():
            value = entry.get("value") if isinstance(entry, dict) else entry
            metrics[f"{task} macro {metric}"] = value
            if metric == "auc":
                parts.append(f"{task} macro AUC {'n/a' if value is None else f'{value:.3f}'}")
    return StepResult("evaluate", "ok", detail="; ".join(parts) or f"results in {out / 'eval'}", metrics=metrics)


# step name, the mgll command it needs (None: built in), what it needs from earlier steps, the runner
_STEPS: tuple[tuple[str, str | None, str | None, Callable[[Path, DemoRunSettings, bool], StepResult]], ...] = (
    ("export", None, None, _step_export),
    ("build", "build", "export", _step_build),
    ("validate", "validate", "build", _step_validate),
    ("card", "card", "build", _step_card),
    ("pretrain", "pretrain", "build", _step_pretrain),
    ("evaluate", "evaluate", "pretrain", _step_evaluate),
)


def run_demo(out: Path, settings: DemoRunSettings = DemoRunSettings(), *, progress: bool = True,
             echo: Callable[[str], None] = click.echo) -> list[StepResult]:
    """Run every step into `out`; returns one result per step (also written to OUT/demo_run.json)."""
    out = Path(out)
    _prepare(out)
    results: list[StepResult] = []
    finished: set[str] = set()
    for name, command, needs, runner in _STEPS:
        if needs is not None and needs not in finished:
            results.append(StepResult(name, "skipped", detail=f"needs {needs}, which did not finish"))
            continue
        unavailable = _command_unavailable(command) if command else None
        if unavailable is not None:
            unavailable.step = name
            results.append(unavailable)
            continue
        echo(f"== demo step: {name}")
        started = time.perf_counter()
        try:
            result = runner(out, settings, progress)
        except (click.ClickException, DemoError) as exc:
            message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
            result = StepResult(name, "failed", detail=message)
        result.seconds = round(time.perf_counter() - started, 1)
        if result.status == "ok":
            finished.add(name)
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
