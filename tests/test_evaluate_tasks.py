"""Downstream loading, the probe, retrieval ranks and the report, without a trained model."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from mgll_train.evaluate import EvaluationError, downstream, linear_probe, parse_tasks, report, retrieval, zero_shot
from mgll_train.evaluate.downstream import Downstream


def _png(value: int, size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_csv(tmp_path, header: str, lines: list[str], images: int):
    (tmp_path / "img").mkdir(exist_ok=True)
    for i in range(images):
        (tmp_path / "img" / f"{i}.png").write_bytes(_png(i * 10))
    path = tmp_path / "labels.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def test_parquet_labels_texts_and_bytes_round_trip(tmp_path, datasets):
    rows = datasets.rows(30)
    path = datasets.write(tmp_path / "ds", rows=rows, shards=2, row_group_size=7)
    data = downstream.load_downstream(path)
    assert data.kind == "multilabel" and len(data) == 30
    by_id = {row["image_id"]: row for row in rows}  # the dataset holds its rows split by split
    for i, row in enumerate(by_id[image_id] for image_id in data.image_ids):
        expected = np.zeros(len(data.label_names), dtype=np.int8)
        for item in row["labels"]:
            expected[data.label_names.index(item["name"])] = item["status"]
        np.testing.assert_array_equal(data.labels[i], expected)  # absent findings read as 0
        assert data.splits[i] == row["split"]
        assert data.texts["disease"][i] == row["text_disease"]
    test = data.indices("test")
    fetched = dict(data.image_bytes(test[::-1]))
    assert sorted(fetched) == sorted(test.tolist())
    assert all(fetched[i] == by_id[data.image_ids[i]]["image"]["bytes"] for i in test)


def test_parquet_label_subset_and_unknown_label(tmp_path, datasets):
    path = datasets.write(tmp_path / "ds", rows=10)
    assert downstream.load_downstream(path, labels=["Edema"]).label_names == ["Edema"]
    with pytest.raises(EvaluationError, match="not in the dataset's vocabulary"):
        downstream.load_downstream(path, labels=["Fracture"])


def test_not_a_dataset_is_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluationError, match="no data/\\*.parquet"):
        downstream.load_downstream(tmp_path / "empty")
    with pytest.raises(EvaluationError, match="not found"):
        downstream.load_downstream(tmp_path / "missing")


def test_csv_multilabel_blank_is_negative_and_uncertain_kept(tmp_path):
    path = _write_csv(
        tmp_path, "image,Edema,Effusion,split",
        ["img/0.png,1,,train", "img/1.png,-1,0,val", "img/2.png,0,1,test", "img/3.png,1.0,-1,test"], 4,
    )  # fmt: skip
    data = downstream.load_downstream(path)
    assert data.kind == "multilabel" and data.label_names == ["Edema", "Effusion"]
    np.testing.assert_array_equal(data.labels, [[1, 0], [-1, 0], [0, 1], [1, -1]])
    assert dict(data.image_bytes([2]))[2] == (tmp_path / "img" / "2.png").read_bytes()
    assert data.split_counts() == {"train": 1, "val": 1, "test": 2}


def test_csv_single_class_column_is_multiclass_and_hash_split_is_deterministic(tmp_path):
    lines = [f"img/{i}.png,{['cat', 'dog', 'owl'][i % 3]}" for i in range(30)]
    path = _write_csv(tmp_path, "path,kind", lines, 30)
    first, second = downstream.load_downstream(path), downstream.load_downstream(path)
    assert first.kind == "multiclass" and first.label_names == ["cat", "dog", "owl"]
    assert first.labels[:4].tolist() == [0, 1, 2, 0]
    assert first.splits.tolist() == second.splits.tolist()
    assert set(first.splits) <= {"train", "val", "test"} and "no split column" in first.notes[0]
    np.testing.assert_array_equal(first.multilabel_matrix()[1], [0, 1, 0])


@pytest.mark.parametrize(
    ("header", "lines", "message"),
    [
        ("file_name,Edema", ["img/0.png,1"], "needs an image path column"),
        ("image,Edema", ["img/0.png,1", "img/9.png,0"], "do not exist \\(first: row 3"),
        ("image,Edema,Effusion", ["img/0.png,yes,1"], "values other than 1/0/-1"),
        ("image,Edema,split", ["img/0.png,1,training"], "split values must be"),
        ("image,kind", ["img/0.png,cat", "img/1.png,cat"], "single class"),
    ],
)
def test_csv_errors_are_one_line(tmp_path, header, lines, message):
    path = _write_csv(tmp_path, header, lines, 2)
    with pytest.raises(EvaluationError, match=message) as info:
        downstream.load_downstream(path)
    assert "\n" not in str(info.value)


def test_best_relevant_rank_counts_ties_against_the_query():
    sim = np.array([[0.9, 0.5, 0.1], [0.2, 0.2, 0.2], [0.1, 0.3, 0.2]])
    relevant = np.array([[True, False, False], [True, False, False], [True, True, False]])
    assert retrieval.best_relevant_rank(sim, relevant).tolist() == [0, 2, 0]


def _synthetic(n: int, seed: int = 0):
    """Label 0 is linear in the features, label 1 is noise, label 2 has no positive in train."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8))
    labels = np.stack([(x[:, 0] > 0), rng.random(n) < 0.5, np.zeros(n, bool)], 1).astype(np.int8)
    splits = np.array(["train", "val", "test", "train", "train"] * (n // 5), dtype=object)
    labels[(splits == "test") & (np.arange(n) % 7 == 0), 2] = 1
    labels[rng.random(n) < 0.1, 1] = -1
    data = Downstream(
        source="csv",
        kind="multilabel",
        label_names=["a", "b", "c"],
        labels=labels,
        splits=splits,
        image_ids=[str(i) for i in range(n)],
    )
    rows = {s: data.indices(s) for s in ("train", "val", "test")}
    return data, rows, {s: x[rows[s]] for s in rows}


def test_linear_probe_learns_a_linear_label_and_reports_unfittable_ones():
    data, rows, emb = _synthetic(400)
    result = linear_probe.evaluate(data, rows, emb, bootstrap=50)
    assert result["per_label"]["a"]["auc"]["value"] > 0.95
    assert 0.3 < result["per_label"]["b"]["auc"]["value"] < 0.7
    assert result["per_label"]["b"]["excluded"] == int((data.labels[rows["test"], 1] == -1).sum())
    assert result["per_label"]["c"]["auc"]["value"] is None
    assert "only one class" in result["per_label"]["c"]["probe_note"]
    assert result["C"]["a"] in linear_probe.C_GRID and result["C"]["c"] is None


def test_linear_probe_multiclass():
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 6)) + np.eye(6)[y] * 3
    splits = np.array(["train", "train", "train", "val", "test"] * (n // 5), dtype=object)
    data = Downstream(
        source="csv", kind="multiclass", label_names=["p", "q", "r"], labels=y, splits=splits, image_ids=[""] * n
    )
    rows = {s: data.indices(s) for s in ("train", "val", "test")}
    result = linear_probe.evaluate(data, rows, {s: x[rows[s]] for s in rows}, bootstrap=50)
    assert result["macro"]["accuracy"]["value"] > 0.85
    assert set(result["per_class"]) == {"p", "q", "r"}


def _texts_data() -> Downstream:
    """Train texts as a built dataset has them: the disease level names the positives, "no finding" else."""
    labels = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1], [0, -1, 0]])
    disease = ["pleural effusion", "pleural effusion", "pleural effusion and edema", "edema",
               "no finding", "no finding", "no finding", "possible edema"]  # fmt: skip
    explanation = [None, "Fluid in the pleural space.", "Fluid in the pleural space. Fluid in the lungs.",
                   "Fluid in the lungs.", "No abnormality.", "No abnormality.", None, "No abnormality."]  # fmt: skip
    return Downstream(source="parquet", kind="multilabel", label_names=["Pleural Effusion", "Edema", "No Finding"],
                      labels=labels.astype(np.int8), splits=np.array(["train"] * 8, dtype=object), image_ids=[""] * 8,
                      texts={"disease": disease, "explanation": explanation})  # fmt: skip


def test_in_distribution_prompts_come_from_the_training_texts():
    data = _texts_data()
    prompts = zero_shot.in_distribution_prompts(data, np.arange(8), ["disease", "explanation", "description"])
    # positives: texts of images with this finding alone; negatives: the commonest texts of images without it
    assert prompts["Pleural Effusion"]["positive"] == ["pleural effusion", "Fluid in the pleural space."]
    assert prompts["Pleural Effusion"]["negative"] == [
        "no finding", "edema", "possible edema", "No abnormality.", "Fluid in the lungs."
    ]  # fmt: skip
    assert prompts["Edema"]["positive"] == ["edema", "Fluid in the lungs."]
    assert "possible edema" not in prompts["Edema"]["negative"]  # uncertain images are on neither side
    assert prompts["No Finding"]["positive"] == ["no finding", "No abnormality."]
    assert "no finding" not in prompts["No Finding"]["negative"]
    assert zero_shot.in_distribution_prompts(data, np.arange(8), ["description"]) is None  # no such texts


def test_fallback_prompts_use_the_disease_level_wording():
    prompts = zero_shot.fallback_prompts(["Pleural Effusion", "No Finding"], "multilabel")
    assert prompts["Pleural Effusion"] == {"positive": ["pleural effusion"], "negative": ["no finding"]}
    assert prompts["No Finding"] == {"positive": ["no finding"], "negative": ["abnormal"]}


def test_zero_shot_thresholds_are_the_best_validation_f1():
    y_val = np.array([[1, 0], [1, -1], [0, 0], [0, 0]])
    val_scores = np.array([[0.9, 0.2], [0.7, 0.9], [0.4, 0.3], [0.8, 0.1]])
    thresholds, notes = zero_shot.val_thresholds(y_val, val_scores)
    assert thresholds[0] == pytest.approx(0.7)  # >= 0.7 keeps both positives and one negative: F1 0.8
    assert thresholds[1] == 0.5 and "no positive" in notes[1]


def test_prompts_file_must_cover_every_label(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"Edema": {"positive": ["edema"], "negative": ["no edema"]}}))
    assert zero_shot.load_prompts(path, ["Edema"], "multilabel")["Edema"]["negative"] == ["no edema"]
    with pytest.raises(EvaluationError, match="no prompts for \\['Effusion'\\]"):
        zero_shot.load_prompts(path, ["Edema", "Effusion"], "multilabel")


def test_parse_tasks():
    assert parse_tasks("all") == ["zero-shot", "retrieval", "linear-probe", "finetune"]
    assert parse_tasks(["finetune", "zero-shot,finetune"]) == ["zero-shot", "finetune"]
    with pytest.raises(EvaluationError, match="unknown task 'probe'"):
        parse_tasks(["probe"])


def test_report_writes_strict_json_with_nulls_and_markdown(tmp_path):
    data, rows, emb = _synthetic(100)
    probe = linear_probe.evaluate(data, rows, emb, bootstrap=20)
    results = {
        "run": {"path": "r", "step": 3, "model": "tiny", "loss": "mgll", "granularities": ["disease"]},
        "dataset": {
            "path": "d",
            "source": "csv",
            "kind": "multilabel",
            "labels": ["a", "b", "c"],
            "splits": {"test": 20},
            "notes": [],
        },
        "options": {"bootstrap": 20, "seed": 0},
        "tasks": {"linear-probe": probe},
        "notes": [],
    }
    written = report.write(tmp_path, results)
    parsed = json.loads((tmp_path / "results.json").read_text())
    assert parsed == written and "_curves" not in parsed["tasks"]["linear-probe"]
    assert parsed["tasks"]["linear-probe"]["per_label"]["c"]["auc"]["value"] is None
    assert {"roc_linear_probe.png", "auc_linear_probe.png"} <= set(parsed["charts"])
    assert all((tmp_path / c).stat().st_size > 1000 for c in parsed["charts"])
    md = (tmp_path / "results.md").read_text()
    assert "| linear-probe | macro AUC |" in md and "n/a" in md


def test_roc_curves_stay_distinct_beyond_ten_labels_and_name_their_positives():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    names = [f"finding {j}" for j in range(24)]
    y = (rng.random((300, 24)) < 0.2).astype(np.int8)
    fig, ax = plt.subplots()
    assert report.draw_roc(ax, {"y": y, "scores": rng.random((300, 24)) + y, "names": names}) == 24
    styles = {(tuple(line.get_color()), line.get_linestyle()) for line in ax.get_lines()}
    assert len(styles) == 24
    _, labels = ax.get_legend_handles_labels()
    assert labels[0].startswith(f"finding 0 (n+ {int(y[:, 0].sum())}, AUC ")
    plt.close(fig)
