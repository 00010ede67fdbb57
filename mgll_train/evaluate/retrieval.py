"""Image↔text retrieval Recall@K on the test split, at each granularity the run was trained with.

Texts repeat ("no finding" is shared by many images), so a retrieval hit is counted when ANY retrieved
text is identical to the query's own text (identity after case and whitespace folding, the rule the
trainer uses for shared soft targets):
- image→text: queries are the test images; the gallery is the set of distinct texts (duplicates are
  collapsed, since identical strings embed identically and would otherwise only crowd the top K).
  A hit at K: the query's own text ranks within the top K distinct texts.
- text→image: queries are the distinct texts; the gallery is the test images that have a text at this
  granularity. A hit at K: any of the top K images carries the query text.
Ties are broken against the query (a rank counts every wrong item scoring >= the best right one), so a
collapsed model that embeds everything alike scores at chance, not 100%. Images without a text at the
granularity are left out of it. Intervals resample queries (the gallery is held fixed): image queries by
patient, text queries one by one.
"""

from __future__ import annotations

import numpy as np

from mgll_train.data import text_id
from mgll_train.evaluate import metrics
from mgll_train.evaluate.downstream import Downstream
from mgll_train.evaluate.features import Run, text_features

KS = (1, 5, 10)
_QUERY_CHUNK = 1024


def best_relevant_rank(similarity: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """0-based rank of each query's best relevant item; ties count against the query."""
    ranks = np.empty(similarity.shape[0], dtype=np.int64)
    for start in range(0, similarity.shape[0], _QUERY_CHUNK):
        sim = similarity[start : start + _QUERY_CHUNK]
        rel = relevant[start : start + _QUERY_CHUNK]
        best = np.where(rel, sim, -np.inf).max(axis=1, keepdims=True)
        ranks[start : start + _QUERY_CHUNK] = ((sim >= best) & ~rel).sum(axis=1)
    return ranks


def recall_table(ranks: np.ndarray, bootstrap: int, seed: int, groups: np.ndarray | None = None) -> dict:
    n = len(ranks)
    out = {}
    for k in KS:
        hits = (ranks < k).astype(np.float64)
        stat = lambda w, h=hits: metrics.weighted_mean(h, w)
        out[f"R@{k}"] = metrics.estimate(stat, n, bootstrap, seed, groups=groups).to_dict()
    out["median_rank"] = float(np.median(ranks) + 1) if n else None
    return out


def evaluate(
    run: Run,
    data: Downstream,
    test_rows: np.ndarray,
    test_emb: np.ndarray,
    *,
    bootstrap: int = metrics.DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> dict:
    granularities = [g for g in run.granularities if g in data.texts]
    skipped = [g for g in run.granularities if g not in data.texts]
    result: dict = {"granularities": {}, "ks": list(KS)}
    if skipped:
        result["note"] = f"granularities the run was trained with but the data lacks: {skipped}"
    for g in granularities:
        column = [data.texts[g][i] for i in test_rows]
        has = np.asarray([t is not None for t in column])
        if not has.any():
            result["granularities"][g] = {"note": "no test image has a text at this granularity", "images": 0}
            continue
        keys = [text_id(t) for t, h in zip(column, has) if h]
        distinct_keys, first, image_text = np.unique(keys, return_index=True, return_inverse=True)
        texts = [t for t, h in zip(column, has) if h]
        gallery_texts = [texts[i] for i in first]
        text_emb = text_features(run, gallery_texts)
        images = test_emb[has]
        similarity = images @ text_emb.T
        match = image_text[:, None] == np.arange(len(distinct_keys))[None, :]
        i2t = best_relevant_rank(similarity, match)
        t2i = best_relevant_rank(similarity.T, match.T)
        result["granularities"][g] = {
            "images": int(has.sum()),
            "distinct_texts": int(len(distinct_keys)),
            "image_to_text": recall_table(i2t, bootstrap, seed, data.groups(test_rows[has])),
            "text_to_image": recall_table(t2i, bootstrap, seed),
            "chance_R@1_image_to_text": 1.0 / len(distinct_keys),
        }
    return result
