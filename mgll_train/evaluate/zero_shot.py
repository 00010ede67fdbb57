"""Zero-shot classification from text prompts, with no training on the downstream labels.

Multi-label protocol (the one used for chest X-ray CLIP models, e.g. CheXzero): for each finding a
positive prompt ("pleural effusion") and a negative prompt ("no pleural effusion"); the image's score is
the softmax over that pair of scaled cosine similarities, i.e. P(positive | image, {pos, neg}). A run
trained on several granularities gets one prompt pair per granularity it knows (e.g. the `disease`
phrase and a `description`-style sentence); the pair's embeddings are averaged over templates (prompt
ensembling). Labels: positive = 1 against negative or absent; uncertain (-1) images are excluded for that
label. Accuracy and F1 use the pair's natural threshold 0.5.

Multi-class (a CSV with one class column): one prompt per class, softmax over all classes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mgll_train.evaluate import metrics
from mgll_train.evaluate.downstream import Downstream, EvaluationError
from mgll_train.evaluate.features import Run, logit_scale, text_features

# (positive, negative) templates per granularity the run was trained on; `disease` is always used.
TEMPLATES: dict[str, tuple[str, str]] = {
    "disease": ("{finding}", "no {finding}"),
    "description": ("There is {finding}.", "There is no {finding}."),
    "explanation": ("{Finding} is present on the radiograph.", "{Finding} is absent on the radiograph."),
}
NORMAL_LABEL_NEGATIVE = "abnormal"


def _fill(template: str, finding: str) -> str:
    return template.format(finding=finding, Finding=finding[:1].upper() + finding[1:])


def default_prompts(label_names: list[str], granularities: list[str]) -> dict[str, dict[str, list[str]]]:
    """Prompt pairs per label for the run's granularities.

    A label that is itself a negation ("No Finding") keeps its name as the positive prompt and uses
    "abnormal" as the negative, since "no no finding" is not language the model has seen.
    """
    used = ["disease"] + [g for g in granularities if g in TEMPLATES and g != "disease"]
    prompts = {}
    for name in label_names:
        finding = name.strip().lower()
        if finding.startswith("no "):
            prompts[name] = {"positive": [finding], "negative": [NORMAL_LABEL_NEGATIVE]}
            continue
        prompts[name] = {
            "positive": [_fill(TEMPLATES[g][0], finding) for g in used],
            "negative": [_fill(TEMPLATES[g][1], finding) for g in used],
        }
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


def evaluate(
    run: Run,
    data: Downstream,
    test_rows: np.ndarray,
    test_emb: np.ndarray,
    *,
    prompts_file: Path | None = None,
    bootstrap: int = metrics.DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> dict:
    prompts = (
        load_prompts(prompts_file, data.label_names, data.kind)
        if prompts_file
        else default_prompts(data.label_names, run.granularities)
    )
    probabilities = scores(run, test_emb, prompts, data.kind)
    result: dict = {"protocol": "multiclass-softmax" if data.kind == "multiclass" else "pairwise-softmax"}
    if data.kind == "multiclass":
        result.update(metrics.multiclass_report(data.label_names, data.labels[test_rows], probabilities, bootstrap, seed))
    else:
        y = data.labels[test_rows]
        result.update(
            metrics.multilabel_report(
                data.label_names, (y == 1), probabilities, y != -1, [0.5] * len(data.label_names), bootstrap, seed
            )
        )
    result["prompts"] = prompts
    result["_curves"] = {"y": data.multilabel_matrix()[test_rows], "scores": probabilities, "names": data.label_names}
    return result
