"""Claiming OUT for a build: never write into the export, never delete what mgll did not write, one build
at a time.

A build ingests hospital exports, so the worst thing it could do is delete or bury one. Before anything is
written, OUT is checked against the export (neither may hold the other), and an OUT that holds anything
but an mgll dataset (or what a killed build left) is refused. `--overwrite` deletes only the files a
build or `mgll card` wrote, one by one (`dataset.written_files`), never a folder tree. An exclusive
`flock` on OUT and on the linkage path is held for the whole build, so a second build into either is
refused in one line instead of silently replacing the first one's linkage journal; the kernel drops the
lock when the holder exits, however it exits (kill -9 included), so a stale lock never blocks a resume.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from mgll_data import dataset

SHOWN = 3  # entries named in a refusal


class OutputFolderError(ValueError):
    """OUT (or the linkage path) cannot be used as asked; the message is one line that says what to do."""


def check_paths(source: Path, out: Path, linkage: Path) -> None:
    """Refuse an OUT or linkage path that is, holds or sits inside the export, and a linkage path inside
    OUT. Paths are compared resolved, so a symbolic link cannot hide the relation."""
    source, out, linkage = Path(source).resolve(), Path(out).resolve(), Path(linkage).resolve()
    if out == source:
        raise OutputFolderError(f"OUT {out} is the export itself; choose a folder outside the export")
    if source in out.parents:
        raise OutputFolderError(
            f"OUT {out} is inside the export {source}: a later build would read the dataset as input; "
            "choose a folder outside the export"
        )
    if out in source.parents:
        raise OutputFolderError(
            f"the export {source} is inside OUT {out}; choose an OUT that does not hold the export"
        )
    if linkage == out or out in linkage.parents:
        raise OutputFolderError(
            "the linkage table identifies patients: --linkage must point outside the dataset folder"
        )
    if linkage == source or source in linkage.parents:
        raise OutputFolderError("--linkage must point outside the export: mgll never writes into it")
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"OUT {out} exists and is not a folder")


def check_contents(out: Path) -> None:
    """Refuse an OUT that holds anything but an mgll dataset or what a killed build left.

    Inside `data/` only shards may live (a reader globs that folder, so a stray file would join the
    data). Beside them, a finished dataset (one with a manifest) may hold a person's own files, which are
    left alone; a folder without a manifest must hold nothing but a killed build's files, or it is
    someone else's folder."""
    foreign = dataset.foreign_entries(out)
    if not foreign:
        return
    shown = ", ".join(p.relative_to(out).as_posix() for p in foreign[:SHOWN])
    data = dataset.data_dir(out)
    folders = {data, out / dataset.CHARTS_DIR}
    in_the_way = [p for p in foreign if p.parent == data or p in folders]
    if in_the_way:
        named = ", ".join(p.relative_to(out).as_posix() for p in in_the_way[:SHOWN])
        raise OutputFolderError(
            f"OUT {out} holds files mgll did not write where a build writes ({named}); move them away "
            "or choose another OUT"
        )
    if dataset.read_manifest(out) is None:
        raise OutputFolderError(
            f"OUT {out} is not empty and is not an mgll dataset (it holds {shown}); choose a new or empty folder"
        )


def clear(out: Path) -> list[Path]:
    """Delete what a build or `mgll card` wrote into OUT (for --overwrite), file by file; the build's own
    folders go only when nothing else is left in them. Returns the deleted files."""
    deleted = dataset.written_files(out)
    for path in deleted:
        path.unlink()
    for folder in (dataset.data_dir(out), out / dataset.CHARTS_DIR):
        with contextlib.suppress(OSError):  # not empty (someone else's file), or absent: leave it
            folder.rmdir()
    return deleted


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    """Hold `dataset.acquire_lock(path)` until the block ends, or refuse at once in one line."""
    try:
        fd = dataset.acquire_lock(path)
    except OSError as exc:
        raise OutputFolderError(f"cannot write {path}: {exc.strerror}") from None
    except dataset.LockHeld as held:
        raise OutputFolderError(
            f"another mgll build{held.by} is writing {what}; wait for it to finish, or build elsewhere"
        ) from None
    try:
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the lock


@contextlib.contextmanager
def claim(source: Path, out: Path, linkage: Path, *, overwrite: bool) -> Iterator[list[Path]]:
    """Check OUT and the linkage path, create OUT, and hold both locks while the block runs.

    With `overwrite`, the files an earlier build wrote are deleted once the locks are held; the block
    receives the deleted paths."""
    check_paths(source, out, linkage)
    check_contents(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        linkage.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFolderError(f"cannot create {exc.filename}: {exc.strerror}") from None
    with exclusive_lock(out / dataset.LOCK_FILE, str(out)), \
            exclusive_lock(dataset.linkage_lock_path(linkage), f"the linkage table {linkage}"):
        yield clear(out) if overwrite else []
