"""GPUs for parallel experiments, by their logic on a machine without GPUs: a faked GPU count, real lock
files, each run a separate process as `dvc queue start -j N` starts them."""
import os
import subprocess
import sys

from llmclf.core import gpus

# One run's stage: claims GPUs, says which, and holds them until the test closes its stdin; with
# exec, it replaces itself first (as train does under `accelerate launch`) and the successor holds them.
HOLD = "import os, sys; print('got', os.environ['CUDA_VISIBLE_DEVICES'], flush=True); sys.stdin.read()"
RUN = """
import os, sys
from llmclf.core import gpus
gpus.gpu_count = lambda: {total}
gpus.POLL_SECONDS = 0.05
gpus.claim({processes})
if {exec_}:
    os.execv(sys.executable, [sys.executable, "-c", {HOLD}])
exec({HOLD})
"""


def start(locks, total=2, processes=1, exec_=False) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "LOCAL_RANK")}
    return subprocess.Popen([sys.executable, "-c", RUN.format(total=total, processes=processes, exec_=exec_, HOLD=repr(HOLD))],
                            env=env | {"LLMCLF_GPU_LOCKS": str(locks)}, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def gpus_of(run: subprocess.Popen) -> str:
    line = run.stdout.readline()
    assert line.startswith("got "), line + run.stderr.read()
    return line.split()[1]


def end(*runs: subprocess.Popen) -> None:
    for run in runs:
        run.stdin.close()
        assert run.wait(timeout=30) == 0, run.stderr.read()


def test_two_runs_get_different_gpus_and_a_third_waits_for_the_first_freed(tmp_path):
    first, second = start(tmp_path), start(tmp_path)
    held = gpus_of(first)
    assert {held, gpus_of(second)} == {"0", "1"}
    third = start(tmp_path)
    assert "all 2 GPUs are held by other runs" in third.stderr.readline()  # one line, then it waits
    end(first)
    assert gpus_of(third) == held
    end(second, third)


def test_the_gpus_stay_held_across_exec_and_a_waiting_run_holds_none(tmp_path):
    ddp = start(tmp_path, total=4, processes=2, exec_=True)
    assert gpus_of(ddp) == "0,1"
    single = start(tmp_path, total=4)
    assert gpus_of(single) == "2"
    needs_two = start(tmp_path, total=4, processes=2)  # one GPU free: waits without taking it
    assert "waiting for 2" in needs_two.stderr.readline()
    other = start(tmp_path, total=4)
    assert gpus_of(other) == "3"
    end(ddp)
    assert gpus_of(needs_two) == "0,1"
    end(single, needs_two, other)


def test_nothing_to_choose(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMCLF_GPU_LOCKS", str(tmp_path))
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # the user's choice
    monkeypatch.setattr(gpus, "gpu_count", lambda: 2)
    assert gpus.claim() == [] and os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    for count, processes in [(0, 1), (1, 1), (2, 4)]:  # no GPU, one to share, fewer than the processes
        monkeypatch.setattr(gpus, "gpu_count", lambda: count)
        assert gpus.claim(processes) == [] and "CUDA_VISIBLE_DEVICES" not in os.environ
    monkeypatch.setenv("LOCAL_RANK", "1")  # a DDP worker: its launching process claimed
    monkeypatch.setattr(gpus, "gpu_count", lambda: 2)
    assert gpus.claim() == [] and "CUDA_VISIBLE_DEVICES" not in os.environ
    assert list(tmp_path.iterdir()) == []



def test_a_claim_gives_each_process_its_share_of_the_cores(tmp_path):
    """Runs side by side on 2 GPUs each get half the cores for torch's and BLAS's threads (torch reads the
    variable once, when imported after the claim); a count the user set is kept."""
    code = ("import os; from llmclf.core import gpus; gpus.gpu_count = lambda: 2; gpus.claim(); import torch; "
            "print(os.environ['OMP_NUM_THREADS'], os.environ.get('OPENBLAS_NUM_THREADS'), torch.get_num_threads())")
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "LOCAL_RANK", *gpus.THREAD_VARS)}
    env["LLMCLF_GPU_LOCKS"] = str(tmp_path)
    share = str(max(1, len(os.sched_getaffinity(0)) // 2))
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert run.stdout.split() == [share, share, share]
    assert f"{share} CPU threads a process" in run.stderr
    run = subprocess.run([sys.executable, "-c", code], env=env | {"OMP_NUM_THREADS": "2"},
                         capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["2", "None", str(min(2, len(os.sched_getaffinity(0))))]
