"""Patient-level split assignment.

The split is a pure function of the patient pseudonym and the ratios, so every image of a patient lands
in the same split, rebuilds and increments agree, and no state has to be kept between builds.
"""

from __future__ import annotations

import hashlib

from mgll_data.dataset import SPLITS


def assign_split(patient_pseudonym: str, ratios: dict[str, float]) -> str:
    """Map a patient to train / val / test by a uniform draw derived from the pseudonym."""
    digest = hashlib.sha256(b"mgll-split\0" + patient_pseudonym.encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    for name in SPLITS:
        cumulative += ratios.get(name, 0.0)
        if draw < cumulative:
            return name
    return next(name for name in reversed(SPLITS) if ratios.get(name, 0.0) > 0)
