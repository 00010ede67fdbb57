"""`mgll evaluate` end to end on a tiny run (random tiny towers via build_model + save_run) and tiny data.

The data carries one learnable label (Pleural Effusion <=> a bright left half), so the probe and the
fine-tune must find it even on random-weight towers; the other labels are absent (one class only), so
their AUC must come back as null with a note rather than crash.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from mgll_data.cli import main
from mgll_train.checkpoint import find_checkpoint, save_run, save_tokenizer
from mgll_train.evaluate import EvaluationError, EvaluationOptions, evaluate, features, retrieval, zero_shot
from mgll_train.evaluate.downstream import load_downstream
from mgll_train.model import build_model

IMAGE_SIZE = 32
GRANULARITIES = ["disease", "description"]


def _image(positive: bool, rng: np.random.Generator) -> bytes:
    pixels = rng.integers(0, 60, (IMAGE_SIZE, IMAGE_SIZE)).astype(np.uint8)
    if positive:
        pixels[:, : IMAGE_SIZE // 2] += 150
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _save_tiny_run(path, embed_dim: int = 32, name: str = "tiny"):
    torch.manual_seed(0)  # the same random towers whichever tests ran before
    model, info = build_model("tiny", "tiny", embed_dim=embed_dim, image_size=IMAGE_SIZE)
    save_tokenizer(path, info["tokenizer_dir"])
    config = {"model": name, "text_model": "tiny", "image_size": IMAGE_SIZE, "granularities": GRANULARITIES,
              "loss": "mgll", "max_text_tokens": 32, **info}  # fmt: skip
    save_run(path, model, None, None, 2, config)
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, datasets):
    root = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(0)
    rows = datasets.rows(50)
    for i, row in enumerate(rows):
        positive = i % 2 == 0
        row["image"]["bytes"] = _image(positive, rng)
        row["labels"] = [{"name": "Pleural Effusion", "status": 1 if positive else 0},
                         {"name": "Edema", "status": (1, 0, -1)[i % 3]}]  # fmt: skip
        row["text_disease"] = "pleural effusion" if positive else "no finding"
    return {"root": root, "dataset": datasets.write(root / "ds", rows=rows), "run": _save_tiny_run(root / "run")}


def _invoke(*args):
    return CliRunner().invoke(main, ["evaluate", *map(str, args)])


def test_all_tasks_through_the_cli(workspace, tmp_path):
    out = tmp_path / "eval"
    result = _invoke(workspace["run"], workspace["dataset"], "--task", "all", "--out", out,
                     "--bootstrap", 50, "--epochs", 3, "--finetune-batch-size", 8, "--quiet",
                     "--device", "cpu")  # fmt: skip; 12 fine-tuning steps learn the label from any of 12 towers tried
    assert result.exit_code == 0, result.output
    assert "linear-probe  macro AUC" in result.output and "wrote" in result.output
    parsed = json.loads((out / "results.json").read_text())  # strict JSON: NaN would not parse back as null
    assert list(parsed["tasks"]) == ["zero-shot", "retrieval", "linear-probe", "finetune"]
    for task in ("linear-probe", "finetune"):
        effusion = parsed["tasks"][task]["per_label"]["Pleural Effusion"]["auc"]
        assert effusion["value"] >= 0.9 and effusion["ci95"][0] <= effusion["value"] <= effusion["ci95"][1]
        assert parsed["tasks"][task]["per_label"]["Atelectasis"]["auc"]["value"] is None
    assert parsed["tasks"]["linear-probe"]["per_label"]["Edema"]["excluded"] > 0
    finetune = parsed["tasks"]["finetune"]
    scores = [epoch["val_score"] for epoch in finetune["history"]]
    best = max(scores)
    assert len(scores) == 3 and finetune["best_epoch"] == max(e for e, s in enumerate(scores, 1) if s == best), (
        "the best val epoch is kept (the later one on a tie)"
    )
    assert set(parsed["tasks"]["retrieval"]["granularities"]) == set(GRANULARITIES)
    zs = parsed["tasks"]["zero-shot"]
    assert zs["labels_undefined"] == ["Atelectasis", "Cardiomegaly", "Pneumothorax"]
    assert zs["prompt_source"] == "train texts" and zs["thresholds"] == "best F1 on the validation split"
    assert zs["prompts"]["Pleural Effusion"]["positive"][0] == "pleural effusion"
    assert zs["prompts"]["Pleural Effusion"]["negative"][0] == "no finding"
    assert parsed["options"]["bootstrap_unit"] == "patient"
    assert all((out / chart).is_file() for chart in parsed["charts"]) and "retrieval.png" in parsed["charts"]
    assert "| zero-shot | macro AUC |" in (out / "results.md").read_text()


def test_off_a_terminal_each_stage_prints_a_line_and_quiet_prints_none(workspace, tmp_path):
    loud = _invoke(workspace["run"], workspace["dataset"], "--task", "zero-shot", "--task", "linear-probe",
                   "--out", tmp_path / "loud", "--bootstrap", 0, "--device", "cpu")  # fmt: skip
    assert loud.exit_code == 0, loud.output
    lines = [line for line in loud.stderr.splitlines() if line.startswith("evaluate: ")]
    assert [line.split(" in ")[0] for line in lines] == [
        "evaluate: 10 test images; encoding the images the tasks need ...", "evaluate: features of 50 images",
        "evaluate: zero-shot ...", "evaluate: zero-shot done", "evaluate: linear-probe ...",
        "evaluate: linear-probe done",
    ]  # fmt: skip
    assert "\r" not in loud.stderr, "no bar redraws off a terminal"
    quiet = _invoke(workspace["run"], workspace["dataset"], "--task", "zero-shot", "--out", tmp_path / "quiet",
                    "--bootstrap", 0, "--device", "cpu", "--quiet")  # fmt: skip
    assert quiet.exit_code == 0 and "evaluate: " not in quiet.stderr


def test_zero_shot_and_retrieval_score_perfectly_when_images_embed_as_their_text(workspace):
    """Feed each test image the embedding of its own text/prompt: the protocols must then score 1.0."""
    run = features.load_run_for_evaluation(workspace["run"], "cpu")
    data = load_downstream(workspace["dataset"], labels=["Pleural Effusion"])
    test = data.indices("test")
    texts = [data.texts["disease"][i] for i in test]
    own = features.text_features(run, texts)
    recall = retrieval.evaluate(run, data, test, own, bootstrap=20)["granularities"]["disease"]
    assert recall["image_to_text"]["R@1"]["value"] == 1.0 and recall["text_to_image"]["R@1"]["value"] == 1.0

    rows = {s: data.indices(s) for s in ("train", "val", "test")}
    prompts = zero_shot.in_distribution_prompts(data, rows["train"], ["disease"])["Pleural Effusion"]
    assert prompts == {"positive": ["pleural effusion"], "negative": ["no finding"]}
    pos, neg = features.text_features(run, prompts["positive"]), features.text_features(run, prompts["negative"])
    emb = {s: np.where((data.labels[rows[s], 0] == 1)[:, None], pos[0], neg[0]) for s in ("val", "test")}
    result = zero_shot.evaluate(run, data, rows, emb, bootstrap=20)
    assert result["per_label"]["Pleural Effusion"]["auc"]["value"] == 1.0
    assert result["per_label"]["Pleural Effusion"]["f1"]["value"] == 1.0  # the val threshold separates them


def test_checkpoint_of_another_shape_is_a_one_line_error(workspace, tmp_path):
    run = shutil.copytree(workspace["run"], tmp_path / "run")
    other = _save_tiny_run(tmp_path / "other", embed_dim=16)
    shutil.copy(find_checkpoint(other) / "model.safetensors", find_checkpoint(run) / "model.safetensors")
    result = _invoke(run, workspace["dataset"], "--task", "zero-shot", "--out", tmp_path / "o", "--quiet")
    assert result.exit_code == 1
    assert "Error:" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_config_naming_another_tower_is_an_error(workspace, tmp_path):
    run = shutil.copytree(workspace["run"], tmp_path / "run")
    config_file = find_checkpoint(run) / "config.json"
    config = json.loads(config_file.read_text())
    config["model"] = "vit-b16"
    config_file.write_text(json.dumps(config))
    with pytest.raises(
        EvaluationError, match="names vision model 'vit-b16' but its checkpoint holds a different tower"
    ):
        evaluate(run, workspace["dataset"], "zero-shot", tmp_path / "o", EvaluationOptions(progress=False))


def test_empty_test_split_is_an_error(workspace, tmp_path, datasets):
    rows = [r for r in datasets.rows(20) if r["split"] != "test"]
    dataset = datasets.write(tmp_path / "ds", rows=rows)
    result = _invoke(workspace["run"], dataset, "--task", "linear-probe", "--out", tmp_path / "o")
    assert result.exit_code == 1 and "test split" in result.output and "empty" in result.output


def test_csv_multiclass_probe_and_finetune(workspace, tmp_path):
    rng = np.random.default_rng(1)
    lines = ["image,finding,split"]
    (tmp_path / "png").mkdir()
    for i in range(45):
        bright = i % 3 == 0
        (tmp_path / "png" / f"{i}.png").write_bytes(_image(bright, rng))
        lines.append(
            f"png/{i}.png,{'effusion' if bright else 'clear'},{('train', 'train', 'val', 'test', 'train')[i % 5]}"
        )
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    options = EvaluationOptions(head="multiclass", bootstrap=30, epochs=1, progress=False, device="cpu")
    results = evaluate(workspace["run"], tmp_path / "labels.csv", ["linear-probe", "finetune", "zero-shot"],
                       tmp_path / "o", options)  # fmt: skip
    assert results["dataset"]["kind"] == "multiclass"
    assert results["tasks"]["linear-probe"]["macro"]["accuracy"]["value"] >= 0.8
    assert results["tasks"]["finetune"]["head"] == "multiclass"
    assert results["tasks"]["zero-shot"]["protocol"] == "multiclass-softmax"
    assert set(results["tasks"]["finetune"]["per_class"]) == {"clear", "effusion"}


def test_multiclass_head_on_multilabel_data_is_refused(workspace, tmp_path):
    result = _invoke(
        workspace["run"], workspace["dataset"], "--task", "finetune", "--head", "multiclass", "--out", tmp_path
    )
    assert result.exit_code == 1 and "one class column" in result.output


def test_help_has_an_example():
    result = _invoke("--help")
    assert result.exit_code == 0 and "Example:" in result.output and "--task all" in result.output


def test_shared_forward_pass_matches_encode_image(workspace):
    """The probe's single forward pass must give exactly the model's own embedding."""
    import torch

    run = features.load_run_for_evaluation(workspace["run"], "cpu")
    pixels = torch.randn(3, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        embedding, backbone = features._encode(run.model, pixels)
        torch.testing.assert_close(embedding, run.model.encode_image(pixels))
    assert backbone.shape == (3, run.model.vision_proj.in_features)


def test_corrupt_test_image_is_a_named_error(workspace, tmp_path, datasets):
    rows = datasets.rows(20)
    broken = next(r for r in rows if r["split"] == "test")
    broken["image"]["bytes"] = b"\x89PNG\r\n\x1a\n truncated"
    dataset = datasets.write(tmp_path / "ds", rows=rows)
    with pytest.raises(EvaluationError, match=f"image {broken['image_id']} cannot be decoded"):
        evaluate(
            workspace["run"], dataset, "zero-shot", tmp_path / "o", EvaluationOptions(progress=False, device="cpu")
        )
