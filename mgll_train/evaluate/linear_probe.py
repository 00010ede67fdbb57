"""Linear probe: logistic regression on frozen image features (train), tuned on val, scored on test.

Features are standardised with the train split's mean/std. Multi-label: one binary logistic regression
per label (one-vs-rest); images uncertain for a label (-1) are left out of that label's training and
scoring. The inverse regularisation C is chosen per label from a small grid by validation AUC, and the
decision threshold by validation F1 (0.5 when validation has no positive for the label, with a note).
Multi-class: one multinomial regression, C chosen by validation accuracy, argmax prediction.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from mgll_train.evaluate import metrics
from mgll_train.evaluate.downstream import Downstream, EvaluationError

C_GRID = (0.01, 0.1, 1.0, 10.0)
MAX_ITER = 1000


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean = train.mean(axis=0)
    std = train.std(axis=0) + 1e-6
    return [(x - mean) / std for x in (train, *others)]


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> LogisticRegression:
    model = LogisticRegression(C=c, max_iter=MAX_ITER, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


def fit_binary(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    c_grid: tuple[float, ...] = C_GRID,
    seed: int = 0,
) -> tuple[LogisticRegression | None, float, float, str | None]:
    """(model, C, threshold, note) for one label; model None when train holds one class only."""
    if len(np.unique(y_train)) < 2:
        return None, float("nan"), 0.5, "train split has only one class for this label: probe not fitted"
    val_defined = len(np.unique(y_val)) == 2
    best = None
    for c in c_grid if val_defined else (1.0,):
        model = _fit(x_train, y_train, c, seed)
        score = metrics.roc_auc(y_val, model.predict_proba(x_val)[:, 1]) if val_defined else 0.0
        if best is None or score > best[0]:
            best = (score, c, model)
    _, c, model = best
    note = None
    threshold = metrics.best_f1_threshold(y_val, model.predict_proba(x_val)[:, 1]) if len(y_val) else None
    if threshold is None:
        threshold, note = 0.5, "validation split has no positive for this label: threshold 0.5"
    elif not val_defined:
        note = "validation split has one class for this label: C fixed at 1.0"
    return model, c, float(threshold), note


def evaluate(
    data: Downstream,
    rows: dict[str, np.ndarray],
    emb: dict[str, np.ndarray],
    *,
    bootstrap: int = metrics.DEFAULT_BOOTSTRAP,
    seed: int = 0,
    c_grid: tuple[float, ...] = C_GRID,
) -> dict:
    """`rows`/`emb` hold the row indices and frozen features of the train, val and test splits."""
    if len(rows["train"]) == 0:
        raise EvaluationError("linear-probe needs a train split, and the downstream data has none")
    x_train, x_val, x_test = _standardise(emb["train"], emb["val"], emb["test"])
    if data.kind == "multiclass":
        return _multiclass(data, rows, x_train, x_val, x_test, bootstrap, seed, c_grid)

    labels = data.labels
    y_test = labels[rows["test"]]
    probabilities = np.full(y_test.shape, 0.5)
    thresholds, chosen_c, notes = [], {}, {}
    for j, name in enumerate(data.label_names):
        train_ok = labels[rows["train"], j] != -1
        val_ok = labels[rows["val"], j] != -1
        model, c, threshold, note = fit_binary(
            x_train[train_ok], labels[rows["train"], j][train_ok] == 1,
            x_val[val_ok], labels[rows["val"], j][val_ok] == 1,
            c_grid, seed,
        )  # fmt: skip
        if model is not None:
            probabilities[:, j] = model.predict_proba(x_test)[:, 1]
        thresholds.append(threshold)
        chosen_c[name] = None if np.isnan(c) else c
        if note:
            notes[name] = note
    valid = y_test != -1
    fitted = np.asarray([chosen_c[n] is not None for n in data.label_names])
    result = metrics.multilabel_report(
        data.label_names, y_test == 1, probabilities, valid & fitted[None, :], thresholds, bootstrap, seed,
        data.groups(rows["test"]),
    )  # fmt: skip
    for j, name in enumerate(data.label_names):
        entry = result["per_label"][name]
        entry["positives"] = int(((y_test[:, j] == 1) & valid[:, j]).sum())  # unfitted labels were masked above
        entry["negatives"] = int(((y_test[:, j] == 0) & valid[:, j]).sum())
        entry["excluded"] = int((~valid[:, j]).sum())
        if name in notes:
            entry["probe_note"] = notes[name]
    result["C"] = chosen_c
    result["train_images"], result["val_images"] = int(len(rows["train"])), int(len(rows["val"]))
    result["_curves"] = {
        "y": data.multilabel_matrix()[rows["test"]],
        "scores": probabilities,
        "names": data.label_names,
    }
    return result


def _multiclass(data, rows, x_train, x_val, x_test, bootstrap, seed, c_grid) -> dict:
    y_train, y_val = data.labels[rows["train"]], data.labels[rows["val"]]
    if len(np.unique(y_train)) < 2:
        raise EvaluationError("linear-probe: the train split holds a single class")
    best = None
    for c in c_grid if len(y_val) else (1.0,):
        model = _fit(x_train, y_train, c, seed)
        score = float((model.predict(x_val) == y_val).mean()) if len(y_val) else 0.0
        if best is None or score > best[0]:
            best = (score, c, model)
    _, c, model = best
    probabilities = np.zeros((len(x_test), len(data.label_names)))
    probabilities[:, model.classes_] = model.predict_proba(x_test)
    result = metrics.multiclass_report(
        data.label_names, data.labels[rows["test"]], probabilities, bootstrap, seed, data.groups(rows["test"])
    )
    result["C"] = c
    result["train_images"], result["val_images"] = int(len(rows["train"])), int(len(rows["val"]))
    result["_curves"] = {
        "y": data.multilabel_matrix()[rows["test"]],
        "scores": probabilities,
        "names": data.label_names,
    }
    return result
