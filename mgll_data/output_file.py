"""Replacing an output file only when mgll wrote it.

A command that writes one file (`mgll label --out`, `--evidence`, any `--json PATH`) replaces what is
there on a rerun, which is what a user expects of their own earlier output. But the path is typed by a
person and may name their own file (the reports CSV being labelled, a spreadsheet, a JSON config), and
a tool that handles hospital data must not destroy what it did not write. So an existing path is
replaced only when the caller's recogniser says it is that command's own output; anything else is
refused in one line before any work is done.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def replaced_whole(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; on success it replaces `path` in one rename, so a reader
    or a second run writing the same path at once never sees half of one file and half of another, and a
    killed run leaves the earlier file whole. On failure the temporary file is removed."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as exc:
        if exc.filename == str(temporary):  # a message names the file the user asked for
            exc.filename = str(path)
        raise
    finally:
        temporary.unlink(missing_ok=True)


class OutputFileError(ValueError):
    """An output path names something mgll must not replace; the message is one line that says what to do."""


def check_replaceable(path: Path, is_ours: Callable[[Path], bool], what: str) -> None:
    """Refuse `path` unless it does not exist yet or is a regular file that `is_ours` recognises as `what`."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_file():
        raise OutputFileError(f"{path} exists and is not a regular file; choose another path for {what}")
    try:
        ours = is_ours(path)
    except (OSError, ValueError, UnicodeDecodeError):
        ours = False
    if not ours:
        raise OutputFileError(
            f"{path} exists and is not {what} written by mgll; choose another path (mgll replaces only its own files)"
        )


def read_json(path: Path) -> Any:
    """The JSON document at `path` (ValueError when it is not one)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def same_json_shape(old: Any, new: Any) -> bool:
    """Whether `old` has the top-level shape of `new`: both objects whose first key is the same, or both
    arrays whose first items are such objects (an empty array matches any array). A command writes its
    summary with its keys in a fixed order, so its earlier summary matches and a person's JSON does not."""
    if isinstance(old, dict) and isinstance(new, dict):
        return bool(old) and bool(new) and next(iter(old)) == next(iter(new))
    if isinstance(old, list) and isinstance(new, list):
        return not old or not new or same_json_shape(old[0], new[0])
    return False
