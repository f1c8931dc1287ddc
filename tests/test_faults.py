"""Interrupts, a second run and a killed parent: one line each, and no stage left running."""
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmclf import stagelock
from llmclf.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def python(code: str, ignoring: tuple[signal.Signals, ...] = ()) -> subprocess.Popen:
    """`code` in a fresh interpreter that prints `ready` once it gets going; `ignoring`: signals it starts
    with ignored, as a shell's background job starts with SIGINT ignored."""
    def ignore():
        for sig in ignoring:
            signal.signal(sig, signal.SIG_IGN)
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=ignore)


def wait_ready(proc: subprocess.Popen) -> str:
    line = proc.stdout.readline()
    assert line.strip().startswith("ready"), proc.stderr.read()
    return line


@pytest.mark.parametrize("started_ignoring", [False, True])
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_is_one_line_saying_what_and_how_to_resume(sig, status, started_ignoring):
    proc = python("from llmclf import errors; import time\n"
                  "errors.install('the thing stopped; run it again')\n"
                  "print('ready', flush=True); time.sleep(60)", ignoring=(sig,) if started_ignoring else ())
    wait_ready(proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == status
    assert err.strip().splitlines() == [f"error: interrupted ({sig.name}): the thing stopped; run it again"]


def test_a_second_run_is_refused_while_the_first_holds_the_lock(tmp_path):
    lock = tmp_path / "train.lock"
    first = python(f"from llmclf import stagelock; import time\n"
                   f"stagelock.hold_lock({str(lock)!r}, 'training'); print('ready', flush=True); time.sleep(60)")
    wait_ready(first)
    with pytest.raises(UserError, match=rf"training is already running \(pid {first.pid}, lock {lock}\).*kill {first.pid}"):
        stagelock.hold_lock(lock, "training")
    first.kill()  # however the holder ends, the kernel releases its lock
    first.wait()
    os.close(stagelock.hold_lock(lock, "training"))


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
@pytest.mark.parametrize("shell", [None, "/bin/sh", "bash"])
def test_a_stage_dies_with_its_killed_parent(shell):
    """The parent stands for dvc: SIGKILL gives it no chance to stop its child. dvc starts a stage with
    `$SHELL -c`; dash (Debian's /bin/sh) forks the command and stays between them, bash replaces itself."""
    stage = [sys.executable, "-c", "from llmclf import stagelock; import os, time; stagelock.die_with_parent(); "
             "print('ready', os.getpid(), flush=True); time.sleep(60)"]
    cmd = stage if shell is None else [shell, "-c", shlex.join(stage)]
    parent = python(f"import subprocess\nchild = subprocess.Popen({cmd!r}, stdout=subprocess.PIPE, text=True)\n"
                    "print(child.stdout.readline().strip(), flush=True); child.wait()")
    child = int(wait_ready(parent).split()[1])
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child)
