"""The proof benchmark's parts: the known-answer generator keeps its answers, the texts split them by
level, the scoring and the paired comparison compute what they claim (bench/proof/)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from bench import bench_proof
from bench.proof import compare, protocol, scoring
from bench.proof.generator import FINDINGS, LEVELS, SEVERITIES, SIDES, generate, level_items, level_texts
from bench.proof.render import ProofFinding, render
from bench.proof.text import CONCAT, TextTable


@pytest.fixture(scope="module")
def data():
    return generate({"train": 60, "val": 20, "test": 30}, image_size=32, seed=1)


def test_generator_shapes_splits_and_patients(data):
    assert data.images.shape == (220, 32, 32) and data.images.dtype == np.uint8
    for split in ("train", "val", "test"):
        assert (
            len(
                np.intersect1d(
                    data.patient[data.rows(split)], data.patient[data.rows("test" if split != "test" else "train")]
                )
            )
            == 0
        )
    # two images per patient, same answers and same texts
    first, second = np.flatnonzero(data.patient == 5)
    assert (data.labels[first] == data.labels[second]).all()
    assert all(data.texts[level][first] == data.texts[level][second] for level in LEVELS)


def test_attributes_exist_exactly_where_the_finding_does(data):
    present = data.labels == 1
    for values in data.attributes.values():
        assert ((values >= 0) == present).all()
    assert set(np.unique(data.attributes["severity"][present])) <= {0, 1, 2}


def test_each_level_carries_its_own_part_of_the_answer():
    rng = np.random.default_rng(0)
    findings = (ProofFinding("effusion", "left", "large", "severe"), ProofFinding("nodule", "right", "small", "mild"))
    texts = level_texts(rng, findings)
    assert texts["category"] == ("abnormal: lungs, pleura",)
    assert set(texts["disease"][0].replace(" and ", ",").split(",")) == {"effusion", "nodule"}
    description = " ".join(texts["description"]).lower()
    assert "left" in description and "large" in description and "severe" not in description
    explanation = " ".join(texts["explanation"]).lower()
    assert "severe" in explanation and "mild" in explanation and "left" not in explanation
    items = level_items(findings)
    assert items["description"] == ("effusion|left|large", "nodule|right|small")
    assert items["explanation"] == ("effusion|severe", "nodule|mild")
    assert level_texts(rng, ())["disease"] == ("no finding",)
    assert all(items == ("normal",) for items in level_items(()).values())  # alike whatever the paraphrase


def test_levels_go_missing_about_thirty_percent_of_the_time():
    big = generate({"train": 400}, image_size=16, seed=2)
    for level in LEVELS:
        missing = np.mean([t is None for t in big.texts[level]])
        assert 0.24 < missing < 0.36, level


def test_side_size_and_severity_change_the_picture():
    """Averaged over noise, the finding's side of the image is brighter, more so when severe or large."""

    def mean_image(finding, n=40):
        rng = np.random.default_rng(3)
        return np.mean([render(rng, (finding,), 32).astype(float) for _ in range(n)], axis=0)

    normal = np.mean([render(np.random.default_rng(4 + i), (), 32).astype(float) for i in range(40)], axis=0)
    right = mean_image(ProofFinding("effusion", "right", "large", "severe")) - normal
    left = mean_image(ProofFinding("effusion", "left", "large", "severe")) - normal
    assert right[:, :16].sum() > 3 * right[:, 16:].sum()  # the patient's right is the image's left
    assert left[:, 16:].sum() > 3 * left[:, :16].sum()
    mild = mean_image(ProofFinding("effusion", "right", "large", "mild")) - normal
    small = mean_image(ProofFinding("effusion", "right", "small", "severe")) - normal
    assert right.sum() > 1.5 * mild.sum() and right.sum() > 1.3 * small.sum()


def test_prompts_are_texts_the_data_holds(data):
    disease_texts = {t for t in data.texts["disease"] if t}
    for positive, negative in data.prompts["disease"]:
        assert positive in disease_texts and negative == ("no finding",)
    assert len(data.prompts["concat"]) == len(FINDINGS)


def _table(data, dim=8):
    """A text table with random embeddings (MiniLM is not needed to test the plumbing)."""
    distinct: dict = {}
    index = {}
    for level in LEVELS:
        index[level] = np.asarray([distinct.setdefault(t, len(distinct)) if t else -1 for t in data.texts[level]])
    index[CONCAT] = index["disease"]
    for pairs in data.prompts.values():
        for pair in pairs:
            for text in pair:
                distinct.setdefault(text, len(distinct))
    rng = np.random.default_rng(0)
    return TextTable(rng.normal(size=(len(distinct), dim)).astype(np.float32), index, list(distinct))


@pytest.mark.parametrize("name", ["supervised", "clip-concat", "mgll"])
def test_every_kind_of_variant_trains_and_is_scored(data, name):
    table = _table(data)
    tensors = protocol.to_tensors(data, table, "cpu")
    settings = protocol.Settings(steps=3, batch_size=16, width=4, embed_dim=8)
    variant = protocol.VARIANTS[name]
    start = protocol.train(protocol.VARIANTS["random-init"], tensors, settings, seed=0)
    model = protocol.train(variant, tensors, settings, seed=0)
    moved = [not torch.equal(a, b) for a, b in zip(start.vision.parameters(), model.vision.parameters())]
    assert any(moved)  # same seed, same start: training changed the tower
    backbone, image_emb = protocol.features(model, tensors)
    text_emb = protocol.text_embeddings(model, tensors) if variant.trains_text else None
    scores = scoring.score_run(data, table, backbone, image_emb if variant.trains_text else None, text_emb,
                               variant.levels, seed=0)  # fmt: skip
    assert len(scores.components["probe_disease"]) == len(FINDINGS)
    assert ("zero_shot" in scores.components) == variant.trains_text
    assert len(scores.components["probe_severity"]) <= len(FINDINGS) * len(SEVERITIES)
    assert len(scores.components["probe_side"]) <= len(FINDINGS) and len(SIDES) == 2


def test_a_candidate_trains_with_its_own_loss_option(data):
    """mgll-inst50 differs from mgll only by the loss's instance weight: same seed, different weights."""
    tensors = protocol.to_tensors(data, _table(data), "cpu")
    settings = protocol.Settings(steps=2, batch_size=16, width=4, embed_dim=8)
    plain = protocol.train(protocol.VARIANTS["mgll"], tensors, settings, seed=0)
    mixed = protocol.train(protocol.CANDIDATES["mgll-inst50"], tensors, settings, seed=0)
    assert protocol.CANDIDATES["mgll-inst50"].instance_weight == 0.5
    assert not torch.equal(plain.vision_proj.weight, mixed.vision_proj.weight)


def test_scoring_on_val_never_reads_the_test_split(data):
    """split="val" scores the val images; scrambling every test answer changes nothing."""
    table = _table(data)
    rng = np.random.default_rng(5)
    backbone, image_emb = rng.normal(size=(len(data.images), 6)), rng.normal(size=(len(data.images), 8))
    text_emb = rng.normal(size=(len(table.texts), 8))
    args = (backbone, image_emb, text_emb, LEVELS, 0)
    on_val = scoring.score_run(data, table, *args, split="val")
    val = data.rows("val")
    assert all(len(c.y) == len(val) for comps in on_val.components.values() for c in comps)
    assert (on_val.components["probe_disease"][0].y == (data.labels[val, 0] == 1)).all()
    test = data.rows("test")
    scrambled = copy.deepcopy(data)
    scrambled.labels[test] = 1 - np.abs(scrambled.labels[test])
    for values in scrambled.attributes.values():
        values[test] = rng.integers(0, 2, size=values[test].shape)
    again = scoring.score_run(scrambled, table, *args, split="val")
    for name, comps in on_val.components.items():
        for a, b in zip(comps, again.components[name], strict=True):
            assert np.array_equal(a.y, b.y) and np.array_equal(a.valid, b.valid), name
            assert (a.scores is None and b.scores is None) or np.array_equal(a.scores, b.scores, equal_nan=True), name


def test_selection_takes_the_best_candidate_unless_a_simpler_one_is_within_noise():
    rng = np.random.default_rng(2)
    n = 400
    groups = np.repeat(np.arange(200), 2)
    y = rng.random(n) < 0.3
    simplest, *_, last = protocol.CANDIDATES
    names = list(protocol.CANDIDATES)
    runs = {name: [] for name in names}
    for _ in range(4):
        base = rng.random(n) + 0.1 * y
        for name in names:
            runs[name].append(_run([base + (0.3 * y if name == last else 0)], y))
    chosen = bench_proof.select(runs, groups, replicates=200)
    assert chosen["best"] == last and chosen["selected"] == last  # clearly better than every simpler one
    # the simplest one: as strong as the best by construction (fresh noise), a shade weaker on average
    runs[simplest] = [_run([rng.random(n) + 0.4 * y - 0.02 * y], y) for _ in range(4)]
    chosen = bench_proof.select(runs, groups, replicates=200)
    ci = chosen["vs_best"][simplest]["ci95"]
    assert chosen["best"] == last and ci[0] < 0 < ci[1]  # a little worse, within noise
    assert chosen["selected"] == simplest


def _run(aucs_scores, y, valid=None):
    valid = np.ones(len(y), bool) if valid is None else valid
    return scoring.RunScores({"probe_disease": [scoring.Component("auc", y, s, valid) for s in aucs_scores]})


def test_metric_values_are_the_mean_of_component_aucs():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    a, b = rng.random(200) + y, rng.random(200) + 0.5 * y
    run = _run([a, b], y)
    value = compare.metric_values(run, "probe_disease", np.ones((1, 200)))[0]
    assert value == pytest.approx((roc_auc_score(y, a) + roc_auc_score(y, b)) / 2)
    hits = scoring.RunScores(
        {"retrieval_disease": [scoring.Component("hits", y.astype(float), None, np.arange(200) < 100)]}
    )
    assert compare.metric_values(hits, "retrieval_disease", np.ones((1, 200)))[0] == pytest.approx(y[:100].mean())


def test_compare_gives_zero_for_identical_variants_and_finds_a_real_gap():
    rng = np.random.default_rng(1)
    n = 300
    groups = np.repeat(np.arange(150), 2)
    y = rng.random(n) < 0.3
    runs = {"clip-concat": [], "same": [], "better": []}
    for _ in range(4):
        base = rng.random(n) + 0.8 * y
        runs["clip-concat"].append(_run([base], y))
        runs["same"].append(_run([base], y))
        runs["better"].append(_run([base + 0.8 * y], y))
    out = compare.compare(runs, "clip-concat", groups, replicates=200)
    same = out["same"]["probe_disease"]["diff_vs_clip-concat"]
    assert same["value"] == 0 and same["ci95"] == [0.0, 0.0]
    better = out["better"]["probe_disease"]["diff_vs_clip-concat"]
    assert better["value"] > 0 and better["ci95"][0] > 0
    assert "diff_vs_clip-concat" not in out["clip-concat"]["probe_disease"]
    assert out["better"]["probe_mean"]["mean"] == pytest.approx(out["better"]["probe_disease"]["mean"])


def test_the_negative_control_builds_from_the_demo_pipeline():
    """Today's demo generator through the real report pipeline: every view an image, every level a text slot."""
    from bench.proof.negative_control import generate_demo

    demo = generate_demo({"train": 4, "val": 2, "test": 3}, image_size=16)
    assert demo.images.shape[1:] == (16, 16) and len(demo.patient) == len(demo.images)
    assert set(np.unique(demo.patient[demo.rows("test")])) == {6, 7, 8}
    assert all(len(demo.texts[level]) == len(demo.images) for level in LEVELS)
    assert demo.labels.shape[0] == len(demo.images) and set(np.unique(demo.labels)) <= {-1, 0, 1}


def test_the_gpu_scale_tower_builds_and_trains_on_the_cpu(data):
    """`--tower resnet18` (the GPU protocol) runs the same code; here one step at 32 px on the CPU."""
    table = _table(data)
    tensors = protocol.to_tensors(data, table, "cpu")
    settings = protocol.Settings(steps=1, batch_size=8, tower="resnet18", embed_dim=8)
    model = protocol.train(protocol.VARIANTS["mgll"], tensors, settings, seed=0)
    backbone, image_emb = protocol.features(model, tensors)
    assert backbone.shape == (len(data.images), 512) and image_emb.shape == (len(data.images), 8)
