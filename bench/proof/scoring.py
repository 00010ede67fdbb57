"""Score one trained model on the proof's test split, keeping per-image scores for the paired bootstrap.

Every metric is a mean of *components*; a component is either an AUC (labels, scores, which images
count) or a hit rate (hits, which images count). Keeping the per-image arrays rather than the numbers
lets `compare.py` recompute every metric on any patient resample. Every choice -- the probes'
regularisation, which few-shot images -- is made on train / val; the test split is only scored.

Metrics (all on frozen features; probes on the tower's pooled features, standardised on train):
    probe_disease      macro AUC of one logistic regression per finding
    probe_side/size    mean over findings of the AUC of a probe telling left from right (small from
                       large) among the images that have the finding
    probe_severity     the same for mild / moderate / severe (one-vs-rest AUC of a 3-class probe)
    probe_mean         the mean of the four above: how much of what the texts say the images learnt
    fewshot_1/10       probe_disease trained on 1% / 10% of the train patients
    zero_shot          macro AUC of the prompt pair (in-distribution wording) per finding
    retrieval_<level>  image->text R@5 at that level (own text in the top 5 distinct texts)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from bench.proof.generator import ProofData
from bench.proof.text import CONCAT, TextTable
from mgll_train.evaluate.retrieval import best_relevant_rank

C_GRID = (0.03, 0.3)
FEW_SHOT = (("fewshot_1", 0.01), ("fewshot_10", 0.10))
PROBE_PARTS = ("probe_disease", "probe_side", "probe_size", "probe_severity")
RECALL_AT = 5


@dataclass
class Component:
    """One AUC (kind "auc": y, scores) or one hit rate (kind "hits": y holds the hits) over `valid` images."""

    kind: str
    y: np.ndarray
    scores: np.ndarray | None
    valid: np.ndarray


@dataclass
class RunScores:
    components: dict[str, list[Component]] = field(default_factory=dict)
    diagnostics: dict[str, float] = field(default_factory=dict)  # plain numbers, not bootstrapped


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> LogisticRegression:
    # one BLAS thread: on a shared machine a threaded L-BFGS spins and runs ~5x slower
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=c, max_iter=300, random_state=seed).fit(x, y)


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from mgll_train.evaluate.metrics import roc_auc

    return roc_auc(y, s) if len(np.unique(y)) == 2 else np.nan


def probe_scores(x: dict[str, np.ndarray], y: dict[str, np.ndarray], seed: int) -> np.ndarray | None:
    """Test scores [n_test, classes] of the probe whose C has the best val AUC (None: train has one class)."""
    classes = np.unique(y["train"])
    if len(classes) < 2:
        return None
    best = None
    for c in C_GRID:
        model = _fit(x["train"], y["train"], c, seed)
        val = model.predict_proba(x["val"])
        aucs = [a for j, k in enumerate(model.classes_) if np.isfinite(a := _auc(y["val"] == k, val[:, j]))]
        score = float(np.mean(aucs)) if aucs else np.nan
        if best is None or (np.isfinite(score) and not score <= best[0]):
            best = (score, model)
    out = np.full((len(x["test"]), int(classes.max()) + 1), np.nan)
    out[:, best[1].classes_.astype(int)] = best[1].predict_proba(x["test"])
    return out


def _standardised(features: np.ndarray, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    mean, std = features[rows["train"]].mean(0), features[rows["train"]].std(0) + 1e-6
    return {s: (features[r] - mean) / std for s, r in rows.items()}


def _disease_components(x, labels, rows, seed) -> list[Component]:
    out = []
    for j in range(labels.shape[1]):
        keep = {s: labels[r, j] != -1 for s, r in rows.items()}
        scores = probe_scores(
            {s: x[s][keep[s]] for s in rows}, {s: labels[r, j][keep[s]] == 1 for s, r in rows.items()}, seed
        )
        full = np.full(len(rows["test"]), np.nan)
        if scores is not None:
            full[keep["test"]] = scores[:, 1]
        out.append(Component("auc", labels[rows["test"], j] == 1, full, keep["test"] & np.isfinite(full)))
    return out


def _attribute_components(x, values: np.ndarray, rows, seed) -> list[Component]:
    """Per finding, a probe over the images with it; binary -> one AUC, k classes -> k one-vs-rest AUCs."""
    out = []
    for j in range(values.shape[1]):
        has = {s: values[r, j] >= 0 for s, r in rows.items()}
        y = {s: values[r, j][has[s]] for s, r in rows.items()}
        scores = probe_scores({s: x[s][has[s]] for s in rows}, y, seed)
        if scores is None:
            continue
        classes = [1] if scores.shape[1] == 2 else range(scores.shape[1])
        for k in classes:
            full = np.full(len(rows["test"]), np.nan)
            full[has["test"]] = scores[:, k]
            out.append(Component("auc", values[rows["test"], j] == k, full, has["test"] & np.isfinite(full)))
    return out


def _few_shot_rows(data: ProofData, share: float, seed: int) -> np.ndarray:
    """A share of the train patients (at least 2), drawn per seed, with all their images."""
    train = data.rows("train")
    patients = np.unique(data.patient[train])
    chosen = np.random.default_rng([seed, int(share * 1000)]).choice(
        patients, max(2, round(share * len(patients))), replace=False
    )
    return train[np.isin(data.patient[train], chosen)]


def _zero_shot(image_emb, text_emb, table: TextTable, data: ProofData, test, levels) -> list[Component]:
    wording = CONCAT if levels == (CONCAT,) else "disease"
    out = []
    for j, pair in enumerate(data.prompts[wording]):
        if pair is None:
            continue
        positive, negative = pair
        margin = image_emb[test] @ (text_emb[table.row_of(positive)] - text_emb[table.row_of(negative)])
        labels = data.labels[test, j]
        out.append(Component("auc", labels == 1, margin, labels != -1))
    return out


def prompt_spread(text_emb: np.ndarray, table: TextTable, data: ProofData, levels) -> dict[str, float]:
    """Cosines between the zero-shot prompts (each finding's and the normal one) in the shared space: near 1
    when the text side has collapsed onto one direction."""
    pairs = [p for p in data.prompts[CONCAT if levels == (CONCAT,) else "disease"] if p]
    if not pairs:  # no finding has enough test positives to be scored (a --quick negative control)
        return {}
    texts = list(dict.fromkeys([p[0] for p in pairs] + [pairs[0][1]]))
    emb = text_emb[[table.row_of(t) for t in texts]]
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(min=1e-12)
    off = (emb @ emb.T)[~np.eye(len(texts), dtype=bool)]
    return {"prompt_cos_mean": float(off.mean()), "prompt_cos_max": float(off.max())}


def _retrieval(image_emb, text_emb, table: TextTable, level: str, test) -> Component:
    own = table.index[level][test]
    has = own >= 0
    gallery = np.unique(own[has])
    similarity = image_emb[test][has] @ text_emb[gallery].T
    ranks = best_relevant_rank(similarity, own[has][:, None] == gallery[None, :])
    hits = np.zeros(len(test))
    hits[has] = ranks < RECALL_AT
    return Component("hits", hits, None, has)


def score_run(
    data: ProofData, table: TextTable, backbone: np.ndarray, image_emb: np.ndarray | None,
    text_emb: np.ndarray | None, levels: tuple[str, ...], seed: int, split: str = "test",
) -> RunScores:
    """Every metric's components for one model (`image_emb` None: a model without a text side), scored on
    `split`. split="val" is for choosing between methods: the probes' C is then chosen on the very images
    it is scored on (slightly optimistic, alike for every variant) and the test split is never touched."""
    rows = {"train": data.rows("train"), "val": data.rows("val"), "test": data.rows(split)}
    x = _standardised(backbone, rows)
    out = RunScores()
    out.components["probe_disease"] = _disease_components(x, data.labels, rows, seed)
    for attribute, values in data.attributes.items():
        out.components[f"probe_{attribute}"] = _attribute_components(x, values, rows, seed)
    for name, share in FEW_SHOT:
        few = dict(rows, train=_few_shot_rows(data, share, seed))
        out.components[name] = _disease_components(_standardised(backbone, few), data.labels, few, seed)
    if image_emb is not None:
        out.diagnostics = prompt_spread(text_emb, table, data, levels)
        out.components["zero_shot"] = _zero_shot(image_emb, text_emb, table, data, rows["test"], levels)
        for level in data.texts:
            out.components[f"retrieval_{level}"] = [_retrieval(image_emb, text_emb, table, level, rows["test"])]
    return out
