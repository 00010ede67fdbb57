"""Metrics against scikit-learn, and the bootstrap intervals' basic properties."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

from mgll_train.evaluate import metrics


def average_precision(y, s, w=None):
    return float(metrics.label_stats(y, s, weights=w)[0, 1])


def accuracy_at(y, s, threshold, w=None):
    return float(metrics.label_stats(y, s, threshold, weights=w)[0, 2])


def f1_at(y, s, threshold, w=None):
    return float(metrics.label_stats(y, s, threshold, weights=w)[0, 3])


def bootstrap_weights(n, replicates, seed, groups=None):
    return np.concatenate(list(metrics.weight_chunks(n, replicates, seed, groups)))


def _case(seed: int, n: int = 200, decimals: int = 2):
    """Scores rounded so ties occur (the tricky part of AUC/AP), labels correlated with scores."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    s = np.round(rng.random(n) + 0.4 * y, decimals)
    return y, s, rng.integers(0, 4, n).astype(float)


@pytest.mark.parametrize("seed", range(6))
def test_auc_and_ap_match_sklearn_with_ties_and_weights(seed):
    y, s, w = _case(seed, decimals=1 + seed % 3)
    assert metrics.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert metrics.roc_auc(y, s, w) == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-12)
    assert average_precision(y, s, w) == pytest.approx(average_precision_score(y, s, sample_weight=w), abs=1e-12)


@pytest.mark.parametrize("threshold", [0.3, 0.7, 1.1])
def test_accuracy_and_f1_match_sklearn(threshold):
    y, s, w = _case(7)
    predicted = s >= threshold
    assert accuracy_at(y, s, threshold) == pytest.approx(accuracy_score(y, predicted))
    assert f1_at(y, s, threshold) == pytest.approx(f1_score(y, predicted))
    assert f1_at(y, s, threshold, w) == pytest.approx(f1_score(y, predicted, sample_weight=w))


def test_batched_weights_equal_one_call_per_replicate():
    y, s, _ = _case(3, n=80)
    weights = bootstrap_weights(80, 25, seed=1)
    batched = metrics.roc_auc(y, s, weights)
    one_by_one = [metrics.roc_auc(y, s, w) for w in weights]
    np.testing.assert_allclose(batched, one_by_one)
    assert weights.sum(axis=1).tolist() == [80.0] * 25  # each replicate draws n images


def test_bootstrap_weights_equal_explicit_resampling():
    """A weighted metric over multinomial counts is the metric over the resampled (duplicated) images."""
    y, s, _ = _case(4, n=60)
    weights = bootstrap_weights(60, 5, seed=2)
    for w in weights:
        idx = np.repeat(np.arange(60), w.astype(int))
        assert metrics.roc_auc(y, s, w) == pytest.approx(roc_auc_score(y[idx], s[idx]))


def test_single_class_auc_is_undefined_not_a_crash():
    y = np.zeros(10, dtype=bool)
    assert np.isnan(metrics.roc_auc(y, np.linspace(0, 1, 10)))
    report = metrics.multilabel_report(["a"], y[:, None], np.linspace(0, 1, 10)[:, None], np.ones((10, 1), bool), [0.5],
                                       replicates=50)  # fmt: skip
    assert report["per_label"]["a"]["auc"]["value"] is None and "undefined" in report["per_label"]["a"]["auc"]["note"]
    assert report["per_label"]["a"]["accuracy"]["value"] == pytest.approx(0.5)
    assert report["labels_undefined"] == ["a"]


def test_interval_contains_point_estimate_and_narrows_with_more_samples():
    widths = []
    for n in (100, 2500):
        rng = np.random.default_rng(0)
        y = rng.random(n) < 0.4
        s = rng.normal(size=n) + y
        est = metrics.estimate(lambda w, y=y, s=s: metrics.roc_auc(y, s, weights=w), n, replicates=500, seed=0)
        assert est.low <= est.value <= est.high
        widths.append(est.high - est.low)
    assert widths[1] < widths[0] / 2  # width shrinks like 1/sqrt(n): 25x the images, about 5x narrower


def test_bootstrap_is_seeded():
    y, s, _ = _case(5)
    first = metrics.estimate(lambda w: metrics.roc_auc(y, s, weights=w), len(y), 200, seed=3)
    again = metrics.estimate(lambda w: metrics.roc_auc(y, s, weights=w), len(y), 200, seed=3)
    other = metrics.estimate(lambda w: metrics.roc_auc(y, s, weights=w), len(y), 200, seed=4)
    assert (first.low, first.high) == (again.low, again.high)
    assert (first.low, first.high) != (other.low, other.high)


def test_best_f1_threshold_is_the_brute_force_optimum():
    y, s, _ = _case(8, n=120)
    best = metrics.best_f1_threshold(y, s)
    brute = max(f1_score(y, s >= t) for t in np.unique(s))
    assert f1_score(y, s >= best) == pytest.approx(brute)
    assert metrics.best_f1_threshold(np.zeros(5, bool), np.arange(5.0)) is None


def test_multilabel_report_excludes_uncertain_and_macro_averages_defined_labels():
    rng = np.random.default_rng(0)
    n = 150
    y = (rng.random((n, 3)) < 0.4).astype(int)
    s = rng.random((n, 3)) + 0.5 * y
    valid = rng.random((n, 3)) > 0.2
    y[:, 2] = 0  # one class only: undefined, left out of the macro
    report = metrics.multilabel_report(["a", "b", "c"], y == 1, s, valid, [0.5] * 3, replicates=100)
    for j, name in enumerate("ab"):
        expected = roc_auc_score(y[valid[:, j], j], s[valid[:, j], j])
        assert report["per_label"][name]["auc"]["value"] == pytest.approx(expected)
        assert report["per_label"][name]["excluded"] == int((~valid[:, j]).sum())
    assert report["per_label"]["c"]["auc"]["value"] is None
    assert report["labels_undefined"] == ["c"]
    expected_macro = np.mean([report["per_label"][k]["auc"]["value"] for k in "ab"])
    assert report["macro"]["auc"]["value"] == pytest.approx(expected_macro)
    low, high = report["macro"]["auc"]["ci95"]
    assert low <= expected_macro <= high


def test_multiclass_report_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 90)
    p = rng.dirichlet(np.ones(3), 90) + np.eye(3)[y] * 0.3
    p /= p.sum(1, keepdims=True)
    report = metrics.multiclass_report(["x", "y", "z"], y, p, replicates=50)
    assert report["macro"]["accuracy"]["value"] == pytest.approx(accuracy_score(y, p.argmax(1)))
    assert report["macro"]["f1"]["value"] == pytest.approx(f1_score(y, p.argmax(1), average="macro"))
    assert report["macro"]["auc"]["value"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))


def test_patient_bootstrap_draws_patients_and_gives_each_image_its_patients_count():
    patients = np.array(["p3", "p1", "p1", "p2", "p3", "p3", "p4"])
    weights = bootstrap_weights(7, 200, seed=0, groups=patients)
    for p in np.unique(patients):
        same = weights[:, patients == p]
        assert (same == same[:, :1]).all()  # all images of a patient are drawn together
    assert (weights[:, [1, 3, 0, 6]].sum(axis=1) == 4).all()  # one image per patient: 4 patients drawn
    y, s, _ = _case(9, n=7)
    for w in weights[:5]:
        drawn = np.repeat(np.arange(7), w.astype(int))
        if len(set(y[drawn])) == 2:
            assert metrics.roc_auc(y, s, w) == pytest.approx(roc_auc_score(y[drawn], s[drawn]))


def test_patient_intervals_are_wider_when_a_patients_images_agree():
    # 100 patients with 5 views each, whose scores are the patient's: only ~100 independent samples.
    rng = np.random.default_rng(2)
    patient_y = rng.random(100) < 0.4
    patient_s = rng.normal(size=100) + patient_y
    patients = np.repeat(np.arange(100), 5)
    y, s = patient_y[patients], patient_s[patients] + 0.01 * rng.normal(size=500)
    stat = lambda w: metrics.roc_auc(y, s, weights=w)
    by_image = metrics.estimate(stat, 500, replicates=400, seed=0)
    by_patient = metrics.estimate(stat, 500, replicates=400, seed=0, groups=patients)
    assert (by_patient.high - by_patient.low) > 1.7 * (by_image.high - by_image.low)  # about sqrt(5)


def test_paired_difference_cancels_what_two_models_share():
    rng = np.random.default_rng(3)
    n = 400
    y = rng.random(n) < 0.4
    hardness = rng.normal(size=n)  # shared by both models: what pairing removes
    a = y + hardness + 0.3 * rng.normal(size=n)
    b = y + hardness + 0.3 * rng.normal(size=n) - 0.15 * y
    auc = lambda scores: (lambda w: metrics.roc_auc(y, scores, weights=w))
    diff = metrics.paired_difference(auc(a), auc(b), n, replicates=500, seed=1)
    assert diff.value == pytest.approx(metrics.roc_auc(y, a) - metrics.roc_auc(y, b))
    assert diff.low <= diff.value <= diff.high
    sep_a = metrics.estimate(auc(a), n, replicates=500, seed=1)
    assert (diff.high - diff.low) < 0.6 * (sep_a.high - sep_a.low)
    same = metrics.paired_difference(auc(a), auc(a), n, replicates=100, seed=1)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
