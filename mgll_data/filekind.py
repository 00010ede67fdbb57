"""What kind of file-system entry an input path is, so that only regular files are ever opened.

Opening a named pipe (FIFO) for reading blocks until something writes to it, which in an export is never:
one FIFO named like an image or a report used to hang a build forever. A device can be endless, a socket
cannot be opened, a directory is not a file, and a symbolic link whose target is gone has nothing to read.
The stages ask `entry_kind` before they open anything and turn every kind but a regular file into a
reject that names the kind (never the path: reject messages are shared).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

REGULAR = "regular file"
MISSING = "missing"
BROKEN_LINK = "broken symbolic link"
DIRECTORY = "directory"

_KINDS = (
    (stat.S_ISREG, REGULAR),
    (stat.S_ISDIR, DIRECTORY),
    (stat.S_ISFIFO, "named pipe (FIFO)"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def entry_kind(path: Path | str) -> str:
    """REGULAR, MISSING, BROKEN_LINK, DIRECTORY or another kind's name, following symbolic links.

    Never opens the path. A path that cannot be examined (a parent folder without permission, a link
    loop) raises OSError, which callers already treat as unreadable.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return BROKEN_LINK if os.path.islink(path) else MISSING
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "special file"
