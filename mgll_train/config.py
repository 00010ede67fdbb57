"""Pretraining configuration: one dataclass, loadable from YAML, overridable from command-line flags.

A run saves its resolved config as `RUN/config.yaml`; that file can be passed back with `--config`, and
`--resume` reads it so a resumed run cannot silently change its model or data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(Exception):
    """A config file or flag value that cannot describe a run (message is one line)."""


# Granularities left out by default: in a single-source dataset they are (nearly) the same string for every
# image, so as contrastive targets they carry no signal and only add text-tower compute.
DEFAULT_EXCLUDED_GRANULARITIES = ("modality", "study", "series")

# A run folder's resolved config, written at the start of a run and read back by --resume (and by the
# trainer to recognise a folder as an earlier run).
RUN_CONFIG_FILE = "config.yaml"

# The square input size a run trains at unless its config says otherwise; also what a saved run without
# an image_size (an older run folder) is read back at.
DEFAULT_IMAGE_SIZE = 224
DEFAULT_EMBED_DIM = 256

# Changing these on `--resume` would load weights into a different model or feed it different data.
MODEL_SHAPING_KEYS = ("model", "text_model", "embed_dim", "image_size", "granularities", "loss")


@dataclass
class TrainConfig:
    dataset: str = ""
    out: str = ""
    model: str = "tiny"
    text_model: str | None = None
    embed_dim: int = DEFAULT_EMBED_DIM
    loss: str = "mgll"
    granularities: list[str] | None = None
    split: str = "train"
    image_size: int = DEFAULT_IMAGE_SIZE
    batch_size: int = 32
    grad_accum: int = 1
    max_steps: int | None = None
    epochs: int | None = None
    lr: float = 5e-4
    text_lr_scale: float | None = None  # text tower lr / lr; None: 0.1 for a pretrained tower, 1 for a random one
    freeze_text: bool = False
    weight_decay: float = 0.2
    warmup_steps: int | None = None
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    alpha_clip: float = 0.5
    alpha_point: float = 1.0
    alpha_kl: float = 1.0
    instance_weight: float = 0.0  # MGLL targets (1 - w) * soft + w * identity; 0: the paper's targets
    precision: str = "auto"
    grad_checkpointing: bool = False
    compile: bool = False
    workers: int = 0
    max_corrupt_fraction: float = 0.01
    image_column: str = "auto"
    shuffle_buffer: int = 256
    max_text_tokens: int = 128
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    save_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _check(config: TrainConfig) -> TrainConfig:
    if config.loss not in ("mgll", "clip"):
        raise ConfigError(f"loss must be 'mgll' or 'clip', got {config.loss!r}")
    if config.precision not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"precision must be auto, bf16 or fp32, got {config.precision!r}")
    positive = ("batch_size", "grad_accum", "image_size", "embed_dim", "save_every", "log_every", "max_text_tokens")
    for name in positive:
        if int(getattr(config, name)) < 1:
            raise ConfigError(f"{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    for name in ("max_steps", "epochs"):
        value = getattr(config, name)
        if value is not None and int(value) < 1:
            raise ConfigError(f"{name.replace('_', '-')} must be at least 1, got {value}")
    if config.workers < 0:
        raise ConfigError(f"workers must be 0 or more, got {config.workers}")
    if not 0.0 <= config.max_corrupt_fraction <= 1.0:
        raise ConfigError(f"max-corrupt-fraction must be between 0 and 1, got {config.max_corrupt_fraction}")
    if config.lr <= 0:
        raise ConfigError(f"lr must be positive, got {config.lr}")
    if config.text_lr_scale is not None and config.text_lr_scale <= 0:
        raise ConfigError(f"text-lr-scale must be positive (use --freeze-text to freeze), got {config.text_lr_scale}")
    if not 0.0 <= config.instance_weight <= 1.0:
        raise ConfigError(f"instance-weight must be between 0 and 1, got {config.instance_weight}")
    if isinstance(config.granularities, str):
        config.granularities = parse_granularities(config.granularities)
    return config


def parse_granularities(text: str) -> list[str]:
    names = [g.strip() for g in text.split(",") if g.strip()]
    if not names:
        raise ConfigError("granularities is empty; give a comma-separated list such as disease,description")
    return names


def load_config_file(path: Path) -> dict[str, Any]:
    """The mapping in a YAML config file, with unknown keys rejected so a typo never goes unnoticed."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path.name} is not valid YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path.name} must hold a mapping of settings")
    return data


def from_dict(values: dict[str, Any]) -> TrainConfig:
    normalised = {k.replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(k for k in normalised if k not in _FIELDS)
    if unknown:
        raise ConfigError(f"unknown config keys {unknown}; known: {sorted(_FIELDS)}")
    try:
        return _check(TrainConfig(**normalised))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad config value: {exc}") from None


def make_config(config_file: Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """File values first, then every explicitly given flag on top (flags win)."""
    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    values = {k.replace("-", "_"): v for k, v in values.items()}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(values)


def merge_for_resume(saved: dict[str, Any], overrides: dict[str, Any]) -> TrainConfig:
    """The saved run config with the explicitly given flags applied, refusing model or data changes."""
    changed = [
        k for k in MODEL_SHAPING_KEYS if k in overrides and overrides[k] is not None and overrides[k] != saved.get(k)
    ]
    if changed:
        raise ConfigError(
            f"--resume cannot change {', '.join(changed)} (the run was started with other values); use a new --out"
        )
    values = {k: v for k, v in saved.items() if k in _FIELDS}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(values)


def save_config(config: TrainConfig, derived: dict[str, Any], path: Path) -> None:
    """The config as given (reusable with --config), plus under `extra` what the run derived from the data
    and model that the config does not say (vocabulary, resolved granularities, step counts)."""
    data = config.to_dict()
    data["extra"] = {**config.extra, **{k: v for k, v in derived.items() if k not in _FIELDS}}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def holds_a_run_config(folder: Path) -> bool:
    """Whether `folder` holds the run config a pretraining run writes (a person's config.yaml does not count)."""
    try:
        saved = load_config_file(Path(folder) / RUN_CONFIG_FILE)
    except (ConfigError, OSError, UnicodeDecodeError):
        return False
    return {"dataset", "out", "model", "loss"} <= set(saved)


def read_saved_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"no run config at {path}; is this a pretraining run folder?")
    return load_config_file(path)


def resolve(config_file: Path | None, overrides: dict[str, Any], resume: bool) -> TrainConfig:
    """The config a `mgll pretrain` call means: on --resume the run's own saved config plus the given flags.

    A --config file given together with --resume is applied under the flags but over the saved config,
    and may not change the model or data either.
    """
    if not resume:
        return make_config(config_file, overrides)
    out = overrides.get("out")
    if not out:
        raise ConfigError("--resume needs --out RUN (the run folder to continue)")
    saved_path = Path(out) / RUN_CONFIG_FILE
    if not saved_path.is_file():
        raise ConfigError(f"nothing to resume in {out}: no config.yaml there (start it without --resume)")
    saved = read_saved_config(saved_path)
    saved.pop("extra", None)
    layered = {
        **(load_config_file(config_file) if config_file else {}),
        **{k: v for k, v in overrides.items() if v is not None},
    }
    return merge_for_resume(saved, layered)
