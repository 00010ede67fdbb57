"""One run at a time in a run folder.

Two `mgll pretrain` runs started into the same `--out` both wrote `metrics.jsonl` and checkpoints there:
one crashed with a traceback when the other renamed its half-written checkpoint away, and the survivor
"succeeded" with a metrics log holding both runs' lines. So the main rank holds the same kind of lock
the build holds on its dataset folder (`mgll_data.dataset.acquire_lock`) on `RUN/.mgll-run.lock` for
the whole run, and a second run is refused in one line.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from mgll_data.dataset import LockHeld, acquire_lock

RUN_LOCK_FILE = ".mgll-run.lock"


class RunFolderError(Exception):
    """The run folder cannot be written, or another run holds it; the message is one line that says what to do."""


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock (creating the folder) until the block ends, or refuse at once."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = acquire_lock(run_dir / RUN_LOCK_FILE)
    except OSError as exc:
        raise RunFolderError(f"cannot write the run folder {run_dir}: {exc.strerror}") from None
    except LockHeld as held:
        raise RunFolderError(
            f"another mgll pretrain{held.by} is writing {run_dir}; wait for it to finish, or choose another --out"
        ) from None
    try:
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the lock
