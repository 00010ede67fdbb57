"""`evaluate(run, dataset, task, out, options)`: load once, extract features once, run the tasks, write the report."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mgll_train.evaluate import downstream, features, finetune, linear_probe, metrics, report, retrieval, zero_shot
from mgll_train.evaluate.downstream import Downstream, EvaluationError

TASKS = ("zero-shot", "retrieval", "linear-probe", "finetune")
PROBE_FEATURES = ("backbone", "embedding")
# The splits whose image features each task reads (zero-shot picks its thresholds on val).
_FEATURE_SPLITS = {"zero-shot": ("val", "test"), "retrieval": ("test",), "linear-probe": downstream.SPLITS}


@dataclass(frozen=True)
class EvaluationOptions:
    """How to evaluate: shared settings first, then those of one task (named by its prefix)."""

    bootstrap: int = metrics.DEFAULT_BOOTSTRAP  # resamples for the 95% intervals (0: none)
    seed: int = 0
    device: str = "auto"
    batch_size: int = features.DEFAULT_BATCH  # images per feature batch
    workers: int = 2  # image decoding threads
    labels: list[str] | None = None  # evaluate these labels only
    image_column: str | None = None  # CSV input: the image path column
    progress: bool = True
    prompts: Path | None = None  # zero-shot: a JSON of prompts instead of the in-distribution ones
    probe_features: str = "backbone"  # linear-probe: backbone or embedding
    head: str = "auto"  # finetune: auto, multilabel or multiclass
    epochs: int = 3  # finetune
    finetune_batch_size: int = 16
    lr: float = 1e-4  # finetune: the vision tower's rate (the new head trains at 10x)

    def check(self) -> None:
        if self.bootstrap < 0:
            raise EvaluationError("--bootstrap must be 0 or more")
        if self.probe_features not in PROBE_FEATURES:
            raise EvaluationError(f"--probe-features must be one of {PROBE_FEATURES}")


def parse_tasks(task: str | Sequence[str]) -> list[str]:
    """Task names in canonical order; "all" expands, duplicates collapse, unknown names fail."""
    names = [task] if isinstance(task, str) else list(task)
    wanted = set()
    for name in names:
        for part in str(name).split(","):
            part = part.strip().lower()
            if part == "all":
                wanted.update(TASKS)
            elif part in TASKS:
                wanted.add(part)
            elif part:
                raise EvaluationError(f"unknown task {part!r}; choose from {', '.join(TASKS)} or all")
    if not wanted:
        raise EvaluationError(f"no task given; choose from {', '.join(TASKS)} or all")
    return [t for t in TASKS if t in wanted]


def evaluate(
    run: Path,
    dataset: Path,
    task: str | Sequence[str],
    out: Path,
    options: EvaluationOptions = EvaluationOptions(),
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a pretraining run on downstream data; writes results.json, results.md and charts to `out`.

    Returns the results as written. Raises EvaluationError (one line) for unusable inputs. `echo` gets a
    line as each stage starts and ends, for logs where no progress bar is drawn.
    """
    tasks = parse_tasks(task)
    options.check()
    report.check_out_dir(Path(out))
    data = _load_data(Path(dataset), tasks, options)
    rows = {s: data.indices(s) for s in downstream.SPLITS}
    loaded = features.load_run_for_evaluation(Path(run), options.device)

    say = echo or (lambda line: None)
    say(f"evaluate: {len(rows['test'])} test images; encoding the images the tasks need ...")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    feats = _image_features(loaded, data, rows, tasks, options)
    if feats is not None:
        timings["features"] = time.perf_counter() - started
        say(f"evaluate: features of {len(feats.rows)} images in {timings['features']:.0f} s")
    results_by_task: dict[str, dict] = {}
    for name in tasks:
        say(f"evaluate: {name} ...")
        start = time.perf_counter()
        results_by_task[name] = _run_task(name, loaded, data, rows, feats, options)
        timings[name] = time.perf_counter() - start
        say(f"evaluate: {name} done in {timings[name]:.0f} s")
    return report.write(Path(out), _record(run, dataset, loaded, data, tasks, options, results_by_task, timings))


def _load_data(dataset: Path, tasks: list[str], options: EvaluationOptions) -> Downstream:
    data = downstream.load_downstream(dataset, labels=options.labels, image_column=options.image_column)
    if len(data.indices("test")) == 0:
        raise EvaluationError(f"the test split of {dataset} is empty: nothing to score (splits: {data.split_counts()})")
    if options.head == "multiclass" and "finetune" in tasks and data.kind != "multiclass":
        raise EvaluationError(
            "--head multiclass needs downstream data with one class column (a CSV); this data is multi-label"
        )
    return data


def _image_features(
    run: features.Run, data: Downstream, rows: dict[str, np.ndarray], tasks: list[str], options: EvaluationOptions
) -> features.ImageFeatures | None:
    """Every image any task needs, decoded and encoded once."""
    needed = sorted({split for t in tasks for split in _FEATURE_SPLITS.get(t, ())})
    if not needed:
        return None
    wanted = np.concatenate([rows[s] for s in needed])
    return features.image_features(
        run, data, wanted, batch_size=options.batch_size, workers=options.workers, progress=options.progress
    )


def _run_task(
    name: str,
    run: features.Run,
    data: Downstream,
    rows: dict[str, np.ndarray],
    feats: features.ImageFeatures | None,
    options: EvaluationOptions,
) -> dict:
    scoring = {"bootstrap": options.bootstrap, "seed": options.seed}
    if name == "zero-shot":
        emb = {s: feats.take(rows[s]) for s in ("val", "test")}
        return zero_shot.evaluate(run, data, rows, emb, prompts_file=options.prompts, **scoring)
    if name == "retrieval":
        return retrieval.evaluate(run, data, rows["test"], feats.take(rows["test"]), **scoring)
    if name == "linear-probe":
        emb = {s: feats.take(rows[s], options.probe_features) for s in downstream.SPLITS}
        return {**linear_probe.evaluate(data, rows, emb, **scoring), "features": options.probe_features}
    settings = finetune.FinetuneSettings(
        head=options.head, epochs=options.epochs, batch_size=options.finetune_batch_size, lr=options.lr,
        workers=options.workers, progress=options.progress,
    )  # fmt: skip
    return finetune.evaluate(run, data, rows, settings, **scoring)


def _record(run, dataset, loaded: features.Run, data: Downstream, tasks, options, results_by_task, timings) -> dict:
    """The results document: what was evaluated, on what, how, and every task's output."""
    return {
        "run": {
            "path": str(run),
            "step": loaded.step,
            "model": loaded.config.get("model"),
            "text_model": loaded.config.get("text_model"),
            "loss": loaded.config.get("loss"),
            "granularities": loaded.granularities,
            "image_size": loaded.image_size,
        },
        "dataset": {
            "path": str(dataset),
            "source": data.source,
            "kind": data.kind,
            "labels": data.label_names,
            "splits": data.split_counts(),
            "notes": data.notes,
        },
        "options": {
            "tasks": tasks,
            "bootstrap": options.bootstrap,
            "bootstrap_unit": "patient" if data.patients is not None else "image",
            "seed": options.seed,
            "device": str(loaded.device),
        },
        "tasks": results_by_task,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "notes": [
            "multi-label: positive = 1 against negative or absent; uncertain (-1) images are excluded per label",
            "macro averages are over labels whose test AUC is defined (both classes present)",
        ],
    }
