"""Writes the labeller's development sets (dev_nih14.jsonl, dev_chexpert.jsonl, dev_fundus.jsonl).

The reports are composed from hand-written sentences in the Open-i / IU X-ray style (FINDINGS +
IMPRESSION, "XXXX" de-identification tokens), each sentence coded by hand with what a radiologist
reading it would code: positive (1), uncertain (-1) or nothing. A report's gold label for a finding is
the CheXpert-style aggregate of its sentences. Sentences were written from knowledge of how chest X-ray
reports are phrased, not from the labeller's term lists. Re-run to regenerate (deterministic):

    .venv/bin/python tests/data/reports/make_dev_sets.py
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (sentence, {nih14 finding: status}); chexpert labels are mapped (CHEXPERT_MAP) unless given as a third item,
# plus "Lung Opacity" for any sentence describing an opacity or density (CheXpert's umbrella class).
ABNORMAL = [
    # Atelectasis
    ("Streaky opacities in the left lung base consistent with atelectasis.", {"Atelectasis": 1}),
    ("Mild bibasilar atelectasis.", {"Atelectasis": 1}),
    ("Subsegmental atelectasis in the right lower lobe.", {"Atelectasis": 1}),
    ("Linear opacity in the lingula, likely subsegmental atelectasis.", {"Atelectasis": -1}),
    ("There is platelike atelectasis at the left base.", {"Atelectasis": 1}),
    ("Left basilar opacity which may represent atelectasis or pneumonia.", {"Atelectasis": -1, "Pneumonia": -1}),
    ("Bibasilar airspace opacities likely reflect atelectasis.", {"Atelectasis": -1, "Infiltration": 1}),
    ("Right middle lobe collapse.", {"Atelectasis": 1}),
    ("Low lung volumes with bibasilar atelectatic changes.", {"Atelectasis": 1}),
    ("Minimal XXXX atelectasis in the right base.", {"Atelectasis": 1}),
    # Cardiomegaly
    ("The heart is enlarged.", {"Cardiomegaly": 1}),
    ("Stable cardiomegaly.", {"Cardiomegaly": 1}),
    ("Heart size is mildly enlarged.", {"Cardiomegaly": 1}),
    ("The cardiac silhouette is moderately enlarged.", {"Cardiomegaly": 1}),
    ("Heart size is upper limits of normal.", {"Cardiomegaly": -1}),
    ("Borderline cardiomegaly.", {"Cardiomegaly": -1}),
    ("Mild cardiomegaly, unchanged from prior.", {"Cardiomegaly": 1}),
    ("There is enlargement of the cardiac silhouette.", {"Cardiomegaly": 1}),
    ("Cardiomegaly with a left ventricular configuration.", {"Cardiomegaly": 1}),
    ("The heart size is at the upper limits of normal.", {"Cardiomegaly": -1}),
    # Effusion
    ("Small left pleural effusion.", {"Effusion": 1}),
    ("Small bilateral pleural effusions.", {"Effusion": 1}),
    ("Blunting of the right costophrenic angle suggests a small effusion.", {"Effusion": -1}),
    ("There is blunting of the left costophrenic XXXX.", {"Effusion": 1}),
    ("Moderate right pleural effusion with adjacent airspace disease.", {"Effusion": 1, "Infiltration": 1}),
    ("Cannot exclude small left effusion.", {"Effusion": -1}),
    ("Trace left pleural fluid.", {"Effusion": 1}),
    ("Layering right effusion is unchanged.", {"Effusion": 1}),
    ("Blunted costophrenic angles bilaterally, which may reflect small effusions or pleural thickening.",
     {"Effusion": -1, "Pleural_Thickening": -1}),
    # Infiltration
    ("Patchy airspace disease in the right lower lobe.", {"Infiltration": 1}),
    ("XXXX opacity in the right base may represent infiltrate.", {"Infiltration": -1}),
    ("Increased interstitial markings bilaterally.", {"Infiltration": 1}),
    ("Diffuse interstitial opacities are again seen.", {"Infiltration": 1}),
    ("Left lower lobe infiltrate.", {"Infiltration": 1}),
    ("Coarse interstitial markings, chronic in appearance.", {"Infiltration": 1}),
    ("Bilateral perihilar infiltrates.", {"Infiltration": 1}),
    ("Focal air space opacity in the left upper lobe.", {"Infiltration": 1}),
    # Mass
    ("A 4 cm right hilar mass is identified.", {"Mass": 1}),
    ("Mass-like opacity in the left upper lobe.", {"Mass": 1}),
    ("Left upper lobe mass is again noted.", {"Mass": 1}),
    ("Right perihilar masslike density, concerning for malignancy.", {"Mass": 1}),
    ("Mediastinal mass cannot be excluded.", {"Mass": -1}, {"Enlarged Cardiomediastinum": -1}),
    # Nodule
    ("A 1 cm nodule is seen in the right midlung.", {"Nodule": 1}),
    ("Nodular opacity in the left lower lobe.", {"Nodule": 1}),
    ("Multiple bilateral pulmonary nodules.", {"Nodule": 1}),
    ("Possible nodule projecting over the right 4th anterior rib.", {"Nodule": -1}),
    ("Small nodular density in the right upper lobe, possibly a nipple shadow.", {"Nodule": 1}),
    ("Stable left lower lobe pulmonary nodule.", {"Nodule": 1}),
    # Pneumonia
    ("Right lower lobe pneumonia.", {"Pneumonia": 1}),
    ("Patchy opacity in the lingula concerning for pneumonia.", {"Pneumonia": -1}),
    ("Findings are suspicious for an infectious process in the left base.", {"Pneumonia": -1}),
    ("Left basilar consolidation consistent with pneumonia.", {"Consolidation": 1, "Pneumonia": 1}),
    ("Airspace disease in the right middle lobe, likely pneumonia.", {"Infiltration": 1, "Pneumonia": -1}),
    ("Early pneumonia in the left lower lobe is not excluded.", {"Pneumonia": -1}),
    # Pneumothorax
    ("Small right apical pneumothorax.", {"Pneumothorax": 1}),
    ("There is a moderate left pneumothorax.", {"Pneumothorax": 1}),
    ("Tiny left apical pneumothorax is suspected.", {"Pneumothorax": -1}),
    ("Large right pneumothorax with partial collapse of the right lung.", {"Pneumothorax": 1, "Atelectasis": 1}),
    # Consolidation
    ("Focal consolidation in the right upper lobe.", {"Consolidation": 1}),
    ("Dense consolidation of the left lower lobe.", {"Consolidation": 1}),
    ("Right middle lobe consolidation versus atelectasis.", {"Consolidation": -1, "Atelectasis": -1}),
    ("Patchy consolidation at the left lung base.", {"Consolidation": 1}),
    # Edema
    ("Mild interstitial pulmonary edema.", {"Edema": 1}),
    ("Findings consistent with pulmonary edema.", {"Edema": 1}),
    ("Diffuse bilateral opacities which may represent edema.", {"Edema": -1}),
    ("Cephalization of the pulmonary XXXX and Kerley B lines suggest interstitial edema.", {"Edema": -1}),
    ("Moderate pulmonary edema, worse than prior.", {"Edema": 1}),
    # Emphysema
    ("Hyperexpanded lungs.", {"Emphysema": 1}),
    ("The lungs are hyperinflated, consistent with COPD.", {"Emphysema": 1}),
    ("Emphysematous changes in both upper lobes.", {"Emphysema": 1}),
    ("Hyperexpanded lungs with flattened diaphragms, suggestive of emphysema.", {"Emphysema": 1}),
    ("Changes of chronic obstructive pulmonary disease.", {"Emphysema": 1}),
    ("The lungs are hyperlucent and overinflated.", {"Emphysema": 1}),
    ("Bullous emphysema at the apices.", {"Emphysema": 1}),
    # Fibrosis
    ("Scarring in the right upper lobe.", {"Fibrosis": 1}),
    ("Fibrotic changes at the lung apices.", {"Fibrosis": 1}),
    ("Chronic interstitial lung disease with basilar fibrosis.", {"Fibrosis": 1}),
    ("Left basilar scarring, unchanged.", {"Fibrosis": 1}),
    ("Linear opacity in the left base likely represents scarring or atelectasis.", {"Fibrosis": -1, "Atelectasis": -1}),
    ("Biapical scarring.", {"Fibrosis": 1}),
    # Pleural thickening
    ("Biapical pleural thickening.", {"Pleural_Thickening": 1}),
    ("Right apical pleural thickening is stable.", {"Pleural_Thickening": 1}),
    ("Mild blunting of the left costophrenic XXXX likely due to pleural thickening.", {"Pleural_Thickening": -1, "Effusion": 1}),
    ("Left apical pleural capping.", {"Pleural_Thickening": 1}),
    ("Calcified pleural plaques bilaterally.", {"Pleural_Thickening": 1}),
    # Hernia
    ("Small hiatal hernia.", {"Hernia": 1}),
    ("There is a large hiatal hernia.", {"Hernia": 1}),
    ("Retrocardiac opacity with an air-fluid level, consistent with hiatal hernia.", {"Hernia": 1}),
    ("Moderate-sized hiatus hernia.", {"Hernia": 1}),
]

# Sentences that state absence; the set says which findings they negate (gold 0 unless positive elsewhere).
NEGATIVE = [
    ("No pleural effusion or pneumothorax.", {"Effusion", "Pneumothorax"}),
    ("No focal consolidation, pneumothorax, or large pleural effusion.", {"Consolidation", "Pneumothorax", "Effusion"}),
    ("There is no focal airspace disease, pleural effusion, or pneumothorax.", {"Infiltration", "Effusion", "Pneumothorax"}),
    ("No pneumothorax.", {"Pneumothorax"}),
    ("No pneumonia, effusions, edema, pneumothorax, adenopathy, nodules or masses.",
     {"Pneumonia", "Effusion", "Edema", "Pneumothorax", "Nodule", "Mass"}),
    ("The lungs are clear without focal consolidation.", {"Consolidation"}),
    ("There is no evidence of pulmonary edema.", {"Edema"}),
    ("Pneumothorax is not seen.", {"Pneumothorax"}),
    ("No suspicious pulmonary nodules or masses.", {"Nodule", "Mass"}),
    ("Interval resolution of pulmonary edema.", {"Edema"}),
    ("The previously seen right effusion has resolved.", {"Effusion"}),
    ("Negative for pneumothorax or pleural effusion.", {"Pneumothorax", "Effusion"}),
    ("No definite focal infiltrate.", {"Infiltration"}),
    ("There is no XXXX pneumothorax.", {"Pneumothorax"}),
    ("The heart is not enlarged.", {"Cardiomegaly"}),
    ("No radiographic evidence of pneumonia.", {"Pneumonia"}),
    ("Lungs are clear bilaterally with no consolidation or effusion.", {"Consolidation", "Effusion"}),
    ("Without evidence of pneumothorax or large effusion.", {"Pneumothorax", "Effusion"}),
    ("No hiatal hernia.", {"Hernia"}),
    ("No evidence of atelectasis or consolidation.", {"Atelectasis", "Consolidation"}),
    ("There is no pleural thickening.", {"Pleural_Thickening"}),
    ("Pleural effusions are no longer seen.", {"Effusion"}),
]

NORMAL = [
    "The heart is normal in size.",
    "The mediastinum is unremarkable.",
    "The lungs are clear.",
    "Heart size and pulmonary vascularity appear within normal limits.",
    "The cardiomediastinal silhouette is within normal limits for size and contour.",
    "The lungs are normally inflated.",
    "The heart, pulmonary XXXX and mediastinum are within normal limits.",
    "Normal heart size.",
    "Cardiac and mediastinal contours are within normal limits.",
    "The XXXX are intact.",
    "No acute bony abnormality.",
    "Visualized osseous structures are unremarkable.",
    "Lungs are clear bilaterally.",
    "Heart size normal.",
    "Pulmonary vascularity is normal.",
    "The trachea is midline.",
    "XXXX are normal.",
]

# Findings outside the 14 NIH classes (nih14 gold: nothing), including look-alikes; with their CheXpert codes.
DISTRACTORS = [
    ("Stable calcified granuloma in the right upper lobe.", {}),
    ("Calcified granulomas in the left lung.", {}),
    ("Degenerative changes of the spine.", {}),
    ("Degenerative changes in the thoracic spine.", {}),
    ("Atherosclerotic calcification of the aortic XXXX.", {}),
    ("Tortuous thoracic aorta.", {}),
    ("Postoperative changes of median sternotomy.", {}),
    ("Calcified mediastinal lymph nodes.", {}),
    ("Old healed right rib fractures.", {"Fracture": 1}),
    ("Mild thoracic dextroscoliosis.", {}),
    ("Right-sided central venous catheter tip in the distal SVC.", {"Support Devices": 1}),
    ("Cholecystectomy clips in the right upper quadrant.", {}),
    ("Prior granulomatous disease.", {}),
    ("Left-sided dual-lead pacemaker in XXXX position.", {"Support Devices": 1}),
    ("Anterior osteophytes in the thoracic spine.", {}),
]

IMPRESSION_NORMAL = [
    "No acute cardiopulmonary process.",
    "No acute cardiopulmonary abnormality.",
    "Normal chest.",
    "No active disease.",
    "No acute cardiopulmonary disease.",
    "Negative chest x-XXXX.",
    "No acute findings.",
]

# Chest sentences for CheXpert-only classes: (sentence, chexpert labels).
CHEXPERT_ONLY = [
    ("Right-sided PICC line with tip in the SVC.", {"Support Devices": 1}),
    ("Endotracheal tube terminates 4 cm above the carina.", {"Support Devices": 1}),
    ("Left chest wall pacemaker with leads in the right atrium and ventricle.", {"Support Devices": 1}),
    ("Acute fracture of the left 6th rib.", {"Fracture": 1}),
    ("The mediastinum is widened.", {"Enlarged Cardiomediastinum": 1}),
    ("Enlarged cardiomediastinal silhouette.", {"Enlarged Cardiomediastinum": 1}),
    ("Patchy opacity in the right lower lobe.", {"Lung Opacity": 1}),
    ("Hazy opacity at the left base.", {"Lung Opacity": 1}),
    ("No displaced rib fracture.", {"Fracture": 0}),
]

# Whole reports written by hand in the Open-i style (findings, impression, nih14 gold); harder and less
# regular than the composed ones. Gold follows the radiologist's statement: hedged findings are -1.
HANDWRITTEN = [
 ("The cardiac silhouette and mediastinum size are within normal limits. There is no pulmonary edema. There is no focal consolidation. There are no XXXX of a pleural effusion. There is no evidence of pneumothorax.", "Normal chest x-XXXX.", {}),
 ("Borderline cardiomegaly. Midline sternotomy XXXX. Enlarged pulmonary arteries. Clear lungs. Inferior XXXX XXXX XXXX.", "No acute pulmonary findings.", {"Cardiomegaly": -1}),
 ("Heart size is normal and the lungs are clear.", "No acute cardiopulmonary disease.", {}),
 ("The cardiac silhouette is normal in size and configuration. The mediastinum and perihilar structures appear unremarkable. The lungs appear clear. The osseous structures are within normal limits.", "Normal chest.", {}),
 ("There is opacity at posterior aspect of lower chest seen on lateral view which probably represents left lower lobe consolidation. There may also be small bilateral pleural effusion. Upper limits of normal heart size. Mild central vascular prominence. Old fracture deformities of multiple right ribs.", "1. Question of left lower lobe pneumonia and/or pleural effusion. 2. Borderline heart size with mild central vascular congestive changes.", {"Consolidation": -1, "Effusion": -1, "Cardiomegaly": -1, "Pneumonia": -1}),
 ("Heart size, mediastinal contour, and pulmonary vascularity are within normal limits. There is bilateral hyperinflation, without focal consolidation, pneumothorax, or pleural effusion. Visualized osseous structures appear intact.", "Mildly hyperinflated, clear lungs.", {"Emphysema": 1}),
 ("Limited exam as the left costophrenic XXXX is excluded from the PA view. The heart size is normal. The mediastinal contour is within normal limits. The lungs are free of any focal infiltrates. There is large calcified granuloma within the medial right lung base. There are no nodules or masses. No visible pneumothorax. No visible pleural fluid. Mild multilevel degenerative changes seen within the thoracic spine.", "No acute radiographic cardiopulmonary process.", {}),
 ("The heart is mildly enlarged. There are bilateral small pleural effusions with bibasilar airspace opacities, likely atelectasis. No pneumothorax.", "Cardiomegaly with small bilateral effusions and bibasilar atelectasis.", {"Cardiomegaly": 1, "Effusion": 1, "Atelectasis": 1, "Infiltration": 1}),
 ("Lungs are hyperexpanded with flattening of the hemidiaphragms. No focal airspace consolidation. Heart size within normal limits. No pleural effusion.", "Hyperexpanded lungs consistent with COPD. No acute process.", {"Emphysema": 1}),
 ("There is a 2.5 cm rounded density in the right upper lobe. The heart and mediastinum are normal. No effusion.", "Right upper lobe nodule. Recommend CT for further evaluation.", {"Nodule": 1}),
 ("Cardiomediastinal silhouette is normal. There are streaky bibasilar opacities compatible with atelectasis or scarring. No pneumothorax or large effusion.", "Bibasilar atelectasis versus scarring.", {"Atelectasis": -1, "Fibrosis": -1}),
 ("The heart is normal in size. There is a large hiatal hernia. The lungs are clear.", "Large hiatal hernia. No acute cardiopulmonary disease.", {"Hernia": 1}),
 ("Heart size normal. Lungs are clear. XXXX are normal. No pneumonia, effusions, edema, pneumothorax, adenopathy, nodules or masses.", "Normal chest", {}),
 ("Stable cardiomegaly. Increased interstitial markings, most prominent at the bases, similar to prior. No focal consolidation. Small right pleural effusion.", "Stable cardiomegaly with chronic interstitial changes. Small right effusion.", {"Cardiomegaly": 1, "Infiltration": 1, "Effusion": 1}),
 ("The lungs are clear bilaterally. Specifically, no evidence of focal consolidation, pneumothorax, or pleural effusion. Cardio mediastinal silhouette is unremarkable. Visualized osseous structures of the thorax are without acute abnormality.", "No acute cardiopulmonary abnormality.", {}),
 ("Interval development of left lower lobe airspace disease. The heart is normal in size. No pleural effusion.", "Left lower lobe pneumonia.", {"Infiltration": 1, "Pneumonia": 1}),
 ("There are chronic-appearing interstitial opacities bilaterally with reticular pattern and honeycombing at the bases, compatible with pulmonary fibrosis. Heart size is normal.", "Pulmonary fibrosis without acute superimposed process.", {"Fibrosis": 1, "Infiltration": 1}),
 ("Mild cardiomegaly. Pulmonary vascular congestion with bilateral interstitial edema. Small bilateral effusions.", "Congestive heart failure.", {"Cardiomegaly": 1, "Edema": 1, "Effusion": 1}),
 ("Normal heart size. Right apical pleural thickening. Otherwise clear lungs.", "No acute disease.", {"Pleural_Thickening": 1}),
 ("The heart size and pulmonary vascularity appear within normal limits. A large right pneumothorax is present with near complete collapse of the right lung.", "Large right pneumothorax.", {"Pneumothorax": 1, "Atelectasis": 1}),
 ("Heart size upper limits of normal. Lungs are clear. No effusion or pneumothorax.", "Borderline heart size. No acute findings.", {"Cardiomegaly": -1}),
 ("Left perihilar mass measuring 5 cm. Left hilar adenopathy. No pleural effusion.", "Left perihilar mass, concerning for malignancy.", {"Mass": 1}),
 ("Lungs are clear. No pleural effusions or pneumothoraces. Heart and mediastinum of normal size and contour. Degenerative changes in the thoracic spine.", "Clear lungs.", {}),
 ("Patchy right lower lobe opacity. This may represent pneumonia in the appropriate clinical setting. Heart size normal.", "Right lower lobe opacity, possibly pneumonia.", {"Pneumonia": -1}),
 ("Subsegmental atelectasis in the left lower lobe. Otherwise the lungs are clear. No pleural effusion.", "Left basilar atelectasis.", {"Atelectasis": 1}),
 ("There is minimal blunting of the right costophrenic XXXX which may represent a small effusion or pleural thickening. The heart is normal.", "Minimal blunting of the right costophrenic XXXX.", {"Effusion": -1, "Pleural_Thickening": -1}),
 ("Emphysematous changes are present. There are bilateral upper lobe bullae. No acute infiltrate.", "COPD without acute disease.", {"Emphysema": 1}),
 ("Cardiomegaly is unchanged. The lungs are clear of infiltrate. No pleural effusion. Calcified aorta.", "Stable cardiomegaly.", {"Cardiomegaly": 1}),
 ("Multiple bilateral pulmonary nodules ranging from 5 mm to 1.5 cm, consistent with metastatic disease.", "Multiple pulmonary nodules, compatible with metastases.", {"Nodule": 1}),
 ("Dense retrocardiac consolidation. Small left effusion. Heart size normal.", "Left lower lobe consolidation and small effusion, likely pneumonia.", {"Consolidation": 1, "Effusion": 1, "Pneumonia": -1}),
 ("Diffuse bilateral alveolar opacities consistent with pulmonary edema. Enlarged heart.", "Pulmonary edema and cardiomegaly.", {"Edema": 1, "Cardiomegaly": 1}),
 ("The lungs are normally expanded. Scarring is seen in the left upper lobe. No acute airspace disease.", "Left upper lobe scarring.", {"Fibrosis": 1}),
 ("Interval resolution of the previously seen right lower lobe pneumonia. No new consolidation.", "Resolved pneumonia.", {}),
 ("The heart is not significantly enlarged. No focal infiltrate. No effusion.", "No acute cardiopulmonary findings.", {}),
 ("Minimal left basilar opacity, likely atelectasis, although early infiltrate is not excluded.", "Left base opacity. Atelectasis versus infiltrate.", {"Atelectasis": -1, "Infiltration": -1}),
 ("No pneumothorax. Bilateral pleural thickening with calcified pleural plaques, consistent with prior asbestos exposure.", "Calcified pleural plaques.", {"Pleural_Thickening": 1}),
 ("Low lung volumes. The heart is normal in size. No focal consolidation. Small hiatal hernia.", "Hiatal hernia. No acute process.", {"Hernia": 1}),
 ("Mass-like opacity in the right upper lobe measures 3.5 cm. Adjacent pleural thickening.", "Right upper lobe mass. Further evaluation with CT recommended.", {"Mass": 1, "Pleural_Thickening": 1}),
 ("Trace bilateral effusions. The heart is top normal in size. Mild bibasilar atelectasis.", "Trace effusions and mild atelectasis.", {"Effusion": 1, "Atelectasis": 1, "Cardiomegaly": -1}),
 ("Lungs are clear. There is no XXXX of pneumothorax. Heart size is normal. There are surgical clips in the right upper quadrant.", "No acute disease.", {}),
 ("No pleural effusion. No pneumothorax. No consolidation. Heart size normal. Calcified granulomas are again seen.", "Negative.", {}),
 ("Hyperinflated lungs with increased AP diameter. Biapical scarring. No focal consolidation.", "Emphysema and apical scarring.", {"Emphysema": 1, "Fibrosis": 1}),
 ("Right upper lobe collapse with elevation of the minor fissure.", "Right upper lobe atelectasis, XXXX due to endobronchial lesion. Recommend CT.", {"Atelectasis": 1}),
 ("The heart is enlarged. There is no evidence of congestive failure. No pleural effusion.", "Cardiomegaly without failure.", {"Cardiomegaly": 1}),
 ("There are coarse interstitial markings throughout both lungs, unchanged from the prior exam. No pneumothorax.", "Chronic interstitial lung disease, stable.", {"Infiltration": 1, "Fibrosis": 1}),
 ("Left pleural effusion has decreased in size. Residual left basilar atelectasis.", "Decreasing left pleural effusion.", {"Effusion": 1, "Atelectasis": 1}),
 ("Possible small nodule in the left midlung, which may represent a nipple shadow. Recommend repeat PA with nipple markers.", "Possible left lung nodule.", {"Nodule": -1}),
 ("The lungs are clear without evidence of infiltrate, mass, or effusion. Heart size is within normal limits.", "No acute abnormality.", {}),
 ("Airspace opacity in the right middle lobe. No effusion.", "Right middle lobe infiltrate.", {"Infiltration": 1}),
 ("Ill-defined opacities in the right lower lobe may be due to aspiration or infection.", "Right lower lobe opacities, possibly aspiration pneumonia.", {"Pneumonia": -1}),
]


CHEXPERT_MAP = {
    "Atelectasis": "Atelectasis", "Cardiomegaly": "Cardiomegaly", "Effusion": "Pleural Effusion",
    "Infiltration": "Lung Opacity", "Mass": "Lung Lesion", "Nodule": "Lung Lesion", "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax", "Consolidation": "Consolidation", "Edema": "Edema",
    "Pleural_Thickening": "Pleural Other", "Emphysema": None, "Fibrosis": None, "Hernia": None,
}

FUNDUS_ABNORMAL = [
    ("Scattered microaneurysms and dot-blot haemorrhages in all quadrants, consistent with moderate non-proliferative diabetic retinopathy.", {"Diabetic Retinopathy": 1}),
    ("Mild NPDR in both eyes.", {"Diabetic Retinopathy": 1}),
    ("Neovascularization of the disc, proliferative diabetic retinopathy.", {"Diabetic Retinopathy": 1}),
    ("Hard exudates within one disc diameter of the fovea, suspicious for diabetic macular edema.", {"Diabetic Macular Edema": -1}),
    ("Clinically significant macular oedema.", {"Diabetic Macular Edema": 1}),
    ("Enlarged cup-to-disc ratio of 0.8, glaucomatous cupping.", {"Glaucoma": 1}),
    ("Glaucoma suspect based on disc appearance.", {"Glaucoma": -1}),
    ("Numerous soft drusen at the macula.", {"Drusen": 1}),
    ("Geographic atrophy of the macula consistent with advanced AMD.", {"Age-related Macular Degeneration": 1}),
    ("Tessellated fundus with peripapillary atrophy, pathologic myopia.", {"Pathologic Myopia": 1}),
    ("Hazy media, likely cataract.", {"Cataract": -1}),
    ("Dense cataract limits the view.", {"Cataract": 1}),
    ("AV nicking and arteriolar narrowing consistent with hypertensive retinopathy.", {"Hypertensive Retinopathy": 1}),
    ("Flame haemorrhages in the superotemporal arcade in keeping with branch retinal vein occlusion.", {"Retinal Vein Occlusion": 1}),
    ("Few small drusen, possibly early AMD.", {"Drusen": 1, "Age-related Macular Degeneration": -1}),
]
FUNDUS_NEGATIVE = [
    ("No diabetic retinopathy.", {"Diabetic Retinopathy"}),
    ("No signs of glaucoma.", {"Glaucoma"}),
    ("No macular oedema.", {"Diabetic Macular Edema"}),
    ("No drusen.", {"Drusen"}),
]
FUNDUS_NORMAL = [
    "Optic disc is pink with a healthy rim.", "Cup-to-disc ratio 0.3.", "Macula and fovea appear normal.",
    "Vessels are of normal calibre.", "Retina is flat.", "Good quality image.",
]


def aggregate(sentence_labels: list[dict[str, int]], negated: set[str]) -> dict[str, int]:
    """CheXpert-style: 1 if any sentence asserts it, else -1 if any hedges it, else 0 if negated."""
    seen: dict[str, set[int]] = {name: {0} for name in negated}
    for labels in sentence_labels:
        for name, status in labels.items():
            seen.setdefault(name, set()).add(status)
    return {name: 1 if 1 in s else -1 if -1 in s else 0 for name, s in seen.items()}


def chexpert_codes(item: tuple) -> dict[str, int]:
    sentence, labels = item[0], item[1]
    if len(item) > 2:
        return dict(item[2])
    codes = {CHEXPERT_MAP[n]: s for n, s in labels.items() if CHEXPERT_MAP[n]}
    if re.search(r"opacit|densit", sentence.lower()):
        codes.setdefault("Lung Opacity", 1)
    return codes


def chest_reports(rng: random.Random, n: int) -> list[dict]:
    reports = []
    for i in range(n):
        kind = rng.random()
        k = 0 if kind < 0.35 else rng.choice([1, 1, 1, 2, 2, 3])
        abnormal = rng.sample(ABNORMAL, k)
        positives = {name for item in abnormal for name in item[1]}
        negs = [s for s in rng.sample(NEGATIVE, rng.choice([0, 1, 1, 2])) if not (s[1] & positives)]
        normals = rng.sample(NORMAL, rng.choice([1, 2, 3]))
        distract = rng.sample(DISTRACTORS, rng.choice([0, 0, 1, 1, 2]))
        extra = rng.sample(CHEXPERT_ONLY, rng.choice([0, 0, 0, 1]))
        findings = normals + [item[0] for item in abnormal] + [s for s, _ in negs] + [s for s, _ in distract] + [s for s, _ in extra]
        rng.shuffle(findings)
        if abnormal:
            impression_parts = [abnormal[0][0]] if rng.random() < 0.7 else ["Findings as above."]
        else:
            impression_parts = [rng.choice(IMPRESSION_NORMAL)]
        text = f"FINDINGS: {' '.join(findings)}\nIMPRESSION: {' '.join(impression_parts)}"
        if rng.random() < 0.15:
            text = f"INDICATION: XXXX-year-old male with cough, rule out pneumonia.\nCOMPARISON: None.\n{text}"
        negated = {name for _, names in negs for name in names}
        nih = aggregate([item[1] for item in abnormal], negated)
        chex_sentences = [chexpert_codes(item) for item in abnormal]
        chex_sentences += [labels for _, labels in extra] + [labels for _, labels in distract]
        chex = aggregate(chex_sentences, {CHEXPERT_MAP[n] for n in negated if CHEXPERT_MAP[n]})
        if not any(s in (1, -1) for name, s in chex.items() if name != "Support Devices"):
            chex["No Finding"] = 1
        reports.append({"report_id": f"cxr-{i:04d}", "text": text, "nih14": nih, "chexpert": chex})
    return reports


def fundus_reports(rng: random.Random, n: int) -> list[dict]:
    reports = []
    for i in range(n):
        k = 0 if rng.random() < 0.3 else rng.choice([1, 1, 2])
        abnormal = rng.sample(FUNDUS_ABNORMAL, k)
        positives = {name for item in abnormal for name in item[1]}
        negs = [s for s in rng.sample(FUNDUS_NEGATIVE, rng.choice([0, 1, 2])) if not (s[1] & positives)]
        sentences = rng.sample(FUNDUS_NORMAL, 2) + [item[0] for item in abnormal] + [s for s, _ in negs]
        rng.shuffle(sentences)
        impression = abnormal[0][0] if abnormal else "Normal fundus."
        gold = aggregate([labels for _, labels in abnormal], {x for _, names in negs for x in names})
        if not any(s in (1, -1) for s in gold.values()):
            gold["No Finding"] = 1
        reports.append({"report_id": f"fundus-{i:04d}", "text": f"FINDINGS: {' '.join(sentences)}\nIMPRESSION: {impression}",
                        "fundus": gold})
    return reports


def main() -> None:
    rng = random.Random(20261123)
    chest = chest_reports(rng, 240)
    with open(HERE / "dev_nih14.jsonl", "w", encoding="utf-8") as fh:
        for r in chest:
            fh.write(json.dumps({"report_id": r["report_id"], "text": r["text"], "labels": r["nih14"]}) + "\n")
        for i, (findings, impression, gold) in enumerate(HANDWRITTEN):
            text = f"FINDINGS: {findings}\nIMPRESSION: {impression}"
            fh.write(json.dumps({"report_id": f"hand-{i:03d}", "text": text, "labels": gold}) + "\n")
    with open(HERE / "dev_chexpert.jsonl", "w", encoding="utf-8") as fh:
        for r in chest:
            fh.write(json.dumps({"report_id": r["report_id"], "text": r["text"], "labels": r["chexpert"]}) + "\n")
    with open(HERE / "dev_fundus.jsonl", "w", encoding="utf-8") as fh:
        for r in fundus_reports(rng, 80):
            fh.write(json.dumps({"report_id": r["report_id"], "text": r["text"], "labels": r["fundus"]}) + "\n")


if __name__ == "__main__":
    main()
