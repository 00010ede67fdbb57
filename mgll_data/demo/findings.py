"""What a synthetic study shows and what its report says: the single plan both the drawing and the
report text are made from, so the pictures and the words can never disagree.

Statuses follow CheXpert: 1 positive, 0 negative, -1 uncertain, absent when the report does not mention
the finding. "No Finding" is 1 when no pathology (everything but Support Devices) is positive or uncertain,
as the CheXpert labeler assigns it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CHEXPERT = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
PATHOLOGIES = tuple(name for name in CHEXPERT if name not in ("No Finding", "Support Devices"))

# Relative frequency of each finding among abnormal studies (roughly MIMIC-CXR's ordering).
_PREVALENCE = {
    "Pleural Effusion": 0.16,
    "Cardiomegaly": 0.14,
    "Atelectasis": 0.11,
    "Lung Opacity": 0.10,
    "Support Devices": 0.10,
    "Edema": 0.09,
    "Pneumonia": 0.08,
    "Consolidation": 0.07,
    "Pneumothorax": 0.07,
    "Lung Lesion": 0.07,
    "Enlarged Cardiomediastinum": 0.04,
    "Fracture": 0.03,
    "Pleural Other": 0.02,
}
# Findings that tend to travel together, so co-occurrence looks like real data.
_COMPANIONS = {
    "Edema": (("Cardiomegaly", 0.5), ("Pleural Effusion", 0.4)),
    "Pneumonia": (("Consolidation", 0.35), ("Lung Opacity", 0.3)),
    "Cardiomegaly": (("Enlarged Cardiomediastinum", 0.15),),
}
# Findings a report may describe as resolved since the prior study (status 0).
RESOLVABLE = ("Edema", "Pneumonia", "Pleural Effusion", "Pneumothorax", "Atelectasis", "Consolidation")
NORMAL_SHARE = 0.4
UNCERTAIN_SHARE = 0.15
# How often a report explicitly negates each finding it does not assert (normal studies mention more).
_NEGATION_SHARE = {
    "Pleural Effusion": 0.85,
    "Pneumothorax": 0.85,
    "Consolidation": 0.6,
    "Cardiomegaly": 0.55,
    "Enlarged Cardiomediastinum": 0.35,
    "Edema": 0.3,
    "Pneumonia": 0.2,
    "Lung Lesion": 0.1,
    "Fracture": 0.1,
}


@dataclass
class PlantedFinding:
    """One finding planted in a synthetic study, as its images draw it and its report tells it; `strength`
    scales the drawn pattern (uncertain ones are faint)."""

    status: int
    side: str = "right"  # right | left | bilateral (the patient's side, as a report says it)
    size: str = "small"  # small | moderate | large
    strength: float = 1.0
    resolved: bool = False
    devices: tuple[str, ...] = ()  # for Support Devices: et_tube, central_line, ng_tube, pacemaker


@dataclass
class StudyPlan:
    findings: dict[str, PlantedFinding] = field(default_factory=dict)
    views: tuple[str, ...] = ("PA",)
    normal_template: bool = False

    def drawn(self) -> dict[str, PlantedFinding]:
        """Findings the image shows: positives at full strength, uncertain ones faintly."""
        return {name: f for name, f in self.findings.items() if f.status != 0}

    def labels(self) -> dict[str, int]:
        """The ground truth as the report writes it, CheXpert conventions."""
        labels = {name: f.status for name, f in self.findings.items()}
        if not any(labels.get(name) in (1, -1) for name in PATHOLOGIES):
            labels["No Finding"] = 1
        return labels


def _pick_side(rng: np.random.Generator, bilateral_share: float) -> str:
    if rng.random() < bilateral_share:
        return "bilateral"
    return "right" if rng.random() < 0.5 else "left"


def plan_study(rng: np.random.Generator) -> StudyPlan:
    """Draw one study: about 40% normal, else 1–3 findings plus their usual companions."""
    plan = StudyPlan()
    plan.views = ("PA", "LATERAL") if rng.random() < 0.6 else (("PA",) if rng.random() < 0.6 else ("AP",))
    if rng.random() < 0.15 and "LATERAL" in plan.views:
        plan.views = ("PA", "LATERAL", "LATERAL")
    if rng.random() < NORMAL_SHARE:
        plan.normal_template = True
        if rng.random() < 0.1:
            plan.findings["Support Devices"] = PlantedFinding(status=1, devices=_pick_devices(rng))
        _add_negations(rng, plan, damping=1.0)
        return plan
    names = list(_PREVALENCE)
    weights = np.array([_PREVALENCE[n] for n in names])
    count = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
    chosen = list(rng.choice(names, size=count, replace=False, p=weights / weights.sum()))
    for name in list(chosen):
        for companion, share in _COMPANIONS.get(name, ()):
            if companion not in chosen and rng.random() < share:
                chosen.append(companion)
    for name in chosen:
        uncertain = name != "Support Devices" and rng.random() < UNCERTAIN_SHARE
        plan.findings[str(name)] = PlantedFinding(
            status=-1 if uncertain else 1,
            side=_pick_side(rng, 0.6 if name in ("Pleural Effusion", "Edema") else 0.15),
            size=str(rng.choice(["small", "moderate", "large"], p=[0.5, 0.35, 0.15])),
            strength=0.55 if uncertain else 1.0,
        )
    if "Edema" in plan.findings:
        plan.findings["Edema"].side = "bilateral"
    if "Support Devices" in plan.findings:
        plan.findings["Support Devices"].devices = _pick_devices(rng)
    if rng.random() < 0.12:
        candidates = [n for n in RESOLVABLE if n not in plan.findings]
        if candidates:
            plan.findings[str(rng.choice(candidates))] = PlantedFinding(status=0, resolved=True)
    _add_negations(rng, plan, damping=0.5)
    return plan


def _pick_devices(rng: np.random.Generator) -> tuple[str, ...]:
    kinds = ["et_tube", "central_line", "ng_tube", "pacemaker"]
    return tuple(str(k) for k in rng.choice(kinds, size=int(rng.integers(1, 3)), replace=False))


def _add_negations(rng: np.random.Generator, plan: StudyPlan, damping: float) -> None:
    for name, share in _NEGATION_SHARE.items():
        if name not in plan.findings and rng.random() < share * damping:
            plan.findings[name] = PlantedFinding(status=0)
