"""`evaluate(run, dataset, task, out)`: load once, extract features once, run the tasks, write the report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mgll_train.evaluate import downstream, features, finetune, linear_probe, metrics, report, retrieval, zero_shot
from mgll_train.evaluate.downstream import EvaluationError

TASKS = ("zero-shot", "retrieval", "linear-probe", "finetune")
PROBE_FEATURES = ("backbone", "embedding")


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
    *,
    bootstrap: int = metrics.DEFAULT_BOOTSTRAP,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = features.DEFAULT_BATCH,
    workers: int = 2,
    labels: list[str] | None = None,
    image_column: str | None = None,
    prompts: Path | None = None,
    probe_features: str = "backbone",
    head: str = "auto",
    epochs: int = 3,
    finetune_batch_size: int = 16,
    lr: float = 1e-4,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a pretraining run on downstream data; writes results.json, results.md and charts to `out`.

    Returns the results as written. Raises EvaluationError (one line) for unusable inputs.
    """
    tasks = parse_tasks(task)
    if bootstrap < 0:
        raise EvaluationError("--bootstrap must be 0 or more")
    if probe_features not in PROBE_FEATURES:
        raise EvaluationError(f"--probe-features must be one of {PROBE_FEATURES}")
    data = downstream.load(Path(dataset), labels=labels, image_column=image_column)
    rows = {s: data.indices(s) for s in downstream.SPLITS}
    if len(rows["test"]) == 0:
        raise EvaluationError(f"the test split of {dataset} is empty: nothing to score (splits: {data.split_counts()})")
    if head == "multiclass" and "finetune" in tasks and data.kind != "multiclass":
        raise EvaluationError("--head multiclass needs downstream data with one class column (a CSV); this data is multi-label")
    loaded = features.load(Path(run), device)

    timings: dict[str, float] = {}
    started = time.perf_counter()
    needed = set()
    if {"zero-shot", "retrieval"} & set(tasks):
        needed.add("test")
    if "linear-probe" in tasks:
        needed.update(downstream.SPLITS)
    feats = None
    if needed:
        wanted = np.concatenate([rows[s] for s in sorted(needed)])
        feats = features.image_features(loaded, data, wanted, batch_size=batch_size, workers=workers, progress=progress)
        timings["features"] = time.perf_counter() - started

    results_by_task: dict[str, dict] = {}
    for name in tasks:
        start = time.perf_counter()
        if name == "zero-shot":
            out_task = zero_shot.evaluate(
                loaded, data, rows["test"], feats.take(rows["test"]), prompts_file=prompts, bootstrap=bootstrap, seed=seed
            )
        elif name == "retrieval":
            out_task = retrieval.evaluate(loaded, data, rows["test"], feats.take(rows["test"]), bootstrap=bootstrap, seed=seed)
        elif name == "linear-probe":
            emb = {s: feats.take(rows[s], probe_features) for s in downstream.SPLITS}
            out_task = linear_probe.evaluate(data, rows, emb, bootstrap=bootstrap, seed=seed)
            out_task["features"] = probe_features
        else:
            out_task = finetune.evaluate(
                loaded, data, rows, head=head, epochs=epochs, batch_size=finetune_batch_size, lr=lr,
                workers=workers, bootstrap=bootstrap, seed=seed, progress=progress,
            )  # fmt: skip
        timings[name] = time.perf_counter() - start
        results_by_task[name] = out_task

    results = {
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
        "options": {"tasks": tasks, "bootstrap": bootstrap, "seed": seed, "device": str(loaded.device)},
        "tasks": results_by_task,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "notes": [
            "multi-label: positive = 1 against negative or absent; uncertain (-1) images are excluded per label",
            "macro averages are over labels whose test AUC is defined (both classes present)",
        ],
    }
    return report.write(Path(out), results)
