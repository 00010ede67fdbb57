"""Graded certainty of a finding mention, and the policies that turn it into a 1 / 0 / -1 label.

A report does not say "present" or "absent" only: it says a finding is there, probably there, possibly
there, asked about, or not there. Collapsing all hedges into one "uncertain" label made weak speculation
("may represent", "cannot exclude") count like "likely", which is how labellers over-call. So every
mention keeps one of these levels, and the label is derived from it by a named policy that a dataset
records, instead of being baked into the rules.

Kept light (no spaCy): the pipeline loader validates policies with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFINITE = "definite"
PROBABLE = "probable"
POSSIBLE = "possible"
HYPOTHETICAL = "hypothetical"
NEGATED = "negated"
# A mention of the patient's past ("history of pneumonia") says nothing about this image: it is kept in
# the evidence but never reaches a label.
HISTORICAL = "historical"

# Strongest first: a finding's certainty in a report is that of its strongest mention, so one definite
# mention anywhere wins, and a hedge in the impression outranks a negation in the findings.
LEVELS = (DEFINITE, PROBABLE, POSSIBLE, NEGATED, HYPOTHETICAL)
_RANK = {level: i for i, level in enumerate(LEVELS)}

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
_STATUSES = {POSITIVE, NEGATIVE, UNCERTAIN, None}


class PolicyError(ValueError):
    """An uncertain-policy that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Policy:
    """Which label each certainty level becomes (None = blank: mentioned, but not asserted either way)."""

    name: str
    definite: int | None
    probable: int | None
    possible: int | None
    hypothetical: int | None
    negated: int | None

    def status(self, certainty: str) -> int | None:
        return getattr(self, certainty)

    def describe(self) -> str:
        shown = {POSITIVE: "1", NEGATIVE: "0", UNCERTAIN: "-1", None: "blank"}
        return ", ".join(f"{level} {shown[self.status(level)]}" for level in LEVELS)


PRESETS: dict[str, Policy] = {
    # What a radiologist reading the sentence acts on: a finding stated is 1, one the radiologist leans to
    # ("likely", "X versus Y", "borderline") is -1, speculation and questions ("may represent", "cannot
    # exclude", "evaluate for") assert nothing and stay blank; their certainty is still recorded.
    "radiologist": Policy("radiologist", POSITIVE, UNCERTAIN, None, None, NEGATIVE),
    # CheXpert's convention (Irvin et al. 2019): every hedge, weak or strong, is uncertain (-1).
    "chexpert": Policy("chexpert", POSITIVE, UNCERTAIN, UNCERTAIN, None, NEGATIVE),
    # Only what is stated plainly is positive; anything hedged is uncertain; nothing is blank.
    "strict": Policy("strict", POSITIVE, UNCERTAIN, UNCERTAIN, UNCERTAIN, NEGATIVE),
    # Binary labels for training: probable counts as present, everything short of it as absent.
    "binary": Policy("binary", POSITIVE, POSITIVE, NEGATIVE, None, NEGATIVE),
}
DEFAULT_POLICY = "radiologist"


def strongest(certainties: list[str]) -> str | None:
    """The strongest level among a finding's mentions (historical ones do not count)."""
    ranked = [c for c in certainties if c in _RANK]
    return min(ranked, key=_RANK.__getitem__) if ranked else None


def is_asserted(certainty: str | None) -> bool:
    """Whether a finding at this level makes a study abnormal ("No Finding" is then not set)."""
    return certainty in (DEFINITE, PROBABLE, POSSIBLE)


def policy_from(value: Any) -> Policy:
    """A preset by name, a Policy, or a mapping of level -> 1 / 0 / -1 / null (missing levels take the
    default preset's value), as written under `reports.uncertain_policy` in a pipeline file."""
    if isinstance(value, Policy):
        return value
    if value is None:
        return PRESETS[DEFAULT_POLICY]
    if isinstance(value, str):
        if value not in PRESETS:
            raise PolicyError(f"unknown uncertain policy {value!r}: use one of {', '.join(PRESETS)} or a mapping")
        return PRESETS[value]
    if not isinstance(value, Mapping):
        raise PolicyError("uncertain_policy must be a preset name or a mapping of certainty level to 1, 0, -1 or null")
    unknown = sorted(set(value) - set(LEVELS))
    if unknown:
        raise PolicyError(f"uncertain_policy: unknown certainty levels {unknown}; known: {', '.join(LEVELS)}")
    default = PRESETS[DEFAULT_POLICY]
    chosen = {level: value.get(level, default.status(level)) for level in LEVELS}
    bad = {level: v for level, v in chosen.items() if v not in _STATUSES or isinstance(v, bool)}
    if bad:
        raise PolicyError(f"uncertain_policy: each level maps to 1, 0, -1 or null, got {bad}")
    return Policy("custom", **chosen)
