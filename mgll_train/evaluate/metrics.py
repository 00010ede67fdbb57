"""Classification and retrieval metrics with bootstrap 95% confidence intervals.

Every metric is written over *sample weights*: the point estimate uses weight 1 per test image and a
bootstrap replicate uses the multinomial counts of a resample with replacement. Images of one patient
are not independent (two views, follow-ups), so when `groups` (a patient index per image) is given a
replicate resamples patients and every image counts as often as its patient was drawn (the cluster
bootstrap); without it, images are resampled. Resampling therefore
never re-sorts scores (they are sorted once per label) and all replicates are computed together as
one [B, n] array (AUC, AP, accuracy and F1 of 200 resamples of 5,000 images: 0.3 s, about 30x faster
than calling scikit-learn per resample, measured on this project's 2-core dev machine under load).

Undefined values (AUC or AP with one class only; F1 with no positives and no predictions) are `None`
in the point estimate and NaN inside replicates; a replicate that hits an undefined value is left out
of the interval, and `Estimate.note` says why a point estimate is missing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

DEFAULT_BOOTSTRAP = 1000
_CHUNK_ELEMENTS = 4_000_000  # replicates x samples held at once (float32: 16 MB per copy)


@dataclass
class Estimate:
    """A metric value with its bootstrap 95% interval (percentile method)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0
    note: str | None = None

    def to_dict(self) -> dict:
        out = {"value": self.value, "ci95": [self.low, self.high] if self.low is not None else None, "n": self.n}
        if self.note:
            out["note"] = self.note
        return out


def _as_2d(weights: np.ndarray) -> tuple[np.ndarray, bool]:
    w = np.asarray(weights, dtype=np.float64)
    return (w[None, :], True) if w.ndim == 1 else (w, False)


def _tie_groups(sorted_scores: np.ndarray) -> np.ndarray:
    """Start index of each run of equal scores (ties count as one threshold, as in scikit-learn)."""
    if sorted_scores.size == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(np.diff(sorted_scores) != 0) + 1
    return np.concatenate([[0], change])


def label_stats(
    y_true: np.ndarray,
    scores: np.ndarray,
    threshold: float = np.inf,
    weights: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """[b, 4]: AUC, AP, accuracy and F1 (at `score >= threshold`) of one label under weights [n] or [b, n]."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    w, _ = _as_2d(np.ones(len(s)) if weights is None else weights)
    keep = np.ones(len(s), bool) if valid is None else np.asarray(valid, bool)
    return _Label.make(y, s, keep, s >= threshold).stats(w)


def roc_auc(y_true: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | float:
    """Area under the ROC curve (Mann-Whitney form, ties count one half); NaN with a single class.

    `weights` of shape [n] gives one value, of shape [B, n] one value per row (a bootstrap replicate).
    """
    out = label_stats(y_true, scores, weights=weights)[:, 0]
    return float(out[0]) if weights is None or np.ndim(weights) == 1 else out


def weighted_mean(values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | float:
    """Mean of a per-sample quantity (a hit, a correct prediction) under sample weights."""
    v = np.asarray(values, dtype=np.float64)
    w, single = _as_2d(np.ones(len(v)) if weights is None else weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (w @ v) / w.sum(axis=1)
    return float(out[0]) if single else out


def best_f1_threshold(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """The score threshold that maximises F1 (used on the validation split; None without positives)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.sum() == 0 or len(s) == 0:
        return None
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    ends = np.concatenate([np.flatnonzero(np.diff(s_sorted) != 0), [len(s_sorted) - 1]])
    tp = np.cumsum(y_sorted)[ends]
    predicted = ends + 1
    f1 = 2 * tp / (predicted + y.sum())
    return float(s_sorted[ends[int(np.argmax(f1))]])


def weight_chunks(n: int, replicates: int, seed: int, groups: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Resampling counts (how often each test image is drawn), a memory-bounded [b, n] block at a time.

    With `groups` (an integer cluster id per image, e.g. its patient), clusters are drawn with
    replacement and each image takes its cluster's count. The blocks depend only on (n, replicates,
    seed, groups), so every metric -- and every model scored on the same images -- sees the same
    resamples, which is what makes a paired comparison paired.

    float32 halves the memory traffic of the sorts' gathers; counts stay exact, and the rounding of large
    sums (~1e-7 relative) is far below any interval's width. Point estimates use float64 weights.
    """
    rng = np.random.default_rng(seed)
    cluster, clusters = _clusters(n, groups)
    chunk = max(1, _CHUNK_ELEMENTS // max(n, clusters, 1))
    for start in range(0, replicates, chunk):
        b = min(chunk, replicates - start)
        if n == 0:
            yield np.zeros((b, 0), dtype=np.float32)
            continue
        draws = rng.integers(0, clusters, size=(b, clusters)) + (np.arange(b) * clusters)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * clusters).reshape(b, clusters).astype(np.float32)
        yield counts if cluster is None else counts[:, cluster]


def _clusters(n: int, groups: np.ndarray | None) -> tuple[np.ndarray | None, int]:
    """(cluster index per image or None, number of clusters) -- any hashable ids become 0..G-1."""
    if groups is None:
        return None, n
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} samples")
    _, index = np.unique(np.asarray(groups), return_inverse=True)
    return index.ravel(), int(index.max()) + 1 if n else 0


StatFn = Callable[[np.ndarray], np.ndarray]


def bootstrap(
    stat: StatFn, n: int, replicates: int = DEFAULT_BOOTSTRAP, seed: int = 0, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The point value of `stat` (all weights 1) and its values on every resample.

    `stat` maps weights [b, n] to values [b, ...] (one scalar, or e.g. [labels, metrics] per row).
    """
    point = np.asarray(stat(np.ones((1, n))), dtype=np.float64)[0]
    parts = [np.asarray(stat(w), dtype=np.float64) for w in weight_chunks(n, replicates, seed, groups)]
    values = np.concatenate(parts, axis=0) if parts else np.zeros((0,) + point.shape)
    return point, values


def interval(point: float, values: np.ndarray, n: int, note: str | None = None) -> Estimate:
    """Estimate from a point value and its replicates; NaN replicates (undefined resamples) are dropped."""
    if point is None or not np.isfinite(point):
        return Estimate(value=None, n=n, note=note or "undefined on this test set")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Estimate(value=float(point), n=n, note=note)
    low, high = np.percentile(finite, [2.5, 97.5])
    dropped = values.size - finite.size
    if dropped and note is None:
        note = f"{dropped} of {values.size} bootstrap resamples undefined (single class) and left out"
    return Estimate(value=float(point), low=float(low), high=float(high), n=n, note=note)


def estimate(
    stat: StatFn,
    n: int,
    replicates: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    note: str | None = None,
    groups: np.ndarray | None = None,
) -> Estimate:
    """A scalar statistic of sample weights with its 95% interval."""
    point, values = bootstrap(stat, n, replicates, seed, groups)
    return interval(float(point), values, n, note)


def paired_difference(
    stat_a: StatFn,
    stat_b: StatFn,
    n: int,
    replicates: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> Estimate:
    """stat_a - stat_b on the same test images with the 95% interval of the difference: both are scored
    on every resample together, so what the two share (the hard and the easy patients) cancels -- far
    narrower, and the right test, compared with two separate intervals."""
    return estimate(lambda w: np.asarray(stat_a(w)) - np.asarray(stat_b(w)), n, replicates, seed, groups=groups)


BINARY_METRICS = ("auc", "ap", "accuracy", "f1")


@dataclass
class _Label:
    """One label's test images with a definite status, pre-sorted once for every resample."""

    rows: np.ndarray  # indices into the test set
    order: np.ndarray  # ascending score order within rows
    starts: np.ndarray  # tie groups in that order
    positive: np.ndarray  # bool, in that order
    predicted: np.ndarray  # bool, in that order

    @classmethod
    def make(cls, y: np.ndarray, scores: np.ndarray, valid: np.ndarray, predicted: np.ndarray) -> _Label:
        rows = np.flatnonzero(valid)
        order = np.argsort(scores[rows], kind="mergesort")
        return cls(
            rows,
            order,
            _tie_groups(scores[rows][order]),
            y[rows][order].astype(bool),
            predicted[rows][order].astype(bool),
        )

    def stats(self, w: np.ndarray) -> np.ndarray:
        """[b, 4]: AUC, AP, accuracy, F1 under weights w [b, n] (one sort, one gather for all four)."""
        if self.rows.size == 0:
            return np.full((w.shape[0], 4), np.nan)
        ws = w[:, self.rows[self.order]]
        pos = np.where(self.positive, ws, 0.0)
        neg = ws - pos
        pos_g = np.add.reduceat(pos, self.starts, axis=1)
        neg_g = np.add.reduceat(neg, self.starts, axis=1)
        total_pos, total_neg = pos_g.sum(axis=1), neg_g.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            neg_below = np.cumsum(neg_g, axis=1) - neg_g
            auc = np.sum(pos_g * (neg_below + 0.5 * neg_g), axis=1) / (total_pos * total_neg)
            tp_desc, fp_desc = pos_g[:, ::-1], neg_g[:, ::-1]
            cum_tp = np.cumsum(tp_desc, axis=1)
            cum_all = cum_tp + np.cumsum(fp_desc, axis=1)
            precision = np.where(cum_all > 0, cum_tp / np.where(cum_all > 0, cum_all, 1.0), 0.0)
            ap = np.sum(tp_desc * precision, axis=1) / total_pos
            tp = ws @ (self.positive & self.predicted).astype(ws.dtype)
            fp = ws @ (~self.positive & self.predicted).astype(ws.dtype)
            fn = total_pos - tp
            accuracy = (total_neg - fp + tp) / (total_pos + total_neg)
            f1 = 2 * tp / (2 * tp + fp + fn)
        auc[(total_pos == 0) | (total_neg == 0)] = np.nan
        ap[total_pos == 0] = np.nan
        f1[(2 * tp + fp + fn) == 0] = np.nan
        return np.stack([auc, ap, accuracy, f1], axis=1)


def _per_label_bootstrap(
    y_true: np.ndarray,
    scores: np.ndarray,
    valid: np.ndarray,
    predicted: np.ndarray,
    replicates: int,
    seed: int,
    groups: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Point values [L, 4] and replicates [B, L, 4] of every label, all labels on the same resamples."""
    labels = [_Label.make(y_true[:, j], scores[:, j], valid[:, j], predicted[:, j]) for j in range(y_true.shape[1])]
    stat = lambda w: np.stack([label.stats(w) for label in labels], axis=1)
    return bootstrap(stat, y_true.shape[0], replicates, seed, groups)


def _label_notes(y: np.ndarray, valid: np.ndarray) -> dict[str, str | None]:
    definite = y[valid.astype(bool)].astype(bool)
    if definite.size == 0:
        return {"auc": "no test images with a definite label", "ap": "no test images with a definite label"}
    if definite.all() or not definite.any():
        which = "positive" if definite.all() else "negative"
        return {
            "auc": f"only {which} test images: AUC undefined",
            "ap": None if definite.any() else "no positive test image: AP undefined",
        }
    return {}


def _macro(point: np.ndarray, values: np.ndarray, defined: list[int], n: int) -> dict[str, dict]:
    """Mean over the defined labels of each metric; a label undefined in a resample is skipped there."""
    if not defined:
        return {m: Estimate(value=None, n=n, note="no label could be scored").to_dict() for m in BINARY_METRICS}
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample where every label is undefined
        for k, metric in enumerate(BINARY_METRICS):
            mean_point = np.nanmean(point[defined, k])
            mean_values = np.nanmean(values[:, defined, k], axis=1) if len(values) else np.zeros(0)
            out[metric] = interval(float(mean_point), mean_values, n).to_dict()
    return out


def multilabel_report(
    names: list[str],
    y_true: np.ndarray,
    scores: np.ndarray,
    valid: np.ndarray,
    thresholds: list[float],
    replicates: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> dict:
    """Per-label and macro metrics of multi-label scores [n, L]; `valid` [n, L] masks uncertain labels.

    Macro averages run over the labels whose test AUC is defined; they share the per-label resamples,
    so their interval reflects the correlation between labels. `groups`: patient per image.
    """
    y = np.asarray(y_true).astype(bool)
    valid = np.asarray(valid, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n = y.shape[0]
    point, values = _per_label_bootstrap(y, s, valid, s >= np.asarray(thresholds)[None, :], replicates, seed, groups)
    per_label = {}
    for j, name in enumerate(names):
        notes = _label_notes(y[:, j], valid[:, j])
        per_label[name] = {
            "positives": int((y[:, j] & valid[:, j]).sum()),
            "negatives": int((~y[:, j] & valid[:, j]).sum()),
            "excluded": int((~valid[:, j]).sum()),
            "threshold": float(thresholds[j]),
            **{
                m: interval(point[j, k], values[:, j, k], n, notes.get(m)).to_dict()
                for k, m in enumerate(BINARY_METRICS)
            },
        }
    defined = [j for j in range(len(names)) if np.isfinite(point[j, 0])]
    return {
        "n_test": int(n),
        "macro": _macro(point, values, defined, n),
        "labels_scored": len(defined),
        "labels_undefined": [name for j, name in enumerate(names) if j not in defined],
        "per_label": per_label,
    }


def multiclass_report(
    classes: list[str],
    y_true: np.ndarray,
    probabilities: np.ndarray,
    replicates: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> dict:
    """Accuracy, macro F1 and one-vs-rest macro AUC of single-label predictions (argmax of [n, C])."""
    y = np.asarray(y_true, dtype=np.int64)
    n, c = len(y), len(classes)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(n, c)
    one_hot = np.eye(c, dtype=bool)[y] if n else np.zeros((0, c), bool)
    predicted = np.eye(c, dtype=bool)[probabilities.argmax(axis=1)] if n else np.zeros((0, c), bool)
    correct = (predicted & one_hot).any(axis=1).astype(np.float64)
    labels = [_Label.make(one_hot[:, j], probabilities[:, j], np.ones(n, bool), predicted[:, j]) for j in range(c)]

    def stat(w: np.ndarray) -> np.ndarray:
        """[b, C*4 + 1]: every class's four metrics, then overall accuracy."""
        per_class = np.stack([label.stats(w) for label in labels], axis=1).reshape(len(w), -1)
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = (w @ correct.astype(w.dtype)) / w.sum(axis=1)
        return np.concatenate([per_class, accuracy[:, None]], axis=1)

    point, values = bootstrap(stat, n, replicates, seed, groups)
    per_point, per_values = point[:-1].reshape(c, 4), values[:, :-1].reshape(len(values), c, 4)
    per_class = {}
    for j, name in enumerate(classes):
        notes = _label_notes(one_hot[:, j], np.ones(n, bool))
        per_class[name] = {
            "support": int(one_hot[:, j].sum()),
            **{
                m: interval(per_point[j, k], per_values[:, j, k], n, notes.get(m)).to_dict()
                for k, m in enumerate(BINARY_METRICS)
                if m != "accuracy"
            },
        }
    auc_defined = [j for j in range(c) if np.isfinite(per_point[j, 0])]
    f1_defined = [j for j in range(c) if np.isfinite(per_point[j, 3])]
    macro = {
        "auc": _macro(per_point, per_values, auc_defined, n)["auc"],
        "f1": _macro(per_point, per_values, f1_defined, n)["f1"],
        "accuracy": interval(point[-1], values[:, -1], n).to_dict(),
    }
    return {"n_test": int(n), "macro": macro, "per_class": per_class}
