"""Progress on long work: a bar on a terminal, a plain line now and then anywhere else.

A redrawn bar is meant for a terminal: written into a log file or a CI console, every redraw stays as a
carriage return and a copy of the line (a `make demo` log was 47 KB in 70 lines, 524 of them redraws).
So a bar is drawn only when its stream is a terminal; otherwise the same numbers come as whole lines, one
when the work starts, one every `LINE_INTERVAL_S` seconds and one when it ends, so a log still shows a
long build is alive without growing with every image. A line reads
`build: 116/516 img (22%), 00:12 elapsed, 9.7 img/s, rejects 2`.

The trainer (`mgll_train`) may import only `mgll_data.schema` and `mgll_data.dataset`, so it does not use
this module; its bars follow the same rule (tqdm's `disable=None`: no bar off a terminal).
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from tqdm import tqdm

LINE_INTERVAL_S = 30.0


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LineProgress:
    """The part of tqdm's interface the commands use (update, set_postfix, close, a context manager),
    printed as whole lines at most every `interval` seconds (and always at the start and the end)."""

    def __init__(self, total: int | None, desc: str, unit: str, file: IO[str], interval: float = LINE_INTERVAL_S):
        self.total, self.desc, self.unit, self.file, self.interval = total, desc, unit, file, interval
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self.started = self.last_line = time.monotonic()
        self.closed = False
        self._line()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last_line >= self.interval:
            self._line()

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.postfix = values

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self) -> None:
        now = time.monotonic()
        elapsed = now - self.started
        done = (
            f"{self.n}/{self.total} {self.unit} ({self.n / self.total:.0%})" if self.total else f"{self.n} {self.unit}"
        )
        parts = [f"{self.desc}: {done}", f"{tqdm.format_interval(elapsed)} elapsed"]
        if self.n and elapsed > 0:
            parts.append(f"{self.n / elapsed:.1f} {self.unit}/s")
        parts.extend(f"{key} {value}" for key, value in self.postfix.items())
        self.file.write(", ".join(parts) + "\n")
        self.file.flush()
        self.last_line = now


def progress_bar(total: int | None, *, desc: str, unit: str, enabled: bool = True,
                 file: IO[str] | None = None) -> tqdm | LineProgress:
    """A tqdm bar on a terminal, LineProgress elsewhere, nothing at all when not `enabled` (--quiet).

    The stream defaults to the current `sys.stderr` (looked up at call time, so a redirected stderr is
    honoured); stdout stays free for a command's summary or its JSON."""
    stream = file if file is not None else sys.stderr
    if not enabled:
        return tqdm(total=total, disable=True)
    if is_terminal(stream):
        return tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True)
    return LineProgress(total, desc, unit, stream)
