"""Free-text radiology reports for synthetic studies, written from the study plan.

The phrasing is varied on purpose (several templates per statement, optional headings, combined
negations, hedges, interval change) so a labeler is tested on language, not on one fixed sentence. Each
sentence only ever asserts the status the plan gives its finding, which is what makes
ground_truth.csv true "as written". Fake PHI (dictating physician, dates, accession, phone, sometimes the
patient's own name and an age over 89) is woven in so the builder's scrubbing is exercised.
"""

from __future__ import annotations

import numpy as np

from mgll_data.demo.fake_phi import FakeStudyPeople
from mgll_data.demo.findings import PlantedFinding, StudyPlan

# Order findings appear in a FINDINGS paragraph: lines and tubes first, then lungs, pleura, heart, bones.
_ORDER = ("Support Devices", "Lung Opacity", "Consolidation", "Pneumonia", "Atelectasis", "Edema", "Lung Lesion",
          "Pneumothorax", "Pleural Effusion", "Pleural Other", "Cardiomegaly", "Enlarged Cardiomediastinum",
          "Fracture")

_POSITIVE = {
    "Pleural Effusion": (
        "There is a {size} {side} pleural effusion.",
        "{Size} {side} pleural effusion is present.",
        "Blunting of the {side} costophrenic angle consistent with a {size} pleural effusion.",
    ),
    "Cardiomegaly": ("The heart is enlarged.", "Cardiomegaly is present.", "The cardiac silhouette is enlarged."),
    "Enlarged Cardiomediastinum": ("The cardiomediastinal silhouette is widened.", "Mediastinal widening is noted."),
    "Lung Opacity": (
        "Hazy opacity in the {side} upper lung.",
        "There is an ill-defined opacity in the {side} mid lung zone.",
    ),
    "Pneumonia": ("Findings are compatible with {side} lower lobe pneumonia.", "{Side} lower lobe pneumonia."),
    "Consolidation": ("Dense consolidation in the {side} lower lobe.", "There is {side} basilar consolidation."),
    "Lung Lesion": ("A pulmonary nodule projects over the {side} lung.", "Several small nodules in the {side} lung.",
                    "There is a rounded {side} lung mass."),
    "Edema": ("Vascular congestion with perihilar pulmonary edema.",
              "There is mild interstitial pulmonary edema.", "Moderate pulmonary edema."),
    "Atelectasis": ("Plate-like atelectasis at the {side} base.", "Linear {side} basilar atelectasis."),
    "Pneumothorax": (
        "There is a {size} {side} apical pneumothorax.",
        "{Size} {side} pneumothorax with a visible pleural line.",
    ),
    "Pleural Other": ("Pleural thickening along the {side} lateral chest wall.", "{Side} apical pleural thickening."),
    "Fracture": ("There is a {side} lateral rib fracture.", "Healing fracture of a {side} posterior rib."),
}
_UNCERTAIN = {
    "Pleural Effusion": ("Possible small {side} pleural effusion.", "Cannot exclude a trace {side} pleural effusion."),
    "Cardiomegaly": ("Borderline heart size; mild cardiomegaly cannot be excluded.", "Possible mild cardiomegaly."),
    "Enlarged Cardiomediastinum": ("The mediastinum may be mildly widened.",),
    "Lung Opacity": ("Questionable subtle opacity in the {side} mid lung.", "Possible faint {side} mid lung opacity."),
    "Pneumonia": ("Cannot exclude early pneumonia.", "{Side} basilar findings may represent early pneumonia."),
    "Consolidation": ("Possible consolidation at the {side} base.",),
    "Lung Lesion": ("A possible small nodule projects over the {side} lung.",),
    "Edema": ("Possible mild pulmonary edema.", "Mild vascular congestion, cannot exclude early edema."),
    "Atelectasis": ("Questionable {side} basilar atelectasis.", "Minimal {side} basilar atelectasis is possible."),
    "Pneumothorax": ("Cannot exclude a tiny {side} apical pneumothorax.",),
    "Pleural Other": ("Possible {side} pleural thickening.",),
    "Fracture": ("Possible {side} rib fracture.",),
}
_NEGATIVE = {
    "Pleural Effusion": ("No pleural effusion.", "There is no pleural effusion."),
    "Pneumothorax": ("No pneumothorax.", "There is no pneumothorax."),
    "Consolidation": ("No focal consolidation.", "There is no focal consolidation."),
    "Cardiomegaly": ("Heart size is normal.", "No cardiomegaly."),
    "Enlarged Cardiomediastinum": ("Mediastinal contours are normal.", "The mediastinum is not widened."),
    "Edema": ("No pulmonary edema.", "There is no evidence of pulmonary edema."),
    "Pneumonia": ("No evidence of pneumonia.",),
    "Lung Lesion": ("No suspicious pulmonary nodules.",),
    "Fracture": ("No acute displaced rib fracture.", "No fracture is seen."),
    "Atelectasis": ("No atelectasis.",),
}
_BOTH_NEGATIVE = ("No pleural effusion or pneumothorax.", "There is no pleural effusion or pneumothorax.",
                  "No effusion or pneumothorax is seen.")
_RESOLVED = {
    "Edema": ("Interval resolution of pulmonary edema.",),
    "Pneumonia": ("The previously seen pneumonia has resolved.",),
    "Pleural Effusion": ("Interval resolution of the previously seen pleural effusion.",),
    "Pneumothorax": ("The previously noted pneumothorax has resolved.",),
    "Atelectasis": ("Interval resolution of basilar atelectasis.",),
    "Consolidation": ("Interval resolution of the previously seen consolidation.",),
}
_DEVICES = {
    "et_tube": "Endotracheal tube terminates approximately 4 cm above the carina.",
    "central_line": "Right internal jugular central venous catheter terminates in the superior vena cava.",
    "ng_tube": "Enteric tube courses below the diaphragm with its tip in the stomach.",
    "pacemaker": "Left-sided pacemaker with a single lead in the right ventricle.",
}
_NORMAL_FILLER = ("The lungs are clear.", "Lungs are well expanded and clear.", "The lungs are clear bilaterally.")
_NORMAL_IMPRESSION = ("No acute cardiopulmonary process.", "No acute intrathoracic abnormality.",
                      "Normal chest radiograph.")
_INDICATIONS = ("shortness of breath", "cough and fever", "chest pain", "evaluate for pneumonia",
                "preoperative evaluation", "hypoxia", "follow-up of pleural effusion", "fall, rule out fracture")


def _fill(rng: np.random.Generator, templates: tuple[str, ...], finding: PlantedFinding) -> str:
    text = str(rng.choice(templates))
    side = finding.side
    if finding.side == "bilateral":
        text = text.replace("a {size} {side} pleural effusion", "{size} bilateral pleural effusions")
        text = text.replace("pleural effusion is present", "pleural effusions are present")
        text = text.replace("the {side} costophrenic angle consistent with a {size} pleural effusion",
                            "both costophrenic angles consistent with {size} bilateral pleural effusions")
    return text.format(size=finding.size, Size=finding.size.capitalize(), side=side, Side=side.capitalize())


def finding_sentences(rng: np.random.Generator, plan: StudyPlan) -> list[str]:
    """One sentence per mentioned finding (negations of effusion + pneumothorax sometimes share one)."""
    sentences: list[str] = []
    pending_negatives = {n for n, f in plan.findings.items() if f.status == 0 and not f.resolved}
    for name in _ORDER:
        f = plan.findings.get(name)
        if f is None:
            continue
        if name == "Support Devices":
            sentences.extend(_DEVICES[d] for d in f.devices)
        elif f.status == 1:
            sentences.append(_fill(rng, _POSITIVE[name], f))
        elif f.status == -1:
            sentences.append(_fill(rng, _UNCERTAIN[name], f))
        elif f.resolved:
            sentences.append(str(rng.choice(_RESOLVED[name])))
    if {"Pleural Effusion", "Pneumothorax"} <= pending_negatives and rng.random() < 0.7:
        sentences.append(str(rng.choice(_BOTH_NEGATIVE)))
        pending_negatives -= {"Pleural Effusion", "Pneumothorax"}
    for name in _ORDER:
        if name in pending_negatives:
            sentences.append(str(rng.choice(_NEGATIVE[name])))
    return sentences


def _impression(rng: np.random.Generator, plan: StudyPlan) -> list[str]:
    asserted = [n for n in _ORDER if n in plan.findings and plan.findings[n].status != 0 and n != "Support Devices"]
    if not asserted:
        return [str(rng.choice(_NORMAL_IMPRESSION))]
    lines = []
    for name in asserted[:2]:
        f = plan.findings[name]
        lines.append(_fill(rng, (_POSITIVE if f.status == 1 else _UNCERTAIN)[name], f))
    return lines


def write_report(rng: np.random.Generator, plan: StudyPlan, people: FakeStudyPeople) -> str:
    """The report file's text, MIMIC-like: optional header sections, FINDINGS, IMPRESSION, sign-off."""
    findings = finding_sentences(rng, plan)
    if plan.normal_template:
        findings.insert(0, str(rng.choice(_NORMAL_FILLER)))
    impression = _impression(rng, plan)
    views = " and ".join("lateral" if v == "LATERAL" else v for v in dict.fromkeys(plan.views))
    study_date = people.study_date.strftime("%m/%d/%Y")
    dictating = f"Dr. {people.dictating[0]} {people.dictating[1]}"
    sex_word = "man" if people.sex == "M" else "woman"
    indication = f"{people.age}-year-old {sex_word} with {rng.choice(_INDICATIONS)}."
    if rng.random() < 0.25:
        indication = f"{people.patient_first} {people.patient_last} is a {indication}"
    lines = ["                                 FINAL REPORT", f" EXAMINATION:  CHEST ({views.upper()})", ""]
    style = rng.random()
    if style < 0.1:
        lines.append(f" {views.capitalize()} views of the chest. " + " ".join(findings + impression))
    else:
        if rng.random() < 0.7:
            lines += [f" INDICATION:  {indication}", ""]
        if rng.random() < 0.5:
            lines += [f" TECHNIQUE:  Chest {views} views.", ""]
        if rng.random() < 0.5:
            prior = (people.study_date.replace(day=1)).strftime("%m/%d/%Y")
            lines += [
                f" COMPARISON:  Chest radiograph dated {prior}." if rng.random() < 0.7 else " COMPARISON:  None.",
                "",
            ]
        lines += [" FINDINGS:", "", " " + " ".join(findings), "", " IMPRESSION:", "", " " + " ".join(impression), ""]
    if rng.random() < 0.3:
        lines += [
            f" NOTIFICATION:  Findings discussed with {dictating} by telephone at {people.phone} on {study_date}.",
            "",
        ]
    lines += [f" Dictated by: {dictating} on {study_date}. Accession number: {people.accession}. "
              f"Questions: call {people.phone}."]
    return "\n".join(lines) + "\n"
