"""Progress: a bar only on a terminal, whole lines (no carriage returns) anywhere else, nothing when quiet."""

from __future__ import annotations

import io

import pytest
from tqdm import tqdm

from mgll_data import progress
from mgll_data.progress import LineProgress, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress.time, "monotonic", fake)
    return fake


def test_off_a_terminal_lines_come_at_start_every_interval_and_end(clock: Clock) -> None:
    log = io.StringIO()
    with progress_bar(500, desc="build", unit="img", file=log) as bar:
        assert isinstance(bar, LineProgress)
        for i in range(500):
            clock.now += 0.5  # 250 s in all: a line every 30 s, not one per image
            bar.update(1)
            bar.set_postfix(rejects=i // 100)
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert lines[0] == "build: 0/500 img (0%), 00:00 elapsed"
    assert lines[-1] == "build: 500/500 img (100%), 04:10 elapsed, 2.0 img/s, rejects 4"
    assert len(lines) == 1 + 250 // 30 + 1
    assert lines[1].startswith("build: 60/500 img (12%), 00:30 elapsed, 2.0 img/s")


def test_a_line_without_a_total_counts_only(clock: Clock) -> None:
    log = io.StringIO()
    bar = LineProgress(None, "labelling", "report", log)
    clock.now += 2
    bar.update(10)
    bar.close()
    bar.close()  # closing twice prints once
    assert log.getvalue().splitlines()[-1] == "labelling: 10 report, 00:02 elapsed, 5.0 report/s"
    assert len(log.getvalue().splitlines()) == 2


def test_a_terminal_gets_a_tqdm_bar_and_quiet_gets_nothing() -> None:
    terminal = Terminal()
    bar = progress_bar(3, desc="build", unit="img", file=terminal)
    assert isinstance(bar, tqdm) and not bar.disable
    bar.update(3)
    bar.close()
    assert "\r" in terminal.getvalue() and "3/3" in terminal.getvalue()
    for stream in (Terminal(), io.StringIO()):
        quiet = progress_bar(3, desc="build", unit="img", enabled=False, file=stream)
        quiet.update(3)
        quiet.set_postfix(rejects=1)
        quiet.close()
        assert stream.getvalue() == ""


def test_the_stream_is_looked_up_when_the_bar_starts(monkeypatch) -> None:
    replaced = io.StringIO()
    monkeypatch.setattr("sys.stderr", replaced)
    progress_bar(1, desc="validate", unit="img").close()
    assert replaced.getvalue().startswith("validate: 0/1 img")


def test_a_closed_or_odd_stream_is_not_a_terminal() -> None:
    closed = io.StringIO()
    closed.close()
    assert not progress.is_terminal(closed)
    assert not progress.is_terminal(object())  # type: ignore[arg-type]
