from collections import Counter

from mgll_data.split import assign_split

RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}


def test_split_is_deterministic_per_patient():
    assert all(assign_split(f"pat-{i}", RATIOS) == assign_split(f"pat-{i}", RATIOS) for i in range(100))


def test_split_follows_ratios():
    counts = Counter(assign_split(f"pat-{i:06d}", RATIOS) for i in range(20000))
    assert abs(counts["train"] / 20000 - 0.8) < 0.015
    assert abs(counts["val"] / 20000 - 0.1) < 0.01
    assert abs(counts["test"] / 20000 - 0.1) < 0.01


def test_zero_ratio_split_never_assigned():
    counts = Counter(assign_split(f"pat-{i}", {"train": 0.5, "val": 0.0, "test": 0.5}) for i in range(2000))
    assert set(counts) == {"train", "test"}
