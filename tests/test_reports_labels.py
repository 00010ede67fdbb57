"""Aggregation of mentions into one label per finding: the strongest certainty, then the policy."""

from __future__ import annotations

import pytest

from mgll_data.reports import load_vocabulary
from mgll_data.reports.certainty import PRESETS, policy_from
from mgll_data.reports.labels import Label, Mention, aggregate

RADIOLOGIST = policy_from("radiologist")


def mention(finding: str, certainty: str | None, related: bool = False) -> Mention:
    return Mention(finding=finding, text=finding, certainty=certainty, status=None, rule="test", sentence="s.",
                   section=None, start=0, end=1, related=related)


def test_definite_wins_over_everything():
    vocab = load_vocabulary("nih14")
    found = [mention("Effusion", c) for c in ("negated", "possible", "hypothetical", "definite", "probable")]
    assert aggregate(found, vocab, RADIOLOGIST) == [Label("Effusion", 1, "definite")]


def test_a_hedge_outranks_a_negation_and_a_negation_a_question():
    vocab = load_vocabulary("nih14")
    assert aggregate([mention("Edema", "negated"), mention("Edema", "possible")], vocab, RADIOLOGIST) == [
        Label("Edema", None, "possible")]
    assert aggregate([mention("Edema", "hypothetical"), mention("Edema", "negated")], vocab, RADIOLOGIST) == [
        Label("Edema", 0, "negated")]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("radiologist", {"definite": 1, "probable": -1, "possible": None, "hypothetical": None, "negated": 0}),
        ("chexpert", {"definite": 1, "probable": -1, "possible": -1, "hypothetical": None, "negated": 0}),
        ("strict", {"definite": 1, "probable": -1, "possible": -1, "hypothetical": -1, "negated": 0}),
        ("binary", {"definite": 1, "probable": 1, "possible": 0, "hypothetical": None, "negated": 0}),
    ],
)
def test_policy_presets(policy, expected):
    vocab = load_vocabulary("nih14")
    for level, status in expected.items():
        assert aggregate([mention("Hernia", level)], vocab, policy_from(policy)) == [Label("Hernia", status, level)]


def test_custom_policy_mapping_and_its_errors():
    policy = policy_from({"possible": -1})
    assert (policy.possible, policy.probable) == (-1, PRESETS["radiologist"].probable)
    with pytest.raises(ValueError, match="unknown certainty levels"):
        policy_from({"maybe": 1})
    with pytest.raises(ValueError, match="1, 0, -1 or null"):
        policy_from({"possible": 2})
    with pytest.raises(ValueError, match="unknown uncertain policy"):
        policy_from("lenient")


def test_related_signs_and_history_never_reach_a_label():
    vocab = load_vocabulary("nih14")
    found = [mention("Emphysema", "definite", related=True), mention("Pneumonia", "historical"),
             mention("Cardiomegaly", None)]
    assert aggregate(found, vocab, RADIOLOGIST) == []


def test_order_follows_the_vocabulary():
    vocab = load_vocabulary("nih14")
    found = [mention("Hernia", "negated"), mention("Atelectasis", "negated")]
    assert [label.name for label in aggregate(found, vocab, RADIOLOGIST)] == ["Atelectasis", "Hernia"]


def test_no_finding_when_nothing_is_asserted_even_weakly():
    vocab = load_vocabulary("chexpert")
    assert aggregate([mention("Edema", "negated")], vocab, RADIOLOGIST) == [
        Label("No Finding", 1, "definite"), Label("Edema", 0, "negated")]
    # a possible finding is blank under the default policy, but the study is still not "normal"
    assert aggregate([mention("Edema", "possible")], vocab, RADIOLOGIST) == [Label("Edema", None, "possible")]
    assert aggregate([], vocab, RADIOLOGIST) == [Label("No Finding", 1, "definite")]


def test_support_devices_do_not_make_a_study_abnormal():
    vocab = load_vocabulary("chexpert")
    labels = aggregate([mention("Support Devices", "definite")], vocab, RADIOLOGIST)
    assert labels == [Label("No Finding", 1, "definite"), Label("Support Devices", 1, "definite")]


def test_nih14_has_no_no_finding():
    assert aggregate([], load_vocabulary("nih14"), RADIOLOGIST) == []
