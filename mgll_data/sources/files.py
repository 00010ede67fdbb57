"""Which entries of an export folder are candidate inputs: a sorted walk that skips debris, and the
pipeline's image patterns."""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path, PurePosixPath

from mgll_data.pipeline import Pipeline
from mgll_data.sources.inputs import SourceError

# A folder is an input only when named like one of these (and matching the pipeline's patterns): DICOM
# series folders are often named by UID ("1.2.840…"), which a catch-all pattern would otherwise take.
IMAGE_SUFFIXES = (
    ".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr"
)
NOT_IMAGE_SUFFIXES = (".txt", ".xml", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".md", ".parquet")
SKIPPED_DIRS = ("__MACOSX",)


def walk(root: Path) -> tuple[list[str], list[str]]:
    """(every entry that is not a folder, every folder) under root, following folder symlinks once, as
    sorted relative POSIX paths. The first list holds FIFOs, sockets, devices and broken links too: the
    stages reject them by kind instead of opening them."""
    found: list[str] = []
    folders: list[str] = []
    seen: set[tuple[int, int]] = set()

    def onerror(exc: OSError) -> None:
        raise SourceError(f"cannot list {exc.filename}: {exc.strerror or type(exc).__name__}")

    for folder, dirs, files in os.walk(root, followlinks=True, onerror=onerror):
        try:
            stat = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        if (stat.st_dev, stat.st_ino) in seen:  # a symlink loop
            dirs[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirs[:] = sorted(d for d in dirs if not skipped(d))
        rel_folder = PurePosixPath(Path(folder).relative_to(root).as_posix())
        found.extend(join(rel_folder, name) for name in files if not skipped(name))
        folders.extend(join(rel_folder, name) for name in dirs)
    return sorted(found), sorted(folders)


def join(folder: PurePosixPath, name: str) -> str:
    return str(folder / name) if str(folder) != "." else name


def skipped(name: str) -> bool:
    return name.startswith(".") or name in SKIPPED_DIRS or name == "Thumbs.db"


def image_matcher(pipeline: Pipeline) -> re.Pattern[str]:
    patterns = pipeline.image_patterns() or ["*.dcm", "*.png", "*.jpg", "*.jpeg"]
    regexes = [fnmatch.translate(p.lower()) for p in patterns]
    return re.compile("|".join(f"(?:{r})" for r in regexes))


def images(files: list[str], folders: list[str], pipeline: Pipeline) -> list[str]:
    """The entries the pipeline takes for images: files by pattern, and folders named like an image file
    (so a folder `x.png` is rejected as not a regular file instead of vanishing), sorted."""
    matcher = image_matcher(pipeline)

    def named_like_image(path: str) -> bool:
        name = path.rsplit("/", 1)[-1].lower()
        return not name.endswith(NOT_IMAGE_SUFFIXES) and name != "dicomdir" and bool(matcher.match(name))

    found = [path for path in files if named_like_image(path)]
    found += [path for path in folders if path.lower().endswith(IMAGE_SUFFIXES) and named_like_image(path)]
    return sorted(found)


def stem(path: str) -> str:
    """File name without its image extension; `.nii.gz` counts as one extension."""
    name = path.rsplit("/", 1)[-1]
    lower = name.lower()
    for double in (".nii.gz", ".tar.gz"):
        if lower.endswith(double):
            return name[: -len(double)]
    return name.rsplit(".", 1)[0] if "." in name[1:] else name
