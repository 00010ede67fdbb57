"""Run folders and checkpoints.

    RUN/config.yaml                         resolved training config (reusable with --config)
    RUN/tokenizer/                          the text tower's tokenizer, so a run is self-contained
    RUN/checkpoints/step-00000040/
        model.safetensors                   weights only: safe to share and to load anywhere
        config.json                         model names, tower configs, image settings, vocabulary, fingerprint
        training_state.pt                   optimizer, scheduler, RNG streams, step, data position
        SHA256SUMS                          checksums of the weights and the training state
                                            (`sha256sum -c SHA256SUMS` checks them too)
    RUN/latest                              name of the newest complete checkpoint

A checkpoint is written under a temporary name and renamed when complete, so a run killed mid-save
leaves the previous checkpoint as `latest`. Files damaged later (a flipped byte, a truncated copy) fail
their checksum on load; resuming and `load_run` then fall back to the newest intact checkpoint, with a
warning. The training state holds only tensors and plain Python values, so it loads with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from mgll_train.model import MGLLModel, load_tokenizer, model_from_spec, tokenizer_folder, unwrap

CHECKPOINTS = "checkpoints"
LATEST = "latest"
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "training_state.pt"
TOKENIZER_DIR = "tokenizer"
CHECKSUMS_FILE = "SHA256SUMS"
# The binary payloads; config.json is text a user may edit, and is checked against the weights on load.
CHECKSUMMED = (MODEL_FILE, STATE_FILE)


T = TypeVar("T")


class CheckpointError(ValueError):
    """A run folder or checkpoint that cannot be loaded (message is one line)."""


@dataclass
class LoadedRun:
    model: MGLLModel
    tokenizer: Any
    config: dict[str, Any]
    step: int
    checkpoint_dir: Path


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def rng_state() -> dict[str, Any]:
    """Every RNG the training step touches (dropout uses torch's), as tensors and plain values."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_tokenizer(run_dir: Path, tokenizer_dir: str | Path) -> Path:
    """Copy the tokenizer into the run once, so evaluation never needs the original text-tower folder."""
    target = Path(run_dir) / TOKENIZER_DIR
    if not target.is_dir():
        load_tokenizer(tokenizer_dir).save_pretrained(target)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_checksums(folder: Path) -> None:
    lines = [f"{_sha256(folder / name)}  {name}\n" for name in CHECKSUMMED if (folder / name).is_file()]
    (folder / CHECKSUMS_FILE).write_text("".join(lines), encoding="utf-8")


def verify_checkpoint(checkpoint_dir: Path) -> None:
    """CheckpointError unless every file listed in SHA256SUMS is there with its recorded checksum.

    A checkpoint written before checksums existed has no SHA256SUMS and passes; its files are still
    checked by loading them."""
    checkpoint_dir = Path(checkpoint_dir)
    listing = checkpoint_dir / CHECKSUMS_FILE
    if not listing.is_file():
        return
    for line in listing.read_text(encoding="utf-8").splitlines():
        expected, _, name = line.partition("  ")
        path = checkpoint_dir / name
        if not path.is_file():
            raise CheckpointError(f"checkpoint {checkpoint_dir.name} lacks {name}")
        if _sha256(path) != expected:
            raise CheckpointError(
                f"checkpoint {checkpoint_dir.name}: {name} does not match its checksum (damaged or truncated)"
            )


def save_run(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
    step: int,
    config: dict[str, Any],
    extra_state: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write checkpoint `step` atomically with its checksums, point `latest` at it and keep only the newest
    `keep` checkpoints. `config` must be JSON-serialisable; the model's tower spec is added to it.
    """
    run_dir = Path(run_dir)
    base = run_dir / CHECKPOINTS
    base.mkdir(parents=True, exist_ok=True)
    final = base / checkpoint_name(step)
    tmp = base / f".tmp-{checkpoint_name(step)}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    inner = unwrap(model)
    save_model(inner, str(tmp / MODEL_FILE))
    full_config = {**config, "towers": inner.tower_spec(), "step": step}
    (tmp / CONFIG_FILE).write_text(json.dumps(full_config, indent=2, default=str), encoding="utf-8")
    if optimizer is not None:
        state = {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": rng_state(),
            "extra": extra_state or {},
        }
        torch.save(state, tmp / STATE_FILE)
    _write_checksums(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    pointer = run_dir / f".{LATEST}.tmp"
    pointer.write_text(final.name + "\n", encoding="utf-8")
    os.replace(pointer, run_dir / LATEST)
    if keep > 0:
        for old in sorted(base.glob("step-*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _candidates(run_dir: Path) -> list[Path]:
    """Complete checkpoints, newest first, with the one `latest` names ahead of the rest."""
    base = run_dir / CHECKPOINTS
    found = (
        sorted((p for p in base.glob("step-*") if (p / MODEL_FILE).is_file()), reverse=True) if base.is_dir() else []
    )
    pointer = run_dir / LATEST
    if pointer.is_file():
        named = base / pointer.read_text(encoding="utf-8").strip()
        if named in found:
            found.remove(named)
            found.insert(0, named)
    return found


def find_checkpoint(run_dir: Path, step: int | None = None) -> Path:
    """A checkpoint folder: `run_dir` itself if it is one, the given step, `latest`, or the newest present."""
    run_dir = Path(run_dir)
    if (run_dir / MODEL_FILE).is_file():
        return run_dir
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder not found: {run_dir}")
    if step is not None:
        chosen = run_dir / CHECKPOINTS / checkpoint_name(step)
        if not (chosen / MODEL_FILE).is_file():
            raise CheckpointError(f"no checkpoint for step {step} in {run_dir}")
        return chosen
    found = _candidates(run_dir)
    if not found:
        raise CheckpointError(f"no checkpoint in {run_dir} (expected {CHECKPOINTS}/step-*/{MODEL_FILE})")
    return found[0]


def load_newest_intact(run_dir: Path, load: Callable[[Path], T], warn: Callable[[str], None]) -> T:
    """`load` applied to the newest checkpoint that passes its checksums and loads (CheckpointError on a bad
    one); older checkpoints are tried in turn, and once one loads, each skipped one is warned about.
    None loading is a one-line CheckpointError naming the newest checkpoint's problem."""
    run_dir = Path(run_dir)
    found = [run_dir] if (run_dir / MODEL_FILE).is_file() else _candidates(run_dir)
    problems: list[str] = []
    for checkpoint in found:
        try:
            verify_checkpoint(checkpoint)
            loaded = load(checkpoint)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        for problem in problems:
            warn(f"warning: {problem}; using the older {checkpoint.name} instead")
        return loaded
    if not problems:
        raise CheckpointError(f"no checkpoint in {run_dir} (expected {CHECKPOINTS}/step-*/{MODEL_FILE})")
    older = ", and no older checkpoint is intact" if len(problems) > 1 else ""
    raise CheckpointError(problems[0] + older)


def read_checkpoint_config(checkpoint_dir: Path) -> dict[str, Any]:
    path = Path(checkpoint_dir) / CONFIG_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise CheckpointError(f"checkpoint {checkpoint_dir.name} has no readable {CONFIG_FILE}") from None


def load_weights(model: nn.Module, checkpoint_dir: Path, device: str | torch.device = "cpu") -> None:
    name = Path(checkpoint_dir).name
    try:
        missing, unexpected = load_model(
            unwrap(model), str(Path(checkpoint_dir) / MODEL_FILE), strict=False, device=str(device)
        )
    except RuntimeError:
        raise CheckpointError(f"checkpoint {name} does not fit the model (tensor shapes differ)") from None
    except (OSError, ValueError, SafetensorError) as exc:
        raise CheckpointError(
            f"cannot read the weights in {name} ({type(exc).__name__}: damaged or truncated)"
        ) from None
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {name} does not fit the model ({len(missing)} missing, {len(unexpected)} unexpected tensors)"
        )


def readable_weights(checkpoint_dir: Path) -> None:
    """CheckpointError unless the weights file is a complete safetensors file (header and extent; cheap)."""
    try:
        with safe_open(str(Path(checkpoint_dir) / MODEL_FILE), "pt") as weights:
            weights.keys()
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(
            f"cannot read the weights in {Path(checkpoint_dir).name} ({type(exc).__name__}: damaged or truncated)"
        ) from None


def load_training_state(checkpoint_dir: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(checkpoint_dir) / STATE_FILE
    name = Path(checkpoint_dir).name
    if not path.is_file():
        raise CheckpointError(f"checkpoint {name} has no {STATE_FILE}; it cannot be resumed")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (EOFError, RuntimeError, OSError, ValueError, pickle.UnpicklingError) as exc:
        raise CheckpointError(
            f"cannot read {STATE_FILE} in {name} ({type(exc).__name__}: damaged or truncated)"
        ) from None
    if not isinstance(state, dict) or not {"step", "optimizer", "scheduler", "rng"} <= set(state):
        raise CheckpointError(f"{STATE_FILE} in {name} is not an mgll training state")
    return state


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def load_run(
    run_dir: Path,
    map_location: str | torch.device = "cpu",
    step: int | None = None,
    warn: Callable[[str], None] = _stderr,
) -> LoadedRun:
    """The trained model (eval mode), its tokenizer and config, rebuilt from the run folder alone: the given
    step, else the newest checkpoint that passes its checksums and loads (see `load_newest_intact`)."""
    checkpoint = find_checkpoint(run_dir, step)  # the one-line errors for a missing folder, step or checkpoint
    if step is not None:
        verify_checkpoint(checkpoint)
        return _load_checkpoint(checkpoint, map_location)
    return load_newest_intact(run_dir, lambda found: _load_checkpoint(found, map_location), warn)


def _load_checkpoint(checkpoint: Path, map_location: str | torch.device) -> LoadedRun:
    config = read_checkpoint_config(checkpoint)
    if "towers" not in config:
        raise CheckpointError(f"checkpoint {checkpoint.name} has no tower description; it was not written by mgll")
    model = model_from_spec(config["towers"])
    load_weights(model, checkpoint, map_location)
    model.eval()
    run_root = checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS else checkpoint
    tokenizer_dir = run_root / TOKENIZER_DIR
    if not tokenizer_dir.is_dir():
        # A checkpoint folder on its own: the named text towers' tokenizer ships with the package.
        tokenizer_dir = tokenizer_folder(config.get("text_model"))
    tokenizer = load_tokenizer(tokenizer_dir)
    return LoadedRun(
        model=model, tokenizer=tokenizer, config=config, step=int(config.get("step", 0)), checkpoint_dir=checkpoint
    )
