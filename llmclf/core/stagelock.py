"""One run of a stage at a time, and no stage outliving the `dvc` that started it."""
from __future__ import annotations

import ctypes
import fcntl
import os
import select
import signal
import sys
import threading
from pathlib import Path

from .errors import UserError

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Have the kernel send `sig` when the parent process (dvc, or the multi-process launcher) dies, even
    by SIGKILL, so no orphan keeps training and racing the next run. dvc runs a stage through `$SHELL -c`;
    a shell that forks instead of replacing itself (dash, the usual /bin/sh) outlives a killed dvc, so
    then dvc itself is watched. Linux only; elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    parent = os.getppid()
    if parent == 1:  # the parent died before the request was in place
        os.kill(os.getpid(), sig)
    elif _command(parent) in SHELLS:
        _on_exit_of(_parent_of(parent), lambda: os.kill(os.getpid(), sig))


SHELLS = {"sh", "dash", "bash", "zsh", "fish", "ksh", "mksh"}


def _command(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])


def _on_exit_of(pid: int, then) -> None:
    """Call `then` from a daemon thread once process `pid` has ended (at once if it already has)."""
    try:
        fd = os.pidfd_open(pid)  # readable once the process has ended, reaped or not
    except ProcessLookupError:
        return then()
    except (AttributeError, OSError):  # a kernel before 5.3: the direct parent's signal is all there is
        return None
    threading.Thread(target=lambda: (select.select([fd], [], []), then()), daemon=True,
                     name=f"exit-of-{pid}").start()


def hold_lock(path: str | Path, what: str) -> int:
    """An exclusive lock on `path` for the rest of this process (keep the returned descriptor open); the
    kernel releases it when the process ends, however it ends. Already held: an error naming the holder's pid."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise UserError(f"{what} is already running (pid {pid}, lock {path}); wait for it to end, "
                        f"or stop it with `kill {pid}`") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
