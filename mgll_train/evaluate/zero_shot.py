"""Zero-shot classification from text prompts, with no training on the downstream labels.

Multi-label protocol (the one used for chest X-ray CLIP models, e.g. CheXzero): for each finding a
positive and a negative prompt; the image's score is the softmax over that pair of scaled cosine
similarities, i.e. P(positive | image, {pos, neg}). Several texts per side are averaged into one
embedding (prompt ensembling).

The prompts are in-distribution: a model has only ever seen the texts its dataset holds, and a
"no effusion" it never trained on lands anywhere. So the prompts come from the downstream data's own
training texts at each granularity the run was trained with: the positive side is the commonest texts
of train images whose only positive finding is this one (else of any image with it), the negative side
the commonest texts of train images without it -- for most findings, the normal studies' "no finding"
texts. Data without texts (a CSV of labels) falls back on the disease level's wording: the finding's
name against "no finding". `--prompts FILE` replaces all of this.

Accuracy and F1 threshold each label's score at the value that maximises F1 on the validation split,
as the linear probe does; AUC needs no threshold. Labels: positive = 1 against negative or absent;
uncertain (-1) images are excluded for that label. Multi-class (a CSV with one class column): one
prompt per class, softmax over all classes.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from mgll_train.evaluate import metrics
from mgll_train.evaluate.downstream import Downstream, EvaluationError
from mgll_train.evaluate.features import Run, logit_scale, text_features

PROMPTS_PER_SIDE = 5  # the commonest texts averaged on each side of a pair
NORMAL_TEXT = "no finding"  # the disease level's text for a normal study (mgll_data.reports.granularity)
NORMAL_LABEL_NEGATIVE = "abnormal"  # the category level's text for any other study


def fallback_prompts(label_names: list[str], kind: str) -> dict[str, dict[str, list[str]]]:
    """Disease-level wording when the data carries no texts: "<finding>" against "no finding"."""
    prompts = {}
    for name in label_names:
        finding = name.strip().lower()
        if kind == "multiclass":
            prompts[name] = {"positive": [finding], "negative": []}
        elif finding == NORMAL_TEXT:
            prompts[name] = {"positive": [finding], "negative": [NORMAL_LABEL_NEGATIVE]}
        else:
            prompts[name] = {"positive": [finding], "negative": [NORMAL_TEXT]}
    return prompts


def _commonest(texts: list[str | None], rows: np.ndarray) -> list[str]:
    counts = Counter(texts[i] for i in rows if texts[i])
    return [text for text, _ in counts.most_common(PROMPTS_PER_SIDE)]


def in_distribution_prompts(
    data: Downstream, rows: np.ndarray, granularities: list[str]
) -> dict[str, dict[str, list[str]]] | None:
    """Prompt pairs per label from the texts of `rows` (training images); None when the data has no
    text at any of the run's granularities."""
    levels = [g for g in granularities if g in data.texts]
    if not levels or data.kind != "multilabel" or len(rows) == 0:
        return None
    y = data.labels[rows]
    positives = y == 1
    prompts = {}
    for j, name in enumerate(data.label_names):
        alone = rows[positives[:, j] & (positives.sum(axis=1) == 1)]
        with_it = alone if len(alone) else rows[positives[:, j]]
        without = rows[y[:, j] == 0]
        pos = [t for g in levels for t in _commonest(data.texts[g], with_it)]
        neg = [t for g in levels for t in _commonest(data.texts[g], without)]
        if not pos or not neg:
            pos, neg = pos or fallback_prompts([name], data.kind)[name]["positive"], neg or [NORMAL_TEXT]
        prompts[name] = {"positive": pos, "negative": neg}
    return prompts


def load_prompts(path: Path, label_names: list[str], kind: str) -> dict[str, dict[str, list[str]]]:
    """A JSON file {label: {"positive": [...], "negative": [...]}} (multi-class: {class: [...]})."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvaluationError(f"cannot read prompts file {path}: {type(exc).__name__}") from None
    missing = [n for n in label_names if n not in raw]
    if missing:
        raise EvaluationError(f"prompts file {Path(path).name} has no prompts for {missing}")
    out = {}
    for name in label_names:
        entry = raw[name]
        if kind == "multiclass":
            entry = {"positive": [entry] if isinstance(entry, str) else list(entry), "negative": []}
        elif not (isinstance(entry, dict) and entry.get("positive") and entry.get("negative")):
            raise EvaluationError(f"prompts for {name!r} need non-empty 'positive' and 'negative' lists")
        out[name] = {"positive": list(entry["positive"]), "negative": list(entry.get("negative") or [])}
    return out


def _ensemble(run: Run, texts: list[str]) -> np.ndarray:
    emb = text_features(run, texts).mean(axis=0)
    return emb / max(float(np.linalg.norm(emb)), 1e-12)


def scores(run: Run, image_emb: np.ndarray, prompts: dict[str, dict[str, list[str]]], kind: str) -> np.ndarray:
    """P(label) per image [n, L]: pairwise softmax (multi-label) or softmax over classes (multi-class)."""
    scale = logit_scale(run)
    names = list(prompts)
    positives = np.stack([_ensemble(run, prompts[n]["positive"]) for n in names])
    pos_logits = scale * image_emb @ positives.T
    if kind == "multiclass":
        shifted = pos_logits - pos_logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=1, keepdims=True)
    negatives = np.stack([_ensemble(run, prompts[n]["negative"]) for n in names])
    neg_logits = scale * image_emb @ negatives.T
    return 1.0 / (1.0 + np.exp(-(pos_logits - neg_logits)))


def val_thresholds(y_val: np.ndarray, val_scores: np.ndarray) -> tuple[list[float], dict[int, str]]:
    """Per label, the score threshold with the best validation F1 (0.5 and a note without positives)."""
    thresholds, notes = [], {}
    for j in range(y_val.shape[1]):
        known = y_val[:, j] != -1
        t = metrics.best_f1_threshold(y_val[known, j] == 1, val_scores[known, j])
        if t is None:
            t, notes[j] = 0.5, "validation split has no positive for this label: threshold 0.5"
        thresholds.append(float(t))
    return thresholds, notes


def evaluate(
    run: Run,
    data: Downstream,
    rows: dict[str, np.ndarray],
    emb: dict[str, np.ndarray],
    *,
    prompts_file: Path | None = None,
    bootstrap: int = metrics.DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> dict:
    """`rows` / `emb`: the row indices of every split and the image embeddings of val and test."""
    source = "file"
    if prompts_file:
        prompts = load_prompts(prompts_file, data.label_names, data.kind)
    else:
        prompts = in_distribution_prompts(data, rows["train"] if len(rows["train"]) else rows["val"], run.granularities)
        source = "train texts" if prompts else "disease-level fallback"
        prompts = prompts or fallback_prompts(data.label_names, data.kind)
    test_rows = rows["test"]
    probabilities = scores(run, emb["test"], prompts, data.kind)
    groups = data.groups(test_rows)
    result: dict = {
        "protocol": "multiclass-softmax" if data.kind == "multiclass" else "pairwise-softmax",
        "prompt_source": source,
    }
    if data.kind == "multiclass":
        result.update(
            metrics.multiclass_report(data.label_names, data.labels[test_rows], probabilities, bootstrap, seed, groups)
        )
    else:
        y_val = data.labels[rows["val"]]
        thresholds, notes = val_thresholds(y_val, scores(run, emb["val"], prompts, data.kind))
        y = data.labels[test_rows]
        result.update(
            metrics.multilabel_report(
                data.label_names, y == 1, probabilities, y != -1, thresholds, bootstrap, seed, groups
            )
        )
        for j, note in notes.items():
            result["per_label"][data.label_names[j]]["threshold_note"] = note
        result["thresholds"] = "best F1 on the validation split"
    result["prompts"] = prompts
    result["_curves"] = {"y": data.multilabel_matrix()[test_rows], "scores": probabilities, "names": data.label_names}
    return result
