"""Worker processes die with the build that started them, even when it is killed with SIGKILL.

Nothing wakes a process-pool worker when the build dies: it blocks on a queue whose write end it holds
itself, and the fork server stays up as long as any worker holds its "alive" pipe. Without this, a
`kill -9` of a build leaves the fork server, its workers and the resource tracker running forever
(about 1.2 GB for two workers).

Two mechanisms, because neither is enough alone:
- Linux: `PR_SET_PDEATHSIG`, so the kernel sends SIGKILL to a process when its parent dies. The fork
  server asks for it at start (it is the build's child) and so does each worker (the fork server's
  children), so a build's death takes the chain down at once, even a worker stuck in C code that holds
  the GIL.
- Everywhere: a daemon thread in each worker waits on multiprocessing's parent sentinel (a pipe only the
  build holds open; a process handle on Windows) and ends the worker when it fires. It covers platforms
  without prctl and a fork server that someone else started without this module's preload.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
EXIT_PARENT_GONE = 70
# The fork server's preload (see local.py); it records the server's pid, which its forked workers inherit.
FORK_SERVER_PRELOAD = "mgll_data.engines.forkserver_preload"


def die_with_parent(expected_parent: int | None = None) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux; a no-op elsewhere).

    The parent can die between this process's start and the request. A process that knows which pid
    forked it passes it, and exits at once when already orphaned; otherwise the parent id is compared
    before and after the request, which misses a parent gone before this call.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid() if expected_parent is None else expected_parent
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # refused (e.g. a seccomp filter): the sentinel watch still ends workers
    if os.getppid() != parent:
        os._exit(EXIT_PARENT_GONE)


def exit_with_multiprocessing_parent() -> None:
    """End this process when the process that started it (`multiprocessing.parent_process()`) ends."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        os._exit(EXIT_PARENT_GONE)

    threading.Thread(target=watch, name="mgll-parent-watch", daemon=True).start()


def bind_worker_to_build() -> None:
    """Both mechanisms, for a pool worker: called first thing in its initializer.

    A worker forked by a fork server that ran the preload knows the server's pid, so a server killed (with
    the build) before the worker got here ends the worker too; the parent watch alone could not, when the
    worker's first task holds the GIL and its watch thread never runs.
    """
    die_with_parent(getattr(sys.modules.get(FORK_SERVER_PRELOAD), "SERVER_PID", None))
    exit_with_multiprocessing_parent()
