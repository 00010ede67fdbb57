"""A build killed with SIGKILL takes its workers, fork server and resource tracker with it.

Each test starts a real process tree, kills its root with SIGKILL once the workers run, and checks that
every descendant seen before the kill is gone a few seconds later. Processes are found through /proc
(Linux); anything a failing test leaves behind is killed in its clean-up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes through /proc")

ROOT = Path(__file__).resolve().parents[1]
MGLL = Path(sys.executable).with_name("mgll")
GONE_WITHIN_S = 15.0


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, None when it no longer exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def _descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live process below root (start times tell a reused pid apart)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None and stat[1] != "Z":
            children.setdefault(stat[0], []).append(int(entry.name))
            starts[int(entry.name)] = stat[2]
    found, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = starts[child]
            todo.append(child)
    return found


def _alive(processes: dict[int, int]) -> list[int]:
    """The processes of a snapshot still running (a zombie waiting for its reaper counts as gone)."""
    alive = []
    for pid, start in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[1] != "Z" and stat[2] == start:
            alive.append(pid)
    return alive


def _kill_and_watch(
    command: list[str], cwd: Path, enough: int, ready: Callable[[], bool] = lambda: True
) -> tuple[dict[int, int], list[int]]:
    """Start command, wait until it has `enough` descendants and `ready()`, SIGKILL it; (descendants, the
    ones still alive a few seconds later)."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tree: dict[int, int] = {}
    try:
        while len(tree) < enough or not ready():
            if process.poll() is not None:
                pytest.fail(
                    f"exited (rc {process.returncode}) before its workers ran: {process.stderr.read()[-2000:]!r}"
                )
            time.sleep(0.2)
            tree = _descendants(process.pid)
        time.sleep(0.5)
        tree = _descendants(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + GONE_WITHIN_S
        while _alive(tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        return tree, _alive(tree)
    finally:
        process.kill()
        for pid in _alive(tree):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_kill_9_of_a_two_worker_build_leaves_no_process_behind(tmp_path):
    export = tmp_path / "export"
    subprocess.run([str(MGLL), "demo", "export", str(export), "--studies", "150"], check=True, capture_output=True)
    build = [str(MGLL), "build", str(export), str(tmp_path / "out"), "--pipeline", "mimic-cxr", "--workers", "2"]
    # fork server + resource tracker + 2 workers
    tree, alive = _kill_and_watch(build, tmp_path, enough=4)
    assert len(tree) >= 4
    assert alive == [], f"{len(alive)} of {len(tree)} processes outlived the killed build"


def spin_holding_the_gil(item, ctx):
    """A stage stuck in C code that never releases the GIL (catastrophic regex backtracking), so no
    Python thread of its worker can run: only the kernel can end it."""
    import re

    re.fullmatch(r"(a+)+b", "a" * 64)


@pytest.mark.timeout(180)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_worker_stuck_in_c_code_dies_with_the_killed_build(tmp_path):
    script = textwrap.dedent(
        """
        from pathlib import Path
        from mgll_data.engines.local import run_local
        from mgll_data.pipeline import load_pipeline
        from mgll_data.process import BuildContext
        from mgll_data.records import SourceItem
        from tests.test_engines_lifeline import spin_holding_the_gil

        ctx = BuildContext(export_root=Path("."), pipeline=load_pipeline("mimic-cxr"), salt=b"s" * 32)
        items = [SourceItem(image_path=f"{i}.dcm") for i in range(4)]
        list(run_local(items, ctx, workers=2, stage=spin_holding_the_gil))
        """
    )
    tree, alive = _kill_and_watch([sys.executable, "-c", script], ROOT, enough=4)
    assert alive == [], f"{len(alive)} of {len(tree)} processes outlived the killed build"


def sleep_forever(started: str) -> None:
    """Marks its worker as started (its initializer has run), then blocks with the GIL released."""
    (Path(started) / str(os.getpid())).touch()
    time.sleep(3600)


@pytest.mark.timeout(120)
def test_the_parent_watch_alone_ends_a_worker_whose_parent_was_killed(tmp_path):
    """The portable mechanism without the Linux one: spawned workers, no parent-death signal."""
    script = textwrap.dedent(
        """
        import multiprocessing
        import sys
        from concurrent.futures import ProcessPoolExecutor
        from mgll_data.engines.lifeline import exit_with_multiprocessing_parent
        from tests.test_engines_lifeline import sleep_forever

        pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=exit_with_multiprocessing_parent)
        list(pool.map(sleep_forever, [sys.argv[1]] * 2))
        """
    )
    started = tmp_path / "started"
    started.mkdir()
    # killed once both workers run their task, so that their slow spawn start-up is not what is measured
    command = [sys.executable, "-c", script, str(started)]
    tree, alive = _kill_and_watch(command, ROOT, enough=2, ready=lambda: len(list(started.iterdir())) == 2)
    assert alive == [], f"{len(alive)} of {len(tree)} processes outlived their killed parent"

