"""Evaluation outputs: `results.json`, a short `results.md`, and PNG charts (ROC curves, per-label AUC,
retrieval recall), all written into the `--out` folder.

The JSON is the machine-readable record (every number with its 95% interval and the notes explaining
any null); the markdown and the end-of-command table are views of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve

from mgll_train.evaluate.downstream import EvaluationError
from mgll_train.evaluate.metrics import roc_auc

CLASSIFICATION_TASKS = ("zero-shot", "linear-probe", "finetune")
METRIC_NAMES = {"auc": "AUC", "ap": "AP", "accuracy": "accuracy", "f1": "F1"}
DIRECTIONS = (("image_to_text", "i→t"), ("text_to_image", "t→i"))
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"


def _fmt(entry: dict | None) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    ci = entry.get("ci95")
    return f"{entry['value']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{entry['value']:.3f}"


def summary_rows(results: dict) -> list[tuple[str, str, str]]:
    """(task, metric, value) headline rows of every task that ran: macro metrics with their intervals,
    and one compact row of R@K values per retrieval granularity and direction (intervals in results.md)."""
    rows = []
    for task, out in results.get("tasks", {}).items():
        if task in CLASSIFICATION_TASKS:
            for metric, entry in out.get("macro", {}).items():
                rows.append((task, f"macro {METRIC_NAMES.get(metric, metric)}", _fmt(entry)))
        elif task == "retrieval":
            ks = out.get("ks", [])
            for g, values in out.get("granularities", {}).items():
                for direction, short in DIRECTIONS:
                    if direction in values:
                        recalls = " / ".join(_value(values[direction][f"R@{k}"]) for k in ks)
                        rows.append((task, f"{g} {short} R@{'/'.join(map(str, ks))}", recalls))
    return rows


def _value(entry: dict | None) -> str:
    return "n/a" if not entry or entry.get("value") is None else f"{entry['value']:.3f}"


def _retrieval_markdown(out: dict) -> list[str]:
    ks = out.get("ks", [])
    recalls = " | ".join(f"R@{k} [95% CI]" for k in ks)
    lines = ["### retrieval", "", f"| granularity | direction | {recalls} | images | distinct texts |",
             "|---|---|" + "---|" * (len(ks) + 2)]  # fmt: skip
    for g, values in out.get("granularities", {}).items():
        for direction, short in DIRECTIONS:
            if direction in values:
                cells = " | ".join(_fmt(values[direction][f"R@{k}"]) for k in ks)
                lines.append(f"| {g} | {short} | {cells} | {values['images']} | {values['distinct_texts']} |")
    return lines + [""]


def format_table(rows: list[tuple[str, str, str]]) -> str:
    """A plain fixed-width table for the terminal."""
    header = ("task", "metric", "value [95% CI]; retrieval: R@K")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    line = "  ".join("-" * w for w in widths)
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))
    return "\n".join([fmt(header), line, *(fmt(r) for r in rows)])


def summary_lines(results: dict, run: Path, dataset: Path, out: Path) -> list[str]:
    """The end of an evaluation as `mgll evaluate` prints it (and `mgll demo run` after its evaluate step)."""
    splits = ", ".join(f"{k} {v}" for k, v in results["dataset"]["splits"].items())
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in results["timings"].items())
    return [
        f"evaluated {run} (step {results['run']['step']}) on {dataset} ({splits})",
        format_table(summary_rows(results)),
        f"time: {seconds}",
        f"wrote {Path(out) / RESULTS_JSON}, {Path(out) / RESULTS_MD} and {len(results['charts'])} chart(s)",
    ]


def _per_label_markdown(task: str, out: dict) -> list[str]:
    per = out.get("per_label") or out.get("per_class") or {}
    if not per:
        return []
    lines = [
        f"### {task}: per label",
        "",
        "| label | n+ | n- | AUC [95% CI] | AP | F1 | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in per.items():
        pos = entry.get("positives", entry.get("support", ""))
        neg = entry.get("negatives", "")
        note = entry.get("probe_note") or entry["auc"].get("note") or ""
        lines.append(
            f"| {name} | {pos} | {neg} | {_fmt(entry['auc'])} | {_fmt(entry.get('ap'))} | {_fmt(entry.get('f1'))} "
            f"| {note} |"
        )
    return lines + [""]


def markdown(results: dict) -> str:
    run, data = results["run"], results["dataset"]
    lines = [
        "# mgll evaluation",
        "",
        f"- run: `{run['path']}` (step {run['step']}, vision {run.get('model')}, loss {run.get('loss')}, "
        f"granularities {', '.join(run.get('granularities') or []) or 'n/a'})",
        f"- data: `{data['path']}` ({data['source']}, {data['kind']}, {len(data['labels'])} labels; "
        + ", ".join(f"{k} {v}" for k, v in data["splits"].items())
        + ")",
        f"- 95% intervals: percentile bootstrap over test {results['options'].get('bootstrap_unit', 'image')}s, "
        f"{results['options']['bootstrap']} resamples, "
        f"seed {results['options']['seed']}",
        "",
        "| task | metric | value |",
        "|---|---|---|",
        *(f"| {t} | {m} | {v} |" for t, m, v in summary_rows(results)),
        "",
    ]
    for task, out in results["tasks"].items():
        if task in CLASSIFICATION_TASKS:
            lines += _per_label_markdown(task, out)
        elif task == "retrieval":
            lines += _retrieval_markdown(out)
    charts = results.get("charts", [])
    if charts:
        lines += ["## Charts", "", *(f"![{Path(c).stem}]({c})" for c in charts), ""]
    notes = list(data.get("notes", [])) + list(results.get("notes", []))
    for task, out in results["tasks"].items():
        if out.get("note"):
            notes.append(f"{task}: {out['note']}")
        if out.get("labels_undefined"):
            notes.append(
                f"{task}: AUC undefined (one class in test) for {', '.join(out['labels_undefined'])}; "
                "left out of the macro averages"
            )
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(lines)


# tab20's strong shades first, then its light ones: neighbours in the legend never share a hue family
_PALETTE = [matplotlib.colormaps["tab20"](i) for i in (*range(0, 20, 2), *range(1, 20, 2))]
_LINESTYLES = ("-", "--", ":", "-.")


def curve_style(index: int) -> tuple[tuple[float, ...], str]:
    """A (colour, line style) distinct for each of the first 80 curves: 20 colours, then a new dash."""
    return _PALETTE[index % len(_PALETTE)], _LINESTYLES[(index // len(_PALETTE)) % len(_LINESTYLES)]


def draw_roc(ax, curves: dict) -> int:
    """ROC curve per label over the test images with a definite label; the legend gives each label's
    positives (an AUC over 5 positives says little). Returns the number of curves drawn."""
    y, scores, names = np.asarray(curves["y"]), np.asarray(curves["scores"]), curves["names"]
    drawn = 0
    for j, name in enumerate(names):
        known = y[:, j] != -1
        truth = y[known, j] == 1
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth, scores[known, j])
        colour, style = curve_style(drawn)
        label = f"{name} (n+ {int(truth.sum())}, AUC {roc_auc(truth, scores[known, j]):.3f})"
        ax.plot(fpr, tpr, lw=1.2, color=colour, ls=style, label=label)
        drawn += 1
    return drawn


def roc_chart(path: Path, title: str, curves: dict) -> Path | None:
    fig, ax = plt.subplots(figsize=(6.5, 6.5))
    if not draw_roc(ax, curves):
        plt.close(fig)
        return None
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(fontsize=6.5, loc="lower right", ncol=1 if len(curves["names"]) <= 14 else 2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def auc_bar_chart(path: Path, title: str, out: dict) -> Path | None:
    """Per-label AUC with 95% interval whiskers; undefined labels are listed, not drawn as zero."""
    per = out.get("per_label") or out.get("per_class") or {}
    names = [n for n, e in per.items() if e["auc"]["value"] is not None]
    if not names:
        return None
    values = np.asarray([per[n]["auc"]["value"] for n in names])
    cis = [per[n]["auc"].get("ci95") or [per[n]["auc"]["value"]] * 2 for n in names]
    err = np.abs(np.asarray(cis).T - values[None, :])
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(names) + 2), 4))
    ax.bar(range(len(names)), values, yerr=err, capsize=3, color="#4C72B0")
    ax.axhline(0.5, ls="--", color="grey", lw=0.8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="AUC (95% CI)", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def retrieval_chart(path: Path, out: dict) -> Path | None:
    granularities = [g for g, v in out.get("granularities", {}).items() if "image_to_text" in v]
    if not granularities:
        return None
    ks = out["ks"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    width = 0.8 / len(ks)
    for ax, direction, title in zip(axes, ("image_to_text", "text_to_image"), ("image → text", "text → image")):
        for i, k in enumerate(ks):
            values = [out["granularities"][g][direction][f"R@{k}"]["value"] or 0.0 for g in granularities]
            ax.bar(np.arange(len(granularities)) + i * width, values, width, label=f"R@{k}")
        ax.set_xticks(np.arange(len(granularities)) + width * (len(ks) - 1) / 2, granularities)
        ax.set(title=title, ylim=(0, 1.2), yticks=np.linspace(0, 1, 6))
        ax.legend(ncol=len(ks), loc="upper center", fontsize=8, frameon=False)
    axes[0].set_ylabel("recall")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def check_out_dir(out_dir: Path) -> None:
    """Write only into a new or empty folder or an earlier evaluation's: a person's folder could hold a
    results.json or results.md of their own, which this would replace. Raises EvaluationError (one line)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise EvaluationError(f"--out {out_dir} is a file; give a folder for the results")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not _holds_results(out_dir / RESULTS_JSON):
        raise EvaluationError(f"{out_dir} is not empty and holds no {RESULTS_JSON} that mgll evaluate wrote; "
                              "choose a new or empty --out")


def _holds_results(path: Path) -> bool:
    try:
        written = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(written, dict) and {"run", "dataset", "tasks"} <= set(written)


def write(out_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Write charts, results.json and results.md; returns the results as written (plain JSON values).

    Tasks may carry private `_curves` (test labels and scores) for the ROC charts; they are drawn and
    dropped, never stored.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = []
    for task, out in results["tasks"].items():
        curves = out.pop("_curves", None)
        if task in CLASSIFICATION_TASKS:
            slug = task.replace("-", "_")
            if curves is not None and roc_chart(out_dir / f"roc_{slug}.png", f"ROC — {task}", curves):
                charts.append(f"roc_{slug}.png")
            if auc_bar_chart(out_dir / f"auc_{slug}.png", f"per-label AUC — {task}", out):
                charts.append(f"auc_{slug}.png")
        elif task == "retrieval" and retrieval_chart(out_dir / "retrieval.png", out):
            charts.append("retrieval.png")
    results = clean({**results, "charts": charts})
    (out_dir / RESULTS_JSON).write_text(json.dumps(results, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    (out_dir / RESULTS_MD).write_text(markdown(results), encoding="utf-8")
    return results


def clean(value: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays unwrapped, paths as strings, NaN/inf as null."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value
