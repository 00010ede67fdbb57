import math

import pytest
import torch
from transformers import ViTConfig, ViTModel

from mgll_train.model import (
    MAX_LOGIT_SCALE,
    ModelError,
    build_model,
    default_text_folder,
    load_tokenizer,
    model_from_spec,
    parameter_groups,
    unwrap,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("tiny", "tiny", 32, image_size=32)


def _tokens(texts):
    """[U, L] token ids and attention mask, one row per text (the collator's layout)."""
    out = load_tokenizer(default_text_folder())(texts, padding="longest", return_tensors="pt")
    return out["input_ids"], out["attention_mask"]


def test_embeddings_are_normalised_and_projected(tiny):
    model, cfg = tiny
    assert cfg["image_size"] == 32 and len(cfg["mean"]) == 3
    image = model.encode_image(torch.randn(3, 3, 32, 32))
    assert image.shape == (3, 32)
    torch.testing.assert_close(image.norm(dim=-1), torch.ones(3))
    ids, mask = _tokens(["pleural effusion", "no finding"])
    text = model.encode_text(ids, mask)
    assert text.shape == (2, 32)
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(2))


def test_mean_pooling_ignores_padding(tiny):
    model, _ = tiny
    model.eval()
    alone_ids, alone_mask = _tokens(["cardiomegaly"])
    padded_ids, padded_mask = _tokens(["cardiomegaly", "a much longer sentence about the cardiac silhouette size"])
    alone = model.encode_text(alone_ids, alone_mask)
    padded = model.encode_text(padded_ids, padded_mask)
    torch.testing.assert_close(alone[0], padded[0], rtol=1e-4, atol=1e-5)


def test_forward_skips_missing_texts_and_clamps_the_scale(tiny):
    model, _ = tiny
    ids, mask = _tokens(["effusion", "normal", "enlarged heart", "clear lungs"])
    text_index = torch.tensor([[0, 1], [2, 3]])
    text_mask = torch.tensor([[True, False], [True, True]])
    image, text, scale = model(torch.randn(2, 3, 32, 32), ids, mask, text_index, text_mask)
    assert image.shape == (2, 32) and text.shape == (2, 2, 32)
    assert float(text[0, 1].detach().abs().sum()) == 0 and float(text[1, 1].detach().norm()) == pytest.approx(
        1.0, abs=1e-5
    )
    assert float(scale.detach()) == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1000.0))
    assert float(model.clamped_logit_scale().detach()) == MAX_LOGIT_SCALE
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / 0.07))


def test_every_parameter_gets_a_gradient_even_without_texts(tiny):
    """DDP fails on parameters outside the graph, so a batch with no texts must still touch the text tower."""
    model, _ = tiny
    model.zero_grad()
    ids, mask = _tokens(["a", "b"])
    no_text = torch.zeros(1, 2, dtype=torch.bool)
    image, text, scale = model(torch.randn(2, 3, 32, 32), ids, mask, torch.zeros(1, 2, dtype=torch.long), no_text)
    (image.sum() + text.sum() + scale).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert not hasattr(model.text, "pooler") or model.text.pooler is None


def test_presets_build_with_random_weights():
    for name in ("convnext-tiny", "resnet50"):
        model, _ = build_model(name, "tiny", 16, image_size=64)
        with torch.no_grad():
            assert model.encode_image(torch.randn(2, 3, 64, 64)).shape == (2, 16)


def test_local_vision_folder_keeps_its_weights(tmp_path):
    tower = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                               image_size=32, patch_size=16))
    tower.save_pretrained(tmp_path / "vit")
    model, _ = build_model(str(tmp_path / "vit"), "tiny", 16, image_size=48)
    torch.testing.assert_close(
        model.vision.embeddings.patch_embeddings.projection.weight, tower.embeddings.patch_embeddings.projection.weight
    )
    assert model.interpolate_pos_encoding
    assert model.encode_image(torch.randn(1, 3, 48, 48)).shape == (1, 16)


def test_unknown_names_and_missing_folders_are_one_line_errors(tmp_path):
    with pytest.raises(ModelError, match="neither a name"):
        build_model("vit-huge-typo", "tiny")
    with pytest.raises(ModelError, match="text model '.*missing' is neither a name \\(tiny, minilm\\)"):
        build_model("tiny", str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="cannot load the vision model"):
        build_model(str(tmp_path / "empty"), "tiny")


def test_spec_rebuilds_the_same_architecture(tiny):
    model, _ = tiny
    rebuilt = model_from_spec(model.tower_spec())
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_no_weight_decay_on_biases_norms_and_temperature_and_a_lower_rate_for_the_text_tower(tiny):
    model, _ = tiny
    groups = parameter_groups(model, 0.2, lr=1e-3, text_lr=1e-4)
    no_decay_ids = {id(p) for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert id(model.logit_scale) in no_decay_ids
    assert id(model.vision_proj.weight) not in no_decay_ids
    assert all(p.ndim >= 2 for g in groups if g["weight_decay"] == 0.2 for p in g["params"])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    text_ids = {id(p) for p in model.text.parameters()}
    for group in groups:
        in_text = {id(p) in text_ids for p in group["params"]}
        assert len(in_text) == 1  # a group is all text tower or none of it
        assert group["lr"] == (1e-4 if in_text == {True} else 1e-3)
    assert id(model.text_proj.weight) not in {id(p) for g in groups if g["lr"] == 1e-4 for p in g["params"]}


def test_frozen_parameters_and_the_logit_bias(tiny):
    model, _ = tiny
    model.text.requires_grad_(False)
    grouped = {id(p) for g in parameter_groups(model, 0.2, lr=1e-3) for p in g["params"]}
    assert not grouped & {id(p) for p in model.text.parameters()}
    model.text.requires_grad_(True)
    assert model.logit_bias is None  # built without text levels: the CLIP loss has no point-wise term
    biased, _ = build_model("tiny", "tiny", 32, image_size=32, text_levels=3)
    assert biased.logit_bias.shape == (3,)
    rebuilt = model_from_spec(biased.tower_spec())
    assert rebuilt.logit_bias.shape == (3,)


def test_grad_checkpointing_and_unwrap(tiny):
    model, _ = tiny
    model.train()
    model.set_grad_checkpointing(True)
    assert model.vision.is_activation_checkpointing and model.text.is_activation_checkpointing
    ids, mask = _tokens(["x", "y"])
    image, text, _ = model(
        torch.randn(2, 3, 32, 32), ids, mask, torch.tensor([[0, 1]]), torch.ones(1, 2, dtype=torch.bool)
    )
    (image * text[0]).sum().backward()
    model.set_grad_checkpointing(False)
    assert unwrap(torch.nn.Sequential(model)[0]) is model
    with pytest.raises(TypeError):
        unwrap(torch.nn.Linear(1, 1))


def test_default_text_tower_is_the_packaged_minilm():
    folder = default_text_folder()
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    for name in (None, "minilm"):
        model, cfg = build_model("tiny", name, 16, image_size=32)
        assert model.text.config.hidden_size == 384 and cfg["tokenizer_dir"] == str(folder)


def test_shared_rows_give_each_sample_its_text(tiny):
    """The collator sends each distinct text once; text_index hands its embedding to every sample using it."""
    model, _ = tiny
    model.eval()
    ids, mask = _tokens(["normal", "abnormal", "no finding"])
    text_index = torch.tensor([[0, 1, 0], [0, 1, 2]])
    _, text, _ = model(torch.randn(3, 3, 32, 32), ids, mask, text_index, torch.ones(2, 3, dtype=torch.bool))
    direct = model.encode_text(ids, mask)
    torch.testing.assert_close(text, direct[text_index], rtol=1e-5, atol=1e-6)
