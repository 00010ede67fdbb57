"""A known-answer dataset where each text granularity carries information the others do not.

Six findings in three organ systems; every positive finding has a side, a size and a severity, and each
of the three changes the picture (which hemithorax, how far the pattern extends, how strong it is). The
texts split that information by level, as a radiology corpus does:
    category     "abnormal: lungs, pleura"          which systems (or "normal")
    disease      "effusion and nodule"               which findings (or "no finding")
    description  "Small left effusion. ..."          side and size, in six paraphrases per finding
    explanation  "The effusion is graded severe."    the severity grade
Each level is missing for ~30% of studies, independently. A patient has one study imaged twice (two
exposures with their own jitter and noise), so images of a patient share findings and texts, and a
patient is the unit of every split and of the bootstrap.

The answers (presence, side, size, severity of each finding) are drawn first and everything else is
made from them, so the benchmark can ask how much of each a representation learnt. The per-level
items (what MGLL's targets are built from) are the same answers, written as strings:
category = the systems, disease = the findings, description = finding|side|size, explanation =
finding|severity; a normal study has the item "normal" at every level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.proof.render import ProofFinding, render

FINDINGS = ("nodule", "consolidation", "effusion", "pneumothorax", "fracture", "bone lesion")
SYSTEM = {"nodule": "lungs", "consolidation": "lungs", "effusion": "pleura", "pneumothorax": "pleura",
          "fracture": "bones", "bone lesion": "bones"}  # fmt: skip
REGION = {"lungs": "lung", "pleura": "hemithorax", "bones": "chest wall"}
SIDES = ("right", "left")  # the patient's side; on the image the patient's right is on the left
SIZES = ("small", "large")
SEVERITIES = ("mild", "moderate", "severe")
LEVELS = ("category", "disease", "description", "explanation")
NORMAL_TEXT = {"category": "normal", "disease": "no finding"}

DESCRIPTION_TEMPLATES = (
    "{Size} {side} {name}.",
    "There is a {size} {name} on the {side}.",
    "{Side}-sided {name}, {size}.",
    "A {size} {name} is seen in the {side} {region}.",
    "{Name} on the {side}, {size} in extent.",
    "The {side} {region} shows a {size} {name}.",
)
NORMAL_DESCRIPTIONS = ("No abnormality is seen.", "The study is normal.", "Clear lungs and pleura, intact bones.",
                       "Unremarkable chest.", "No acute findings.")  # fmt: skip
EXPLANATION_TEMPLATES = ("The {name} is graded {severity}.", "{Name}: {severity} severity.", "{Severity} {name}.")
NORMAL_EXPLANATIONS = ("Nothing to grade.", "No abnormality to grade.")


@dataclass
class ProofData:
    """Pre-decoded images and everything known about them, one entry per image."""

    images: np.ndarray  # uint8 [N, S, S]
    patient: np.ndarray  # int [N]
    split: np.ndarray  # str [N]
    labels: np.ndarray  # int8 [N, F]: finding present
    attributes: dict[str, np.ndarray]  # side / size / severity: int8 [N, F], index into SIDES etc., -1 absent
    texts: dict[str, list[tuple[str, ...] | None]]  # level -> per image its sentences (None: missing)
    items: dict[str, list[tuple[str, ...]]]  # level -> per image the items its targets come from
    label_names: tuple[str, ...] = FINDINGS
    attribute_values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # zero-shot prompt pairs per label, as sentence tuples: "disease" in the disease level's wording,
    # "concat" in the concatenated texts' (category + disease of a one-finding study vs a normal one)
    prompts: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = field(default_factory=dict)

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


def plan_findings(rng: np.random.Generator, abnormal_share: float = 0.75) -> tuple[ProofFinding, ...]:
    """A normal study, or 1-3 distinct findings, each with its own side, size and severity."""
    if rng.random() >= abnormal_share:
        return ()
    count = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
    names = rng.choice(len(FINDINGS), size=count, replace=False)
    return tuple(
        ProofFinding(FINDINGS[i], SIDES[rng.integers(2)], SIZES[rng.integers(2)], SEVERITIES[rng.integers(3)])
        for i in sorted(names)
    )


def _capitalised(**words: str) -> dict[str, str]:
    return {**words, **{k.capitalize(): v[:1].upper() + v[1:] for k, v in words.items()}}


def level_texts(rng: np.random.Generator, findings: tuple[ProofFinding, ...]) -> dict[str, tuple[str, ...]]:
    """Every level's sentences for a study (before any level goes missing)."""
    if not findings:
        return {
            "category": (NORMAL_TEXT["category"],),
            "disease": (NORMAL_TEXT["disease"],),
            "description": (str(rng.choice(NORMAL_DESCRIPTIONS)),),
            "explanation": (str(rng.choice(NORMAL_EXPLANATIONS)),),
        }
    order = rng.permutation(len(findings))
    names = [findings[i].name for i in order]
    disease = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    description = tuple(
        str(rng.choice(DESCRIPTION_TEMPLATES)).format(**_capitalised(
            name=f.name, side=f.side, size=f.size, region=REGION[SYSTEM[f.name]]))
        for f in (findings[i] for i in order)
    )  # fmt: skip
    explanation = tuple(
        str(rng.choice(EXPLANATION_TEMPLATES)).format(**_capitalised(name=f.name, severity=f.severity))
        for f in (findings[i] for i in order)
    )
    systems = sorted({SYSTEM[f.name] for f in findings})
    return {"category": (f"abnormal: {', '.join(systems)}",), "disease": (disease,),
            "description": description, "explanation": explanation}  # fmt: skip


def level_items(findings: tuple[ProofFinding, ...]) -> dict[str, tuple[str, ...]]:
    """What each level says, as items; a normal study says "normal" at every level, whichever paraphrase
    it is written in (without that item, two normal studies described in different words would be
    strangers at description and explanation)."""
    if not findings:
        return {level: ("normal",) for level in LEVELS}
    return {
        "category": tuple(sorted({SYSTEM[f.name] for f in findings})),
        "disease": tuple(f.name for f in findings),
        "description": tuple(f"{f.name}|{f.side}|{f.size}" for f in findings),
        "explanation": tuple(f"{f.name}|{f.severity}" for f in findings),
    }


def generate(
    patients: dict[str, int], *, image_size: int = 32, seed: int = 0, missing: float = 0.3, views: int = 2
) -> ProofData:
    """`patients` per split, e.g. {"train": 3000, "val": 500, "test": 1500}; `views` images each."""
    rng = np.random.default_rng([seed, 7])
    images, patient, split, studies = [], [], [], []
    texts: dict[str, list] = {level: [] for level in LEVELS}
    items: dict[str, list] = {level: [] for level in LEVELS}
    index = 0
    for name, count in patients.items():
        for _ in range(count):
            findings = plan_findings(rng)
            study_texts = level_texts(rng, findings)
            present = rng.random(len(LEVELS)) >= missing
            study_items = level_items(findings)
            for _ in range(views):
                images.append(render(rng, findings, image_size))
                patient.append(index)
                split.append(name)
                studies.append(findings)
                for k, level in enumerate(LEVELS):
                    texts[level].append(study_texts[level] if present[k] else None)
                    items[level].append(study_items[level])
            index += 1
    return ProofData(
        images=np.stack(images),
        patient=np.asarray(patient),
        split=np.asarray(split, dtype=object),
        labels=_answer_matrix(studies, lambda f: 1, absent=0),
        attributes={
            "side": _answer_matrix(studies, lambda f: SIDES.index(f.side)),
            "size": _answer_matrix(studies, lambda f: SIZES.index(f.size)),
            "severity": _answer_matrix(studies, lambda f: SEVERITIES.index(f.severity)),
        },
        texts=texts,
        items=items,
        attribute_values={"side": SIDES, "size": SIZES, "severity": SEVERITIES},
        prompts=one_finding_prompts(),
    )


def one_finding_prompts() -> dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]]:
    """What a study with this finding alone says at the disease level (and at category + disease),
    against what a normal study says: in-distribution prompts for zero-shot."""
    normal = level_texts(np.random.default_rng(0), ())
    return {
        "disease": [((name,), normal["disease"]) for name in FINDINGS],
        "concat": [((f"abnormal: {SYSTEM[name]}", name), normal["category"] + normal["disease"]) for name in FINDINGS],
    }


def _answer_matrix(studies: list[tuple[ProofFinding, ...]], value, absent: int = -1) -> np.ndarray:
    """[N, F]: value(finding) where the image has the finding, else `absent`."""
    out = np.full((len(studies), len(FINDINGS)), absent, dtype=np.int8)
    for i, findings in enumerate(studies):
        for f in findings:
            out[i, FINDINGS.index(f.name)] = value(f)
    return out
