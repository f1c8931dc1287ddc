"""Interrupts (while running or starting), a second run, a killed parent, full disks, read-only folders and denied
access: one line each, no output changed, and no stage left running."""
import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmclf.core import atomic, errors, stagelock
from llmclf.core.errors import UserError

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
    proc = python("from llmclf.core import errors; import time\n"
                  "errors.install('the thing stopped; run it again')\n"
                  "print('ready', flush=True); time.sleep(60)", ignoring=(sig,) if started_ignoring else ())
    wait_ready(proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == status
    assert err.strip().splitlines() == [f"error: interrupted ({sig.name}): the thing stopped; run it again"]


def test_a_second_run_is_refused_while_the_first_holds_the_lock(tmp_path):
    lock = tmp_path / "train.lock"
    first = python(f"from llmclf.core import stagelock; import time\n"
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
    stage = [sys.executable, "-c", "from llmclf.core import stagelock; import os, time; stagelock.die_with_parent(); "
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


# ---------------------------------------------------------------- full disks, read-only folders, denied access

# the error as the writer raises it, and the path the one line names where the writer named none
RESOURCE_ERRORS = [
    ("disk-full", OSError(errno.ENOSPC, "No space left on device", "out/x.json"), "out/x.json: No space left on device; free space"),
    ("read-only", OSError(errno.EROFS, "Read-only file system", "out/x.json"), "out/x.json: Read-only file system; remount"),
    ("permission", PermissionError(errno.EACCES, "Permission denied", "out/x.json"), "out/x.json: Permission denied; give your user"),
    ("not-permitted", OSError(errno.EPERM, "Operation not permitted", "out/x.json"), "out/x.json: Operation not permitted"),
    ("quota", OSError(errno.EDQUOT, "Disk quota exceeded", "out/x.json"), "out/x.json: Disk quota exceeded; free space"),
    ("pyarrow", OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device"),
     "CWD: No space left on device"),
    ("shutil-copytree", shutil.Error([("a/w.safetensors", "out/w.safetensors",
                                       "[Errno 28] No space left on device: 'a/w.safetensors' -> 'out/w.safetensors'")]),
     "out/w.safetensors: No space left on device"),
    ("safetensors", RuntimeError("Error while serializing: I/O error: Read-only file system (os error 30) at path "
                                 "\"out/.tmpab12\""), "out/.tmpab12: Read-only file system"),
    ("safetensors-no-path", RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"),
     "CWD: No space left on device"),
    ("torch", RuntimeError("[enforce fail at inline_container.cc:747] . open file failed with strerror: Read-only file "
                           "system"), "CWD: Read-only file system"),
    ("raised-from", ValueError("cannot save"), "out/x.json: No space left on device"),
]


def raised(err: Exception) -> Exception:
    if str(err) != "cannot save":
        return err
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "out/x.json")
        except OSError as cause:
            raise err from cause
    except ValueError as e:
        return e


@pytest.mark.parametrize("err, line", [r[1:] for r in RESOURCE_ERRORS], ids=[r[0] for r in RESOURCE_ERRORS])
def test_a_resource_error_anywhere_is_one_line_exit_2(err, line, capsys, monkeypatch):
    """What no writer named: the handler every command and stage installs finds it, wrapped or not."""
    monkeypatch.setattr(errors, "_stopped", "the command")  # not what an earlier test installed
    with pytest.raises(SystemExit) as exit:
        errors._excepthook(type(raised(err)), raised(err), None)
    message = capsys.readouterr().err.strip()
    assert exit.value.code == 2 and "\n" not in message
    assert message.startswith(f"error: {line.replace('CWD', os.getcwd())}") and "(stopped the command" in message


@pytest.mark.parametrize("err, line", [r[1:] for r in RESOURCE_ERRORS], ids=[r[0] for r in RESOURCE_ERRORS])
@pytest.mark.parametrize("is_dir", [False, True])
def test_a_failing_write_leaves_the_output_as_it_was(tmp_path, err, line, is_dir):
    target = tmp_path / "out"
    kept = target / "kept.txt" if is_dir else target
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text("before")
    with pytest.raises(errors.ResourceError, match=f"^{line.replace('CWD', str(target))}"):  # no path named: the output
        with atomic.atomic_path(target, is_dir=is_dir) as out:
            (out / "new.txt" if is_dir else out).write_text("half")
            raise raised(err)
    assert kept.read_text() == "before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary sibling left


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_an_error_in_the_temporary_copy_names_the_output(tmp_path, code):
    with pytest.raises(errors.ResourceError, match=rf"^{tmp_path / 'out'}: {os.strerror(code)}; "):
        with atomic.atomic_path(tmp_path / "out", is_dir=True) as out:
            raise OSError(code, os.strerror(code), str(out / "weights.safetensors"))


@pytest.mark.parametrize("fault", ["mkdtemp", "replace"])
def test_outputs_written_together_are_replaced_all_or_none(tmp_path, monkeypatch, fault):
    """A stage's outputs (atomic.together): one failing leaves every one as it was, those written before it too."""
    first, second = tmp_path / "metrics.json", tmp_path / "folder"
    first.write_text("old")
    second.mkdir()
    (second / "a.txt").write_text("old")
    real = {"mkdtemp": atomic.tempfile.mkdtemp, "replace": os.replace}[fault]

    def fail(*args, **kwargs):  # a full disk at the second output's temporary folder, a read-only one at a rename
        if fault == "mkdtemp" and "folder" not in str(kwargs.get("prefix")):
            return real(*args, **kwargs)
        raise OSError(errno.ENOSPC if fault == "mkdtemp" else errno.EROFS, "no", str(second))

    with pytest.raises(errors.ResourceError, match=f"^({first}|{second}): (No space left on device|Read-only file system)"):
        with atomic.together():
            atomic.write_json({"new": 1}, first)
            monkeypatch.setattr(atomic.tempfile if fault == "mkdtemp" else atomic.os, fault, fail)
            with atomic.atomic_path(second, is_dir=True) as out:
                (out / "a.txt").write_text("new")
    monkeypatch.undo()
    assert first.read_text() == "old" and (second / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "metrics.json"]
    with atomic.together():  # and without a fault, both are replaced
        atomic.write_json({"new": 1}, first)
        with atomic.atomic_path(second, is_dir=True) as out:
            (out / "a.txt").write_text("new")
    assert json.loads(first.read_text()) == {"new": 1} and (second / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "metrics.json"]


def test_a_stage_stopped_by_a_full_disk_says_so_in_one_line():
    """Through a real process: its handler, after a progress bar, with the stage's own way to resume."""
    proc = python("from llmclf.core import errors; import shutil, sys\n"
                  "errors.install('the x stage; `dvc repro` runs it again')\n"
                  "sys.stderr.write(' 50%|#####     | 5/10'); sys.stderr.flush()\n"
                  "raise shutil.Error([('a', 'metrics/x', \"[Errno 28] No space left on device: 'a' -> 'metrics/x'\")])")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == ("error: metrics/x: No space left on device; free space on its disk "
                                    "(stopped the x stage; `dvc repro` runs it again)")


# ---------------------------------------------------------------- interrupts while a stage or command starts

INTERRUPT_AT_IMPORT = """import os, signal, sys
class Interrupt:  # Ctrl-C while a module is imported (torch: seconds), before the stage's own lines run
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["INTERRUPT_AT_IMPORT"]:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
sys.meta_path.insert(0, Interrupt())
"""


@pytest.mark.parametrize("command, module", [
    ("stages/baseline.py", "torch._C"), ("stages/train.py", "torch._C"), ("stages/evaluate.py", "torch._C"),
    ("stages/sample.py", "pandas"), ("-m llmclf.cli predict in.txt", "pandas"), ("-m llmclf.cli predict in.txt", "torch._C"),
    ("-m llmclf.cli export", "torch._C")])
def test_ctrl_c_while_importing_is_one_line(tmp_path, command, module):
    (tmp_path / "sitecustomize.py").write_text(INTERRUPT_AT_IMPORT)
    done = subprocess.run([sys.executable, *shlex.split(command)], cwd=REPO, capture_output=True, text=True,
                          env=os.environ | {"PYTHONPATH": str(tmp_path), "INTERRUPT_AT_IMPORT": module}, timeout=120,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    what = f"the {Path(command).stem} stage" if command.startswith("stages") else f"llmclf {command.split()[2]}"
    assert done.returncode == 130, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: interrupted (SIGINT): {what}") and ("dvc repro" in line or "run it again" in line)


def test_outputs_get_the_modes_a_plain_write_gives(tmp_path):
    """A writer that goes through a private temporary file (safetensors: 0600) leaves an output a teammate
    can read: files 0666 and folders 0777, less the umask, as open() and mkdir() give."""
    old = os.umask(0o022)
    try:
        with atomic.atomic_path(tmp_path / "adapter", is_dir=True) as out:
            os.close(os.open(out / "weights.safetensors", os.O_CREAT | os.O_WRONLY, 0o600))
            (out / "sub").mkdir(mode=0o700)
    finally:
        os.umask(old)
    assert oct((tmp_path / "adapter" / "weights.safetensors").stat().st_mode & 0o777) == oct(0o644)
    assert oct((tmp_path / "adapter" / "sub").stat().st_mode & 0o777) == oct(0o755)
