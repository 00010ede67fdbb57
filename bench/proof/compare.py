"""Every variant against the baseline: mean over seeds, and the paired bootstrap interval of the difference.

One replicate draws test patients with replacement (the same draw for every variant and seed, so the
comparison is paired: easy and hard patients cancel) and seeds with replacement (the same seed draw for
both sides of a difference: each seed is one shared initialisation and batch order), then takes the mean
over the drawn seeds of (variant - baseline) on the drawn patients. The interval is the 2.5 / 97.5
percentiles of that difference; it covers both test-set sampling and seed-to-seed variation.
"""

from __future__ import annotations

import warnings

import numpy as np

from bench.proof.scoring import PROBE_PARTS, Component, RunScores
from mgll_train.evaluate import metrics

PRIMARY = "probe_mean"


def component_values(component: Component, weights: np.ndarray) -> np.ndarray:
    """The component under weights [B, n]: an AUC per row, or a weighted hit rate."""
    if component.kind == "auc":
        return metrics.label_stats(component.y, component.scores, weights=weights, valid=component.valid)[:, 0]
    counted = weights * component.valid
    with np.errstate(invalid="ignore", divide="ignore"):
        return (counted @ component.y) / counted.sum(axis=1)


def metric_values(run: RunScores, name: str, weights: np.ndarray, memo: dict | None = None) -> np.ndarray:
    """[B]: the metric `name` (mean of its components; probe_mean of the four probe metrics). `memo`
    keeps each run's metrics for these weights, so probe_mean reuses its parts."""
    memo = {} if memo is None else memo
    key = (id(run), name)
    if key in memo:
        return memo[key]
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample where every component is undefined
        if name == PRIMARY:
            parts = [metric_values(run, part, weights, memo) for part in PROBE_PARTS if part in run.components]
            value = np.nanmean(np.stack(parts), axis=0) if parts else np.full(len(weights), np.nan)
        elif run.components.get(name):
            value = np.nanmean(np.stack([component_values(c, weights) for c in run.components[name]]), axis=0)
        else:
            value = np.full(len(weights), np.nan)
    memo[key] = value
    return value


def metric_names(runs: dict[str, list[RunScores]]) -> list[str]:
    names = {name for seeds in runs.values() for run in seeds for name in run.components}
    ordered = [PRIMARY] + [n for n in PROBE_PARTS if n in names]
    return ordered + sorted(names - set(ordered))


def compare(
    runs: dict[str, list[RunScores]], baseline: str, groups: np.ndarray, replicates: int, seed: int = 0
) -> dict[str, dict[str, dict]]:
    """{variant: {metric: {mean, seed_sd, diff_vs_<baseline>: {value, ci95}}}} over paired resamples."""
    n = len(groups)
    weights = (
        np.concatenate(list(metrics.weight_chunks(n, replicates, seed, groups))) if replicates else np.zeros((0, n))
    )
    ones = np.ones((1, n))
    seeds = len(runs[baseline])
    seed_draws = np.random.default_rng([seed, 1]).multinomial(seeds, [1 / seeds] * seeds, size=len(weights))
    out: dict[str, dict[str, dict]] = {}
    at_ones, at_weights = {}, {}
    for name in metric_names(runs):
        base_point = np.array([metric_values(r, name, ones, at_ones)[0] for r in runs[baseline]])
        base_reps = (
            np.stack([metric_values(r, name, weights, at_weights) for r in runs[baseline]], axis=1)
            if replicates
            else None
        )
        for variant, seeded in runs.items():
            point = np.array([metric_values(r, name, ones, at_ones)[0] for r in seeded])
            if not np.isfinite(point).any():
                continue
            entry = {
                "mean": float(np.nanmean(point)),
                "seed_sd": float(np.nanstd(point, ddof=1)) if len(point) > 1 else 0.0,
            }
            if variant != baseline and np.isfinite(base_point).all() and len(point) == seeds:
                diff = {"value": float(np.mean(point - base_point)), "ci95": None}
                if replicates:
                    reps = np.stack([metric_values(r, name, weights, at_weights) for r in seeded], axis=1)
                    drawn = (seed_draws * (reps - base_reps)).sum(axis=1) / seeds
                    finite = drawn[np.isfinite(drawn)]
                    diff["ci95"] = [float(v) for v in np.percentile(finite, [2.5, 97.5])] if finite.size else None
                entry[f"diff_vs_{baseline}"] = diff
            out.setdefault(variant, {})[name] = entry
    return out
