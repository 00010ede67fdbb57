"""Today's demo generator as the negative control: studies from the demo's own planner, drawing and report
writer (as `mgll demo export` makes them), through the same de-identification and report pipeline
`mgll build` runs, but drawn straight into small arrays (no DICOM, no build).

Here the levels are (nearly) functions of the label set -- category from it, disease its names,
explanation the vocabulary's sentence per finding -- and the dataset carries no per-level items, so MGLL
trains as `mgll pretrain` does on a built dataset: label sets at category / disease, identical text at
the free-text levels. With no complementary signal to exploit, MGLL should tie CLIP-concat here; a
"win" on this data would point at a bug in the comparison, not at the method.
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

from bench.proof.generator import LEVELS, ProofData

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Findings rarer than this in the test split are not scored (an AUC over a handful of positives is noise);
# the items and texts still carry them.
MIN_TEST_POSITIVES = 20


def _sentences(text: str | None) -> tuple[str, ...] | None:
    return tuple(s for s in _SENTENCE_END.split(text.strip()) if s) or None if text else None


def _image(rng: np.random.Generator, plan, view: str, image_size: int) -> np.ndarray:
    from mgll_data.demo.synthetic import draw_frontal, draw_lateral

    shape = (2 * image_size, 2 * image_size)
    density = (
        draw_lateral(rng, plan.drawn(), shape) if view == "LATERAL" else draw_frontal(rng, plan.drawn(), shape, view)
    )
    small = Image.fromarray((density * 255).astype(np.uint8)).resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(small)


def generate_demo(patients: dict[str, int], *, image_size: int = 32, seed: int = 0) -> ProofData:
    """One demo study per patient, every view of it an image; labels and texts from the real pipeline."""
    from mgll_data.deid.text import scrub_text
    from mgll_data.demo.fake_phi import fake_people
    from mgll_data.demo.findings import plan_study
    from mgll_data.demo.report_text import write_report
    from mgll_data.pipeline import load_pipeline
    from mgll_data.reports.understanding import understand
    from mgll_data.reports.vocabulary import load_vocabulary

    pipeline = load_pipeline("mimic-cxr")
    vocab = load_vocabulary(pipeline.reports.vocabulary)
    names = list(vocab.by_name)
    images, patient, split, label_rows = [], [], [], []
    texts: dict[str, list] = {level: [] for level in LEVELS}
    index = 0
    for name, count in patients.items():
        for _ in range(count):
            rng = np.random.default_rng([seed, index, 11])
            plan = plan_study(rng)
            report = scrub_text(write_report(rng, plan, fake_people(rng)))  # as `mgll build` de-identifies it
            result = understand(report, {"modality": "DX", "body_part": "CHEST"}, pipeline)
            statuses = {label.name: label.status for label in result.labels if label.status is not None}  # None: blank
            for view in plan.views:
                images.append(_image(rng, plan, view, image_size))
                patient.append(index)
                split.append(name)
                label_rows.append([statuses.get(n, 0) for n in names])
                for level in LEVELS:
                    texts[level].append(_sentences(result.texts.get(level)))
            index += 1
    labels = np.asarray(label_rows, dtype=np.int8)
    test = np.asarray(split) == "test"
    scored = [j for j in range(len(names)) if (labels[test, j] == 1).sum() >= MIN_TEST_POSITIVES]
    positive_sets = [tuple(n for n, v in zip(names, row) if v == 1) for row in labels]
    items = {level: positive_sets if level in ("category", "disease") else [()] * len(labels) for level in LEVELS}
    plain = [vocab.by_name[names[j]].plain for j in scored]
    return ProofData(
        images=np.stack(images),
        patient=np.asarray(patient),
        split=np.asarray(split, dtype=object),
        labels=labels[:, scored],
        attributes={},
        texts=texts,
        items=items,
        label_names=tuple(names[j] for j in scored),
        prompts={  # "no finding" has no in-distribution opposite at the disease level: left out of zero-shot
            "disease": [((p,), ("no finding",)) if p != "no finding" else None for p in plain],
            "concat": [(("abnormal", p), ("normal", "no finding")) if p != "no finding" else None for p in plain],
        },
    )
