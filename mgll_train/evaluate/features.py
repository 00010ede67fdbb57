"""Frozen image and text features from a pretraining run, computed once and shared by the tasks.

Zero-shot, retrieval and the linear probe only need embeddings, so each image is decoded and encoded
exactly once per evaluation however many of those tasks run. Decoding (PIL, which releases the GIL) runs
in a small thread pool while the model encodes the previous batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mgll_train.config import DEFAULT_IMAGE_SIZE
from mgll_train.distributed import parse_device
from mgll_train.evaluate.downstream import Downstream, EvaluationError

DEFAULT_BATCH = 64


@dataclass
class Run:
    """A loaded run plus what evaluation needs from its config."""

    path: Path
    model: torch.nn.Module
    tokenizer: Any
    config: dict
    step: int
    device: torch.device

    @property
    def image_size(self) -> int:
        return int(self.config.get("image_size", DEFAULT_IMAGE_SIZE))

    @property
    def granularities(self) -> list[str]:
        return list(self.config.get("granularities") or [])

    @property
    def max_tokens(self) -> int:
        return int(self.config.get("max_text_tokens", 128))

    @property
    def normalisation(self) -> dict[str, tuple[float, ...]]:
        """The image mean/std the run was trained with (when its config records them)."""
        out = {}
        for key, names in (("mean", ("image_mean", "mean")), ("std", ("image_std", "std"))):
            for name in names:
                if self.config.get(name):
                    out[key] = tuple(float(v) for v in self.config[name])
                    break
        return out


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return parse_device(device)
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None


def load_run_for_evaluation(run_dir: Path, device: str = "auto") -> Run:
    """Load a run; a checkpoint that does not fit its config is one line, not a state-dict dump."""
    from mgll_train.checkpoint import CheckpointError, load_run
    from mgll_train.model import ModelError

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise EvaluationError(f"run folder not found: {run_dir}")
    try:
        loaded = load_run(run_dir, map_location="cpu")
    except (CheckpointError, ModelError) as exc:
        raise EvaluationError(str(exc)) from None
    except (RuntimeError, KeyError, ValueError, OSError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EvaluationError(f"cannot load the run in {run_dir}: {first[:240]}") from None
    config = dict(loaded.config)
    check_vision_matches_config(config)
    target = resolve_device(device)
    return Run(
        path=run_dir,
        model=loaded.model.to(target).eval(),
        tokenizer=loaded.tokenizer,
        config=config,
        step=int(loaded.step),
        device=target,
    )


_SHAPE_KEYS = ("model_type", "hidden_size", "hidden_sizes", "num_hidden_layers", "depths", "patch_size")


def check_vision_matches_config(config: dict) -> None:
    """The run config's named vision tower must describe the architecture its weights were saved with.

    `load_run` rebuilds the tower from the checkpoint's own spec, so a checkpoint copied into another
    run folder (its config naming, say, vit-b16 while the weights are a tiny ViT) would otherwise load
    and be reported under the wrong model name.
    """
    from mgll_train.model import VISION_PRESETS, vision_preset_config

    name = config.get("model")
    spec = (config.get("towers") or {}).get("vision_config")
    if name not in VISION_PRESETS or not spec:
        return
    expected = vision_preset_config(name, int(config.get("image_size", DEFAULT_IMAGE_SIZE))).to_dict()
    differing = [k for k in _SHAPE_KEYS if k in expected and k in spec and expected[k] != spec[k]]
    if differing:
        key = differing[0]
        raise EvaluationError(
            f"the run's config names vision model {name!r} but its checkpoint holds a different tower "
            f"({key} {spec[key]!r}, expected {expected[key]!r})"
        )


def _decoded_batches(
    data: Downstream, indices: np.ndarray, image_size: int, batch_size: int, workers: int, norm: dict
) -> Iterator[tuple[list[int], torch.Tensor]]:
    from mgll_train.transform import CorruptImage, decode_image

    def decode(item: tuple[int, bytes]) -> tuple[int, torch.Tensor]:
        row, raw = item
        try:
            return row, decode_image(raw or b"", image_size, train=False, **norm)
        except CorruptImage as exc:
            raise EvaluationError(
                f"image {data.image_ids[row]} cannot be decoded ({exc}); check the data (mgll validate --full)"
            ) from None

    def collect(decoded: Iterator[tuple[int, torch.Tensor]]) -> tuple[list[int], torch.Tensor]:
        items = list(decoded)
        return [r for r, _ in items], torch.stack([t for _, t in items])

    stream = data.image_bytes(indices)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = None
        while True:
            chunk = [item for _, item in zip(range(batch_size), stream)]
            submitted = pool.map(decode, chunk) if chunk else None  # starts decoding the next batch now
            if pending is not None:
                yield collect(pending)
            if submitted is None:
                return
            pending = submitted


def _encode(model: torch.nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised embedding, pooled backbone feature) from one forward pass.

    Mirrors `MGLLModel.encode_image` (normalise(vision_proj(image_features))) so the probe's backbone
    features cost no second pass; a model without `image_features` gives its embedding for both.
    """
    if hasattr(model, "image_features") and hasattr(model, "vision_proj"):
        pooled = model.image_features(pixels)
        return torch.nn.functional.normalize(model.vision_proj(pooled).float(), dim=-1), pooled.float()
    emb = model.encode_image(pixels).float()
    return emb, emb


@dataclass
class ImageFeatures:
    """Per-row features: `embedding` (shared space, L2-normalised) and `backbone` (pooled, unprojected)."""

    rows: np.ndarray
    embedding: np.ndarray
    backbone: np.ndarray

    def take(self, rows: np.ndarray, which: str = "embedding") -> np.ndarray:
        position = {int(r): k for k, r in enumerate(self.rows)}
        source = self.embedding if which == "embedding" else self.backbone
        return source[[position[int(r)] for r in rows]] if len(rows) else source[:0]


@torch.no_grad()
def image_features(
    run: Run,
    data: Downstream,
    indices: np.ndarray,
    *,
    batch_size: int = DEFAULT_BATCH,
    workers: int = 2,
    progress: bool = True,
    desc: str = "image features",
) -> ImageFeatures:
    """Features of the given rows (each image decoded and encoded once)."""
    indices = np.unique(np.asarray(indices, dtype=np.int64))
    position = {int(r): k for k, r in enumerate(indices)}
    emb_out: np.ndarray | None = None
    back_out: np.ndarray | None = None
    bar = tqdm(total=len(indices), desc=desc, unit="img", disable=not progress, leave=False)
    for rows, pixels in _decoded_batches(data, indices, run.image_size, batch_size, workers, run.normalisation):
        emb, pooled = _encode(run.model, pixels.to(run.device))
        if emb_out is None:
            emb_out = np.zeros((len(indices), emb.shape[1]), dtype=np.float32)
            back_out = np.zeros((len(indices), pooled.shape[1]), dtype=np.float32)
        where = [position[r] for r in rows]
        emb_out[where] = emb.cpu().numpy()
        back_out[where] = pooled.cpu().numpy()
        bar.update(len(rows))
    bar.close()
    if emb_out is None:
        emb_out = back_out = np.zeros((0, 0), dtype=np.float32)
    return ImageFeatures(rows=indices, embedding=emb_out, backbone=back_out)


@torch.no_grad()
def text_features(run: Run, texts: list[str], *, batch_size: int = 256) -> np.ndarray:
    """L2-normalised text embeddings [len(texts), D] (float32)."""
    parts = []
    for start in range(0, len(texts), batch_size):
        tokens = run.tokenizer(
            list(texts[start : start + batch_size]),
            padding="longest",
            truncation=True,
            max_length=run.max_tokens,
            return_tensors="pt",
        )
        emb = run.model.encode_text(tokens["input_ids"].to(run.device), tokens["attention_mask"].to(run.device))
        parts.append(emb.float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def logit_scale(run: Run) -> float:
    """The run's learned temperature as a multiplier (exp of the stored log value, clamped like training)."""
    raw = getattr(run.model, "logit_scale", None)
    if raw is None:
        return 1.0 / 0.07
    return float(torch.exp(raw.detach().float()).clamp(max=100.0))
