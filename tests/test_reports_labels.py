"""CheXpert-style aggregation of mentions into one label per finding."""

from __future__ import annotations

from mgll_data.reports import load_vocabulary
from mgll_data.reports.labels import Mention, aggregate


def mention(finding: str, status: int | None) -> Mention:
    return Mention(finding=finding, text=finding, status=status, rule="test", sentence="s.", section=None, start=0, end=1)


def test_any_positive_wins_over_uncertain_and_negative():
    vocab = load_vocabulary("nih14")
    found = [mention("Effusion", 0), mention("Effusion", -1), mention("Effusion", 1)]
    assert aggregate(found, vocab) == [("Effusion", 1)]


def test_uncertain_wins_over_negative():
    vocab = load_vocabulary("nih14")
    assert aggregate([mention("Edema", 0), mention("Edema", -1)], vocab) == [("Edema", -1)]


def test_only_negated_is_negative_and_order_follows_vocabulary():
    vocab = load_vocabulary("nih14")
    found = [mention("Hernia", 0), mention("Atelectasis", 0)]
    assert aggregate(found, vocab) == [("Atelectasis", 0), ("Hernia", 0)]


def test_hypothetical_mentions_do_not_count():
    vocab = load_vocabulary("nih14")
    assert aggregate([mention("Pneumonia", None)], vocab) == []


def test_no_finding_only_when_nothing_positive_or_uncertain():
    vocab = load_vocabulary("chexpert")
    assert aggregate([mention("Edema", 0)], vocab) == [("No Finding", 1), ("Edema", 0)]
    assert aggregate([mention("Edema", -1)], vocab) == [("Edema", -1)]
    assert aggregate([], vocab) == [("No Finding", 1)]


def test_support_devices_do_not_make_a_study_abnormal():
    vocab = load_vocabulary("chexpert")
    labels = dict(aggregate([mention("Support Devices", 1)], vocab))
    assert labels == {"No Finding": 1, "Support Devices": 1}


def test_nih14_has_no_no_finding():
    vocab = load_vocabulary("nih14")
    assert aggregate([], vocab) == []
