"""Pipeline files (`pipelines/*.yaml`): which layout an export has and how to turn it into rows.

A pipeline is named (`mimic-cxr`) or given as a path to a copy the user edited. Its content hash goes
into the manifest so two datasets built with different settings can be told apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mgll_data import schema
from mgll_data.dataset import SPLITS
from mgll_data.reports.certainty import DEFAULT_POLICY, Policy, PolicyError, policy_from

PIPELINE_DIR = Path(__file__).resolve().parent / "pipelines"
LAYOUTS = ("mimic-cxr", "openi", "folder", "manifest")
# What to do with an image whose header says text is burned into its pixels (see deid.refuse_burned_in_text).
BURNED_IN_POLICIES = ("reject", "keep")


class PipelineError(ValueError):
    """A pipeline file that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class ImageSettings:
    size: int = 512
    format: str = "png"
    jpeg_quality: int = 95
    training_format: str | None = None  # also store a lossy training copy (`image_train`) next to `image`
    percentiles: tuple[float, float] = (0.5, 99.5)
    default_modality: str | None = None
    burned_in_annotation: str = "reject"


@dataclass(frozen=True)
class ReportSettings:
    vocabulary: str = "chexpert"
    sections: tuple[str, ...] = ("findings", "impression")
    # which certainty levels become 1 / 0 / -1 / blank (a preset name or a mapping; see certainty.py)
    uncertain_policy: Policy = field(default_factory=lambda: policy_from(DEFAULT_POLICY))


@dataclass(frozen=True)
class Pipeline:
    name: str
    layout: str
    source: dict[str, Any]
    image: ImageSettings
    reports: ReportSettings
    granularities: tuple[str, ...]
    split: dict[str, float]
    content_hash: str
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def image_patterns(self) -> list[str]:
        return list(self.source.get("image_patterns") or [])


def available() -> list[str]:
    return sorted(p.stem for p in PIPELINE_DIR.glob("*.yaml"))


def load_pipeline(name_or_path: str | Path) -> Pipeline:
    """Load a pipeline by name (a file in `pipelines/`) or from a YAML path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = PIPELINE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise PipelineError(f"no pipeline {str(name_or_path)!r}: give a file path or one of {', '.join(available())}")
    text = path.read_bytes()
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PipelineError(f"pipeline {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return from_dict(raw, content_hash=hashlib.sha256(text).hexdigest()[:16])


def from_dict(raw: dict[str, Any], content_hash: str = "") -> Pipeline:
    if not isinstance(raw, dict):
        raise PipelineError("a pipeline file must be a YAML mapping")
    source = dict(raw.get("source") or {})
    layout = source.get("layout")
    if layout not in LAYOUTS:
        raise PipelineError(f"source.layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    img = dict(raw.get("image") or {})
    image = ImageSettings(
        size=int(img.get("size", 512)),
        format=str(img.get("format", "png")).lower(),
        jpeg_quality=int(img.get("jpeg_quality", 95)),
        training_format=str(img["training_format"]).lower() if img.get("training_format") else None,
        percentiles=tuple(float(p) for p in img.get("percentiles", (0.5, 99.5))),
        default_modality=img.get("default_modality"),
        burned_in_annotation=str(img.get("burned_in_annotation", "reject")).lower(),
    )
    if image.format not in ("png", "jpeg"):
        raise PipelineError(f"image.format must be png or jpeg, got {image.format!r}")
    if image.training_format not in (None, "jpeg"):
        raise PipelineError(f"image.training_format must be jpeg or absent, got {image.training_format!r}")
    if image.burned_in_annotation not in BURNED_IN_POLICIES:
        raise PipelineError(
            f"image.burned_in_annotation must be one of {', '.join(BURNED_IN_POLICIES)}, "
            f"got {image.burned_in_annotation!r}"
        )
    if image.size < 16:
        raise PipelineError(f"image.size must be at least 16, got {image.size}")
    rep = dict(raw.get("reports") or {})
    try:
        policy = policy_from(rep.get("uncertain_policy", DEFAULT_POLICY))
    except PolicyError as exc:
        raise PipelineError(f"pipeline reports.uncertain_policy: {exc}") from None
    reports = ReportSettings(
        vocabulary=str(rep.get("vocabulary", "chexpert")),
        sections=tuple(str(s).lower() for s in rep.get("sections", ("findings", "impression"))),
        uncertain_policy=policy,
    )
    granularities = tuple(raw.get("granularities") or ())
    unknown = sorted(set(granularities) - set(schema.known_granularities()))
    if unknown:
        raise PipelineError(f"unknown granularities {unknown}; known: {schema.known_granularities()}")
    split = {k: float(v) for k, v in (raw.get("split") or {"train": 0.8, "val": 0.1, "test": 0.1}).items()}
    if set(split) - set(SPLITS) or abs(sum(split.values()) - 1.0) > 1e-6:
        raise PipelineError(f"split must give train/val/test ratios summing to 1, got {split}")
    return Pipeline(
        name=str(raw.get("name") or "custom"),
        layout=layout,
        source=source,
        image=image,
        reports=reports,
        granularities=granularities,
        split=split,
        content_hash=content_hash,
        description=str(raw.get("description") or ""),
        raw=raw,
    )
